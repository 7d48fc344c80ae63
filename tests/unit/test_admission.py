"""Admission and back-pressure in the gateway core: bounded in-flight work per region, fast rejection when every
region that may serve is full, real-time first, and no spill into a region under a grid emergency."""

from __future__ import annotations

import asyncio
import time

import pytest

from fleet.clock import FixedClock
from fleet.loaders import load_fleet, load_rtt_matrix, parse_fleet
from grid.context import FleetContext, load_context
from policies.actors.client import LocalClient
from policies.control import ControlPlane
from router.admission import AdmissionBound, BusyPace, admission_bound, admits, budget_order, queue_wait_ms
from serve_apps.gateway import GatewayCore, RegionsFull, Served
from tests.fakes import FakeRegion
from tests.unit.gateway_app import PEAK_S, REGIONS


def test_bound_follows_the_knobs_and_splits_over_gateway_replicas() -> None:
    assert admission_bound(16, 1, 1, 1.0) == AdmissionBound(16, 16)  # the default knobs' one batch of 16
    assert admission_bound(4, 2, 4, 0.5) == AdmissionBound(2, 1)  # rung 3's batch of 4, two replicas, 4 gateways
    assert admission_bound(1, 1, 8, 0.0) == AdmissionBound(1, 0)  # never shut


def test_realtime_may_use_the_reserve_tolerant_work_may_not() -> None:
    bound = AdmissionBound(4, 6)
    assert admits(7, bound, urgent=False, realtime_reserve=0.2)
    assert not admits(8, bound, urgent=False, realtime_reserve=0.2)
    assert admits(9, bound, urgent=True, realtime_reserve=0.2)
    assert not admits(10, bound, urgent=True, realtime_reserve=0.2)
    assert admits(0, AdmissionBound(1, 0), urgent=False, realtime_reserve=0.9)


def _core(regions: dict[str, FakeRegion], *, batch: int = 16, concurrency: int = 2) -> GatewayCore:
    data = load_fleet().model_dump(mode="json")
    # Small bounds: 2 running + 2 queued per region (tolerant work: 3 with the reserve), no WAN sleeps.
    data["gateway"].update(wan_emulation=False, admission_queue_factor=1.0, realtime_reserve=0.25)
    data["serving"]["knobs"].update(max_concurrency=concurrency, max_batch_size=batch)
    for step in data["policy"]["steps"]:
        step["max_concurrency"] = min(step["max_concurrency"], concurrency)
        step["max_batch_size"] = min(step["max_batch_size"], batch)
    data["policy"]["enabled"] = False
    fleet = parse_fleet(data, source="admission test")
    context = load_context(load_fleet())
    plane = ControlPlane(FleetContext(fleet, context.trace, context.rtt_ms), FixedClock(PEAK_S), FixedClock(0.0))
    return GatewayCore(fleet, load_rtt_matrix(fleet.latency), LocalClient(plane), regions)


async def _fill(core: GatewayCore, origin: str, count: int) -> list[asyncio.Task[Served]]:
    tasks: list[asyncio.Task[Served]] = []
    for _ in range(count):
        route = core.route_request(origin, "tolerant", None)
        tasks.append(asyncio.create_task(core.serve(route, ["hold"])))
        await asyncio.sleep(0)
    await asyncio.sleep(0.01)
    return tasks


def test_full_calm_regions_reject_at_once_and_never_spill_into_the_emergency() -> None:
    regions = {name: FakeRegion(name) for name in REGIONS}

    async def scenario() -> None:
        core = _core(regions)
        hold = asyncio.Event()
        for region in regions.values():
            region.hold = hold
        # At the peak us-west-1 (CISO) is at stress 3: tolerant work from there fills the three calm regions.
        tasks = await _fill(core, "us-west-1", 9)
        assert {core.in_flight[name] for name in ("us-east-1", "us-east-2", "us-west-2")} == {3}
        assert core.in_flight["us-west-1"] == 0
        started = time.monotonic()
        with pytest.raises(RegionsFull):
            await core.serve(core.route_request("us-west-1", "tolerant", None), ["one more"])
        assert time.monotonic() - started < 0.1  # at once, not after a wait
        assert regions["us-west-1"].calls == 0  # never spilled into the region the grid asked to shed
        # Real-time work from the emergency region is still served there: it is never moved, and has its reserve.
        realtime = asyncio.create_task(core.serve(core.route_request("us-west-1", "realtime", None), ["urgent"]))
        await asyncio.sleep(0.01)
        hold.set()
        served = await realtime
        assert served.result.region == "us-west-1"
        assert all(served.result.region != "us-west-1" for served in await asyncio.gather(*tasks))

    asyncio.run(scenario())


def test_the_bound_is_one_batch_per_replica_not_the_concurrency_cap() -> None:
    # A replica admitting 32 at once but batching 2 works on 2: 2 running + 2 queued (3 for tolerant work) fill it,
    # so an admitted request waits about two model passes, not sixteen.
    regions = {name: FakeRegion(name) for name in REGIONS}

    async def scenario() -> None:
        core = _core(regions, batch=2, concurrency=32)
        hold = asyncio.Event()
        regions["us-west-2"].hold = hold
        tasks = await _fill(core, "us-west-2", 4)
        assert core.in_flight["us-west-2"] == 3
        hold.set()
        await asyncio.gather(*tasks)

    asyncio.run(scenario())


def test_a_full_region_is_skipped_for_the_next_not_waited_on() -> None:
    regions = {name: FakeRegion(name) for name in REGIONS}

    async def scenario() -> None:
        core = _core(regions)
        hold = asyncio.Event()
        regions["us-west-2"].hold = hold
        tasks = await _fill(core, "us-west-2", 3)  # tolerant from Oregon stays there until it is full
        assert core.in_flight["us-west-2"] == 3
        served = await core.serve(core.route_request("us-west-2", "tolerant", None), ["next"])
        assert served.result.region != "us-west-2"
        assert served.attempts == (served.result.region,)  # the full region was skipped, not tried
        hold.set()
        await asyncio.gather(*tasks)

    asyncio.run(scenario())


def test_emergency_region_serves_when_the_others_fail_not_when_they_are_full() -> None:
    regions = {name: FakeRegion(name) for name in REGIONS}

    async def scenario() -> None:
        core = _core(regions)
        for name in ("us-east-1", "us-east-2", "us-west-2"):
            regions[name].failing = True
        served = await core.serve(core.route_request("us-west-1", "tolerant", None), ["anyone"])
        assert served.result.region == "us-west-1"  # serving beats failing when nothing else can

    asyncio.run(scenario())


def test_budget_order_puts_calm_regions_whose_queue_fits_first() -> None:
    ranked = ("a", "b", "c", "storm")
    calm = {"a": True, "b": True, "c": True, "storm": False}
    # The best region's queue is over the budget: the burst goes on to the next calm one, and `a` is reported.
    order, passed = budget_order(ranked, {"a": False, "b": True, "c": True, "storm": True}, calm)
    assert order == ("b", "c", "a", "storm")
    assert passed == ("a",)
    # Nothing calm fits: the calm regions still come first (the work waits there within the admission bound), and
    # the region in grid emergency stays last even with an empty queue.
    order, passed = budget_order(ranked, {"a": False, "b": False, "c": False, "storm": True}, calm)
    assert order == ("a", "b", "c", "storm")
    assert passed == ()
    assert budget_order(ranked, dict.fromkeys(ranked, True), calm) == (ranked, ())


def test_queue_wait_counts_items_over_the_regions_servers() -> None:
    assert queue_wait_ms(12, 10.0, 2.0) == pytest.approx(60.0)
    assert queue_wait_ms(0, 10.0, 1.0) == 0.0


def test_a_burst_spreads_to_the_next_calm_region_instead_of_queueing_past_its_budget() -> None:
    regions = {name: FakeRegion(name) for name in REGIONS}

    async def scenario() -> None:
        core = _core(regions, batch=64, concurrency=64)  # bounds far above the test's load: only the budget acts
        hold = asyncio.Event()
        for region in regions.values():
            region.hold = hold
        route = core.route_request("us-west-2", "tolerant", None)
        first = core.decide(route, await core.ready_state(), draw=0.0).region
        # Enough items at the first region that one more would wait past the 150 ms budget there.
        view = core._view_of(await core.ready_state())
        over = int(route.latency_budget_ms / (1000.0 * view.calibrated_s_per_item[first])) + 1
        tasks = [asyncio.create_task(core.serve(route, ["x"] * over))]
        await asyncio.sleep(0.01)
        assert core.in_flight[first] == 1
        later = asyncio.create_task(core.serve(route, ["next"]))
        await asyncio.sleep(0.01)
        assert core.in_flight[first] == 1  # not behind the long queue
        hold.set()
        served = await later
        assert served.result.region != first
        assert served.full[0] == first
        assert regions["us-west-1"].calls == 0  # the region in grid emergency is never the spill-over
        await asyncio.gather(*tasks)

    asyncio.run(scenario())


def test_the_pace_counts_only_time_with_work_in_flight_all_along() -> None:
    pace = BusyPace(half_life_items=1e9)  # no decay: the arithmetic is exact
    pace.started(0)
    pace.answered(10.0, 4, 0)  # found the region idle and left it idle: its latency was mostly fixed cost
    assert pace.seconds_per_item() is None
    assert pace.items == 0
    pace.started(0)
    for _ in range(3):
        pace.started(1)
    pace.answered(20.0, 8, 3)  # the first answer of a busy period only starts the clock
    pace.answered(20.8, 8, 2)
    assert pace.seconds_per_item() is None  # 8 items seen: too few to trust
    pace.answered(21.6, 8, 1)
    pace.answered(22.4, 8, 0)
    assert pace.seconds_per_item() == pytest.approx(2.4 / 24)
    pace.started(0)
    pace.answered(500.0, 1, 0)  # a new busy period: the idle gap since 22.4 is not the region's pace
    assert pace.seconds_per_item() == pytest.approx(2.4 / 24)


def test_the_pace_follows_a_change_within_a_few_half_lives_and_a_failure_breaks_the_interval() -> None:
    pace = BusyPace(half_life_items=32.0)
    now = 0.0
    pace.started(0)
    pace.started(1)
    pace.answered(now, 1, 1)
    for _ in range(200):  # 10 ms per item
        now += 0.04
        pace.answered(now, 4, 1)
    assert pace.seconds_per_item() == pytest.approx(0.010)
    for _ in range(64):  # the policy lowered the batch, or a job took the cores: 50 ms per item
        now += 0.2
        pace.answered(now, 4, 1)
    assert pace.seconds_per_item() == pytest.approx(0.050, rel=0.01)
    pace.failed()
    pace.answered(now + 60.0, 4, 1)  # a minute after a failure: not counted as time spent on 4 items
    assert pace.seconds_per_item() == pytest.approx(0.050, rel=0.01)


def test_tolerant_work_skips_a_region_whose_queue_would_outlast_the_wait_bound_real_time_does_not() -> None:
    regions = {name: FakeRegion(name) for name in REGIONS}

    async def scenario() -> None:
        core = _core(regions, batch=64, concurrency=64)  # count bounds far above the test's load: only time acts
        hold = asyncio.Event()
        regions["us-west-2"].hold = hold
        budget = core.fleet.gateway.max_latency_budget_ms  # the calibrated budget order lets every region fit
        route = core.route_request("us-west-2", "tolerant", budget)
        first = core.decide(route, await core.ready_state(), draw=0.0).region
        assert first == "us-west-2"
        pace = core.pace[first]
        pace.seconds, pace.items = 10.0, 100.0  # observed under load: 100 ms per item
        max_items = int(core.fleet.gateway.admission_max_wait_s / 0.1)
        tasks = [asyncio.create_task(core.serve(route, ["x"] * max_items))]
        await asyncio.sleep(0.01)
        later = asyncio.create_task(core.serve(route, ["at the bound"]))  # exactly at the bound: admitted
        await asyncio.sleep(0.01)
        assert core.in_flight[first] == 2
        served = await core.serve(route, ["over"])  # one item over the bound ahead: the next region
        assert served.result.region != first
        assert served.full == (first,)
        urgent = asyncio.create_task(core.serve(core.route_request(first, "realtime", None), ["urgent"]))
        await asyncio.sleep(0.01)
        assert core.in_flight[first] == 3  # real-time work is bounded by count only
        hold.set()
        assert (await urgent).result.region == first
        await asyncio.gather(later, *tasks)

    asyncio.run(scenario())


def test_an_idle_region_keeps_the_routers_choice_however_slow_its_observed_pace() -> None:
    # The wait counts the work ahead, never the request's own pass: an idle region fits any budget and any wait
    # bound, so a slow pace learned under load cannot move light traffic off the router's choice.
    regions = {name: FakeRegion(name) for name in REGIONS}

    async def scenario() -> None:
        core = _core(regions, batch=64, concurrency=64)
        route = core.route_request("us-west-2", "tolerant", None)
        first = core.decide(route, await core.ready_state(), draw=0.0).region
        pace = core.pace[first]
        pace.seconds, pace.items = 100.0, 100.0  # 1 s per item
        served = await core.serve(route, ["x"] * 8)
        assert served.result.region == first
        assert served.full == ()

    asyncio.run(scenario())


def test_the_budget_order_costs_a_queue_at_the_observed_pace_not_the_calibrated_cost() -> None:
    # Two items ahead cost the calibrated few ms, but this region was seen delivering 100 ms per item under load
    # (a slower host, cores shared with other regions): tolerant work goes on to the next calm region.
    regions = {name: FakeRegion(name) for name in REGIONS}

    async def scenario() -> None:
        core = _core(regions, batch=64, concurrency=64)  # count bounds far above the test's load
        hold = asyncio.Event()
        regions["us-west-2"].hold = hold
        route = core.route_request("us-west-2", "tolerant", None)
        first = core.decide(route, await core.ready_state(), draw=0.0).region
        view = core._view_of(await core.ready_state())
        assert 2000.0 * view.calibrated_s_per_item[first] < route.latency_budget_ms  # the calibration says it fits
        held = asyncio.create_task(core.serve(route, ["x", "y"]))
        await asyncio.sleep(0.01)
        pace = core.pace[first]
        pace.seconds, pace.items = 10.0, 100.0
        served = await core.serve(route, ["next"])
        assert served.result.region != first
        assert served.full == (first,)  # passed over for its queue, not full by count
        assert regions["us-west-1"].calls == 0  # never the region in grid emergency
        hold.set()
        await held

    asyncio.run(scenario())
