"""Fleet snapshots on the real trace (events, health, load reach routing) and the clocks."""

from __future__ import annotations

import pytest

from fleet.clock import FixedClock, ReplayClock, WallClock, clock_for_source
from fleet.events import DREvent
from fleet.loaders import load_fleet
from fleet.routing import RoutingMode
from fleet.sources import TraceSourceConfig
from grid.context import FleetContext, load_context
from router.routing import RouteReason, RouteRequest, choose_region
from router.state import snapshot

PEAK_S = 1_662_512_400  # 2022-09-07T01:00Z, CISO's 2022 peak
TOLERANT_FROM_WEST_1 = RouteRequest("us-west-1", "tolerant", RoutingMode.SHIFT, 150.0)


@pytest.fixture(scope="module")
def context() -> FleetContext:
    return load_context(load_fleet())


def _route(context: FleetContext, **kwargs: object) -> str:
    snap = snapshot(context.fleet, context.trace, PEAK_S, **kwargs)  # type: ignore[arg-type]
    return choose_region(TOLERANT_FROM_WEST_1, snap.states, context.rtt_ms, context.fleet.routing).region


def test_snapshot_reads_each_region_from_its_own_zones(context: FleetContext) -> None:
    snap = snapshot(context.fleet, context.trace, PEAK_S, version=7)
    assert snap.version == 7
    by_name = {region.config.name: region for region in snap.regions}
    west1, east1, east2 = by_name["us-west-1"], by_name["us-east-1"], by_name["us-east-2"]
    assert west1.signals.demand_mw is not None
    assert west1.signals.demand_mw.value == 51104
    # us-east-1 takes demand from the Dominion sub-region but carbon from PJM as a whole.
    assert east1.signals.demand_mw is not None
    assert east2.signals.demand_mw is not None
    assert east1.signals.demand_mw.value < east2.signals.demand_mw.value / 3
    assert east1.signals.carbon_g_per_kwh == east2.signals.carbon_g_per_kwh
    assert west1.assessment.stress_level == 3
    assert [state.name for state in snap.states] == list(context.fleet.region_names)


def test_dr_event_on_the_best_region_moves_traffic_elsewhere(context: FleetContext) -> None:
    assert _route(context) == "us-west-2"
    event = DREvent(region="us-west-2", level=3, start="2022-09-07T00:00:00Z", end="2022-09-07T02:00:00Z")
    assert _route(context, events=[event]) not in ("us-west-2", "us-west-1")
    expired = DREvent(region="us-west-2", level=3, start="2022-09-06T00:00:00Z", end="2022-09-06T02:00:00Z")
    assert _route(context, events=[expired]) == "us-west-2"


def test_unhealthy_and_saturated_regions_lose_traffic(context: FleetContext) -> None:
    assert _route(context, healthy={"us-west-2": False}) != "us-west-2"
    # Saturated: the queueing estimate pushes its latency past the budget.
    assert _route(context, utilization={"us-west-2": 1.0}) != "us-west-2"


def test_realtime_ignores_grid_state_but_not_health(context: FleetContext) -> None:
    realtime = RouteRequest("us-west-1", "realtime", RoutingMode.STAY, 50.0)
    snap = snapshot(context.fleet, context.trace, PEAK_S)
    decision = choose_region(realtime, snap.states, context.rtt_ms, context.fleet.routing)
    assert (decision.region, decision.reason) == ("us-west-1", RouteReason.REALTIME_ORIGIN)
    down = snapshot(context.fleet, context.trace, PEAK_S, healthy={"us-west-1": False})
    decision = choose_region(realtime, down.states, context.rtt_ms, context.fleet.routing)
    assert (decision.region, decision.reason) == ("us-west-2", RouteReason.REALTIME_NEAREST)


def test_replay_clock_runs_at_speedup_and_stops_at_end() -> None:
    ticks = iter([100.0, 100.0, 101.5, 1000.0])
    clock = ReplayClock(start_s=PEAK_S, speedup=720, end_s=PEAK_S + 7200, monotonic_s=lambda: next(ticks))
    assert clock.now_s() == PEAK_S
    assert clock.now_s() == PEAK_S + 1.5 * 720
    assert clock.now_s() == PEAK_S + 7200  # clamped at the end of the window
    with pytest.raises(ValueError, match="speedup"):
        ReplayClock(start_s=0, speedup=0)


def test_clock_for_the_default_fleet_starts_at_the_heat_wave() -> None:
    source = load_fleet().signal_source
    assert isinstance(source, TraceSourceConfig)
    clock = clock_for_source(source)
    assert clock.start_s == 1_662_336_000  # 2022-09-05T00:00Z
    assert clock.speedup == 720
    assert clock.start_s <= clock.now_s() < clock.start_s + 3600


def test_fixed_and_wall_clocks() -> None:
    fixed = FixedClock(10.0)
    fixed.advance(5)
    assert fixed.now_s() == 15.0
    assert WallClock(lambda: 42.0).now_s() == 42.0
