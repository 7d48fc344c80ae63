"""The pace admission costs a region's queue at: each region's own, learned while it is busy (BusyPace); the other
regions' pace over their calibration for a region with none yet (PaceRatio); rescaled at once when knobs change."""

from __future__ import annotations

import asyncio
from dataclasses import replace

import pytest

from router.admission import BusyPace, PaceRatio, expected_pace
from router.routing import RouteRequest
from serve_apps.gateway import GatewayCore
from tests.fakes import FakeRegion
from tests.unit.gateway_app import REGIONS, admission_core


async def _oregon_held(regions: dict[str, FakeRegion]) -> tuple[GatewayCore, asyncio.Event, RouteRequest, str]:
    """A core with count bounds far above the tests' load (only time acts), us-west-2 holding its answers until the
    event is set, a tolerant route from there, and the region the router picks for it."""
    core = admission_core(regions, batch=64, concurrency=64)
    hold = asyncio.Event()
    regions["us-west-2"].hold = hold
    route = core.route_request("us-west-2", "tolerant", None)
    first = core.decide(route, await core.ready_state(), draw=0.0).region
    return core, hold, route, first


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
        core = admission_core(
            regions, batch=64, concurrency=64
        )  # count bounds far above the test's load: only time acts
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
        core = admission_core(regions, batch=64, concurrency=64)
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
        core, hold, route, first = await _oregon_held(regions)
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


def test_answered_returns_the_busy_interval_it_counted_and_a_rescale_moves_the_pace() -> None:
    pace = BusyPace(half_life_items=1e9)
    pace.started(0)
    assert pace.answered(1.0, 4, 1) is None  # the first answer of a busy period counts no interval
    assert pace.answered(1.5, 4, 1) == pytest.approx(0.5)
    for now in (2.0, 2.5, 3.0, 3.5):
        pace.answered(now, 4, 1)
    assert pace.seconds_per_item() == pytest.approx(0.125)
    pace.rescale(2.0)  # the knobs made each item twice as dear
    assert pace.seconds_per_item() == pytest.approx(0.25)


def test_the_fleet_ratio_pools_busy_intervals_and_stands_in_only_for_a_region_without_a_pace() -> None:
    ratio = PaceRatio(half_life_items=1e9)
    ratio.add(10, 0.4, 0.1)
    assert ratio.ratio() is None  # 10 items: too few to trust
    ratio.add(10, 0.6, 0.1)  # another region, also slower than calibrated
    assert ratio.ratio() == pytest.approx(5.0)
    assert expected_pace(None, 0.01, ratio.ratio()) == pytest.approx(0.05)
    assert expected_pace(0.02, 0.01, ratio.ratio()) == 0.02  # the region's own pace wins
    assert expected_pace(None, 0.01, None) == 0.01  # nothing seen anywhere: the calibration


def test_a_region_with_no_pace_of_its_own_is_costed_as_the_other_regions_run() -> None:
    # The DR-event case: work moves onto a region idle until now, so it has no pace of its own. Costed at the
    # calibration alone its queue looks cheap and admission over-fills it; the other regions ran slower than their
    # calibration by the fleet ratio, and so will it.
    regions = {name: FakeRegion(name) for name in REGIONS}

    async def scenario() -> None:
        core, hold, route, first = await _oregon_held(regions)
        state = await core.ready_state()
        calibrated = core.admission_paces(state)[first]
        held = asyncio.create_task(core.serve(route, ["x"] * 8))
        await asyncio.sleep(0.01)
        wait_bound = core.fleet.gateway.admission_max_wait_s
        assert 8 * calibrated < min(wait_bound, route.latency_budget_ms / 1000.0)  # the calibration says: fits
        core.fleet_pace.add(64, 2.0 * wait_bound / 8 * 64, calibrated * 64)  # the others ran this much slower
        assert core.pace[first].seconds_per_item() is None
        assert 8 * core.admission_paces(state)[first] == pytest.approx(2.0 * wait_bound)
        served = await core.serve(route, ["next"])
        assert served.result.region != first
        assert served.full == (first,)
        assert regions["us-west-1"].calls == 0  # never the region in grid emergency
        hold.set()
        await held

    asyncio.run(scenario())


def test_a_knob_change_rescales_a_learned_pace_by_the_calibrated_cost_at_once() -> None:
    regions = {name: FakeRegion(name) for name in REGIONS}

    async def scenario() -> None:
        core = admission_core(regions, batch=64, concurrency=64)
        state = await core.ready_state()
        old_cost = core._view_of(state).calibrated_s_per_item["us-east-1"]
        pace = core.pace["us-east-1"]
        pace.seconds, pace.items = 5.0, 100.0  # learned: 50 ms per item
        other = core.admission_paces(state)["us-east-2"]
        knobs = dict(state.knobs)
        knobs["us-east-1"] = knobs["us-east-1"].model_copy(update={"max_batch_size": 1})  # a DR-event rung
        changed = replace(state, version=state.version + 1, knobs=knobs)
        new_cost = core._view_of(changed).calibrated_s_per_item["us-east-1"]
        assert new_cost > old_cost  # smaller batches: each item dearer
        assert pace.seconds_per_item() == pytest.approx(0.05 * new_cost / old_cost)
        assert core.admission_paces(changed)["us-east-2"] == other  # untouched knobs, untouched pace

    asyncio.run(scenario())
