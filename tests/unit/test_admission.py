"""Admission and back-pressure in the gateway core: bounded in-flight work per region, fast rejection when every
region that may serve is full, real-time first, and no spill into a region under a grid emergency."""

from __future__ import annotations

import asyncio
import time

import pytest

from router.admission import AdmissionBound, admission_bound, admits, budget_order, queue_wait_ms
from serve_apps.gateway import GatewayCore, RegionsFull, Served
from tests.fakes import FakeRegion
from tests.unit.gateway_app import REGIONS, admission_core


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
        core = admission_core(regions)
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
        core = admission_core(regions, batch=2, concurrency=32)
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
        core = admission_core(regions)
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
        core = admission_core(regions)
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
        core = admission_core(regions, batch=64, concurrency=64)  # bounds far above the load: only the budget acts
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
