"""The gateway's cached routing path and the simulator's lean one decide exactly as `choose_region` does, on the
property tests' random fleets."""

from __future__ import annotations

from dataclasses import replace

from hypothesis import given
from hypothesis import strategies as st

from router.routing import route_shares
from router.sticky import StickyRouter
from tests.unit.test_routing_properties import PROPERTY, Scenario, scenarios


@PROPERTY
@given(scenarios(), st.lists(st.floats(0.0, 1.0, exclude_max=True), min_size=1, max_size=6))
def test_cached_plans_give_choose_regions_decisions(scenario: Scenario, draws: list[float]) -> None:
    cached = StickyRouter(scenario.rtt_ms, scenario.config)
    fresh = StickyRouter(scenario.rtt_ms, scenario.config)
    for draw in draws:  # the first draw builds the plan; the others reuse it, with the memory each decision left
        got = cached.decide(scenario.request, scenario.regions, draw=draw, plan_key=("state", 1))
        want = fresh.decide(scenario.request, scenario.regions, draw=draw)
        assert got == want


@PROPERTY
@given(scenarios(), st.floats(0.0, 1.0, exclude_max=True))
def test_a_new_plan_key_replans(scenario: Scenario, draw: float) -> None:
    router = StickyRouter(scenario.rtt_ms, scenario.config)
    router.decide(scenario.request, scenario.regions, draw=draw, plan_key=1)
    calmer = tuple(replace(region, stress_level=0) for region in scenario.regions)
    after = router.decide(scenario.request, calmer, draw=draw, plan_key=2)
    memory = StickyRouter(scenario.rtt_ms, scenario.config)
    memory.decide(scenario.request, scenario.regions, draw=draw)
    assert after == memory.decide(scenario.request, calmer, draw=draw)


@PROPERTY
@given(scenarios())
def test_route_shares_are_choose_regions_eligible_split(scenario: Scenario) -> None:
    """The simulator's lean path: the same regions, probabilities and feasibility, as indices into the fleet."""
    shares = route_shares(
        scenario.request,
        scenario.regions,
        scenario.rtt_ms,
        scenario.config,
        previous_eligible=scenario.previous_eligible,
    )
    decision = scenario.decide()
    names = [region.name for region in scenario.regions]
    assert [(names[i], p) for i, p in shares.shares] == list(decision.eligible)
    assert shares.feasible == decision.feasible
