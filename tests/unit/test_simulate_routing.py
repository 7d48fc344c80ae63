"""The simulator's tolerant work lands where the gateway's router sends it, and its shared forecasts are the live
planner's own.

Routing: piece by piece, hour after hour, each origin's split is what router.sticky.StickyRouter (choose_region
with the gateway's anti-flap memory) answers on the same states, so the lean path the simulator takes
(StickyRouter.shares, router.routing.route_shares: no ranking, reasons or names) is the live rule and nothing else.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fleet.loaders import load_fleet
from fleet.routing import RoutingConfig, RoutingMode
from fleet.times import utc_now_from
from policies.plan_forecast import forecast_signal
from router.routing import RegionState, RouteRequest
from router.sticky import StickyRouter
from simulate.engine_jobs import JOB_SIGNAL, JobGate
from simulate.engine_route import Routed, route_tolerant
from simulate.inputs import load_inputs
from tests.unit.test_routing_properties import configs

COMPUTE = 4.0


def reference(
    router: StickyRouter,
    states: Sequence[RegionState],
    busy: list[float],
    tolerant_cpu: float,
    ratio: Sequence[float],
    chunks: int,
    budget_ms: float,
) -> Routed:
    """The routing the simulator stands for, spelled out: every piece a request to the gateway's router."""
    names = [s.name for s in states]
    n = len(names)
    routed = Routed(np.zeros(n), np.zeros((n, n)), 0.0)
    piece = tolerant_cpu / chunks
    for _ in range(chunks if piece > 0 else 0):
        for o, origin in enumerate(names):
            current = [
                RegionState(
                    s.name,
                    s.headroom,
                    s.stress_level,
                    s.healthy,
                    busy[i] / COMPUTE,
                    s.capacity_replicas,
                    s.service_time_ms,
                )
                for i, s in enumerate(states)
            ]
            decision = router.decide(RouteRequest(origin, "tolerant", RoutingMode.SHIFT, budget_ms), current)
            if not decision.feasible:
                routed.over_budget += piece
            for destination, share in decision.eligible:
                d = names.index(destination)
                routed.tolerant_in[d] += piece * share
                busy[d] += piece * share * ratio[d]
                if d != o:
                    routed.moved[o, d] += piece * share
    return routed


@st.composite
def fleets(draw: st.DrawFn) -> tuple[list[RegionState], dict[str, dict[str, float]], list[float], list[float]]:
    n = draw(st.integers(1, 7))
    names = [f"r{k}" for k in range(n)]
    states = [
        RegionState(
            name,
            draw(st.sampled_from([0.2, 0.5, 0.55, 0.9, 1.0])),
            draw(st.integers(0, 3)),
            draw(st.integers(0, 5)) > 0,
            0.0,
            draw(st.integers(1, 4)),
            draw(st.sampled_from([5.0, 20.0, 60.0])),
        )
        for name in names
    ]
    holes = draw(st.booleans())
    rtt: dict[str, dict[str, float]] = {
        a: {b: draw(st.floats(0.0, 120.0)) for b in names if a == b or not holes or draw(st.booleans())} for a in names
    }
    busy = [draw(st.floats(0.0, 1.2)) * COMPUTE for _ in names]
    ratio = [draw(st.sampled_from([1.0, 0.6, 0.35])) for _ in names]
    return states, rtt, busy, ratio


@settings(max_examples=150, deadline=None)
@given(fleets(), configs, st.integers(1, 4), st.floats(0.0, 3.0), st.sampled_from([40.0, 150.0, 400.0]))
def test_pieces_land_where_the_gateways_router_sends_them(fleet, config: RoutingConfig, chunks, tolerant, budget):
    states, rtt, busy, ratio = fleet
    ours = StickyRouter(rtt, config)
    theirs = StickyRouter(rtt, config)
    for hour in range(3):  # the memory of one hour's last decision carries into the next
        our_busy, their_busy = np.array(busy), list(busy)
        got = route_tolerant(ours, states, our_busy, COMPUTE, tolerant, np.array(ratio), chunks, budget)
        want = reference(theirs, states, their_busy, tolerant, ratio, chunks, budget)
        assert got.tolerant_in.tolist() == pytest.approx(want.tolerant_in.tolist(), abs=1e-12), hour
        assert got.moved.tolist() == [pytest.approx(row, abs=1e-12) for row in want.moved.tolist()], hour
        assert got.over_budget == pytest.approx(want.over_budget, abs=1e-12)
        assert our_busy.tolist() == pytest.approx(their_busy, abs=1e-12)
        busy = [b * 0.5 for b in busy]


def test_a_stressed_origin_sheds_to_calm_regions_and_the_memory_keeps_its_spread():
    states = [
        RegionState("hot", 0.1, 3, True, 0.0, 2, 20.0),
        RegionState("calm-a", 0.9, 0, True, 0.0, 2, 20.0),
        RegionState("calm-b", 0.9, 0, True, 0.0, 2, 20.0),
    ]
    names = ("hot", "calm-a", "calm-b")
    rtt = {a: dict.fromkeys(names, 10.0) for a in names}
    router = StickyRouter(rtt, RoutingConfig())
    routed = route_tolerant(router, states, np.zeros(3), COMPUTE, 1.0, np.ones(3), 4, 150.0)
    assert routed.tolerant_in[0] == 0.0  # nothing served in the grid emergency
    assert routed.moved[0, 1] > 0  # spread over both calm regions
    assert routed.moved[0, 2] > 0
    assert routed.tolerant_in.sum() == pytest.approx(3.0)
    assert router.memory("hot", "tolerant") == {"calm-a", "calm-b"}


def test_jobs_planned_in_one_zone_and_hour_share_the_live_forecast():
    inputs = load_inputs(load_fleet(None))
    fleet = inputs.context.fleet
    gate = JobGate(inputs.context, fleet, frozenset({"time"}), "forecast", fleet.serving.knobs)
    region = fleet.regions[0]
    now = int(utc_now_from("2022-09-06T12:00:00Z").timestamp())
    for hours in (6, 200, 30):  # shorter than the shared forecast, longer (recomputed), shorter again
        slots = np.arange(now, now + hours * 3600, 3600, dtype=np.int64)
        live = forecast_signal(inputs.context.trace, region, JOB_SIGNAL, now, slots, fleet.headroom)
        ours = gate._forecast(region, now, slots)
        assert np.array_equal(ours, live, equal_nan=True)
        assert np.isfinite(ours).any()
    before = int(utc_now_from("2015-01-01T00:00:00Z").timestamp())
    for _ in range(2):  # no trace there: the live function's error, every time it is asked
        with pytest.raises(ValueError, match="no 'carbon_g_per_kwh' value at or before"):
            gate._forecast(region, before, np.arange(before, before + 3600 * 4, 3600, dtype=np.int64))
