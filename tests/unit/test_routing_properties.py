"""Property tests of the region choice: every routing rule, on random fleets, plus pinned AWS examples.

The oracle below (`expected`) recomputes what the rules say from the inputs alone (feasibility, grid
avoidance, scores), using only the two documented formulas `estimate_latency_ms` and `score`; the tests
then hold `choose_region`'s answer against it. Boundary comparisons keep an EPS of slack both ways, so a
correct implementation that rounds differently at a threshold still passes.
"""

from __future__ import annotations

import json
import math
import random
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fleet.errors import UnknownRegionError
from fleet.routing import RoutingConfig, RoutingMode
from router.routing import (
    RegionState,
    RouteDecision,
    RouteReason,
    RouteRequest,
    Verdict,
    choose_region,
    estimate_latency_ms,
    score,
)

EPS = 1e-9
SPARE_FLOOR = 0.05  # spare-capacity weight floor of the spread rule (a saturated region keeps a sliver)
DEFAULTS = RoutingConfig()

PROPERTY = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
CHEAP = settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# ----------------------------------------------------------------------------------------------------------
# Scenarios: a fleet, a latency matrix, a request, a config, the previous eligible set and a draw.
# ----------------------------------------------------------------------------------------------------------

NAMES = tuple(f"r{i:02d}" for i in range(12))
EDGE_ORIGIN = "edge-0"  # an origin with round-trip times but no serving region (no origin preference)


@dataclass(frozen=True)
class Scenario:
    request: RouteRequest
    regions: tuple[RegionState, ...]
    rtt_ms: dict[str, dict[str, float]]
    config: RoutingConfig
    previous_eligible: frozenset[str]
    draw: float

    def decide(
        self,
        regions: Sequence[RegionState] | None = None,
        previous_eligible: frozenset[str] | None = None,
        draw: float | None = None,
    ) -> RouteDecision:
        return choose_region(
            self.request,
            self.regions if regions is None else regions,
            self.rtt_ms,
            self.config,
            previous_eligible=self.previous_eligible if previous_eligible is None else previous_eligible,
            draw=self.draw if draw is None else draw,
        )


headrooms = st.floats(0.0, 1.0)
utilizations = st.floats(0.0, 1.5)
stress_levels = st.integers(0, 3)


def random_configs() -> st.SearchStrategy[RoutingConfig]:
    fraction = st.one_of(st.floats(0.0, 0.25), st.floats(0.0, 1.0))
    return st.builds(
        RoutingConfig,
        origin_margin=fraction,
        spread_band=fraction,
        stickiness=st.one_of(st.floats(0.0, 0.1), st.floats(0.0, 1.0)),
        load_penalty=fraction,
        avoid_stress_level=st.integers(1, 3),
        max_queue_factor=st.floats(1.0, 50.0),
    )


configs = st.one_of(st.just(DEFAULTS), random_configs())


@st.composite
def region_states(draw: st.DrawFn, name: str, snap: bool, crowded: bool = False) -> RegionState:
    headroom = draw(headrooms)
    utilization = draw(utilizations)
    if crowded:  # healthy, calm, scores bunched near the top: spreads over three or more regions are common
        headroom = 0.8 + 0.06 * headroom
        utilization = utilization if utilization > 1.0 else 0.1 * utilization  # a few saturated ones
    if snap:  # on a grid, scores tie and sit exactly on band and margin edges
        headroom, utilization = round(headroom * 20) / 20, round(utilization * 4) / 4
    return RegionState(
        name=name,
        headroom=headroom,
        stress_level=draw(st.integers(0, 2) if crowded else stress_levels),
        healthy=crowded or draw(st.integers(0, 4)) > 0,  # mostly healthy
        utilization=utilization,
        capacity_replicas=draw(st.integers(1, 8)),
        service_time_ms=draw(st.floats(0.0, 40.0)),
    )


@st.composite
def scenarios(
    draw: st.DrawFn,
    mode: RoutingMode | None = None,
    config: st.SearchStrategy[RoutingConfig] = configs,
    budget: st.SearchStrategy[float] | None = None,
    with_previous: bool = True,
    crowded: bool = False,
) -> Scenario:
    # Few primitive draws per example (hypothesis spends ~50 us on each): fleet-wide switches, and a
    # seeded RNG for what need not shrink (input order, the rows the router must not read).
    rng = random.Random(draw(st.integers(0, 2**32 - 1)))  # st.randoms() draws per call: slow
    count = draw(st.integers(3 if crowded else 1, 12))
    names = list(NAMES[:count])
    rng.shuffle(names)  # input order differs from name order
    snap = draw(st.booleans())
    regions = tuple(draw(region_states(name, snap, crowded)) for name in names)
    # Crowded fleets are served from outside, so no origin preference hides the spread.
    origin = EDGE_ORIGIN if crowded else draw(st.sampled_from([*names, *names, EDGE_ORIGIN]))
    # The origin's row is what the router reads: drawn entry by entry (with holes, in some fleets) so it
    # shrinks; its own entry is always there. Other rows are asymmetric noise, so reading the wrong row
    # or column shows.
    holes = draw(st.booleans())
    origin_row: dict[str, float] = {}
    for name in names:
        if name == origin:
            origin_row[name] = draw(st.floats(0.0, 5.0))
        elif not (holes and rng.random() < 0.3):
            origin_row[name] = draw(st.floats(0.0, 300.0))
    if not origin_row:  # an origin that reaches no region at all is refused (see test_unreachable_fleet_raises)
        origin_row[names[0]] = draw(st.floats(0.0, 300.0))
    matrix: dict[str, dict[str, float]] = {
        source: {target: rng.uniform(0.0, 300.0) for target in names} for source in [*names, EDGE_ORIGIN]
    }
    matrix[origin] = origin_row
    routing_mode = mode if mode is not None else draw(st.sampled_from([RoutingMode.STAY, RoutingMode.SHIFT]))
    if budget is None:
        budget = st.floats(400.0, 3000.0) if crowded else st.one_of(st.floats(0.0, 600.0), st.floats(0.0, 3000.0))
    budget_ms = draw(budget)
    previous: frozenset[str] = frozenset()
    if with_previous:
        mask = draw(st.integers(0, 2**count - 1))
        previous = frozenset(name for bit, name in enumerate(names) if mask >> bit & 1)
    return Scenario(
        request=RouteRequest(origin, "cls", routing_mode, budget_ms),
        regions=regions,
        rtt_ms=matrix,
        config=draw(config),
        previous_eligible=previous,
        draw=draw(st.floats(0.0, 1.0, exclude_max=True)),
    )


# ----------------------------------------------------------------------------------------------------------
# Oracle: what the rules say, from the inputs alone.
# ----------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Expected:
    rtt: dict[str, float | None]
    feasible: tuple[str, ...]  # healthy, known RTT, estimated latency within budget; input order
    avoided: frozenset[str]  # feasible but at or above the avoided stress level (tolerant only)
    pool: tuple[str, ...]  # where the rules let a feasible choice fall
    scores: dict[str, float]


def expected(scenario: Scenario) -> Expected:
    row = scenario.rtt_ms[scenario.request.origin]
    config = scenario.config
    rtt: dict[str, float | None] = {}
    feasible: list[str] = []
    avoided: set[str] = set()
    loaded: list[str] = []
    for region in scenario.regions:
        region_rtt = row.get(region.name)
        rtt[region.name] = region_rtt
        if region_rtt is None or not region.healthy:
            continue
        if estimate_latency_ms(region_rtt, region, config) <= scenario.request.latency_budget_ms:
            feasible.append(region.name)
            if scenario.request.mode is RoutingMode.SHIFT and region.stress_level >= config.avoid_stress_level:
                avoided.add(region.name)
        elif (
            scenario.request.mode is RoutingMode.SHIFT
            and region.stress_level < config.avoid_stress_level
            and region_rtt + region.service_time_ms <= scenario.request.latency_budget_ms
        ):
            loaded.append(region.name)
    calm = [name for name in feasible if name not in avoided]
    if not calm and loaded:
        # Calm regions within the budget when idle, loaded past it now: tolerant work waits there rather than
        # spill into a grid emergency, so they count as feasible.
        feasible = [name for name in (r.name for r in scenario.regions) if name in set(loaded) | set(feasible)]
        calm = list(loaded)
    pool = tuple(calm or feasible)
    scores = {region.name: score(region, config) for region in scenario.regions}
    return Expected(rtt, tuple(feasible), frozenset(avoided), pool, scores)


def by_name(scenario: Scenario) -> dict[str, RegionState]:
    return {region.name: region for region in scenario.regions}


def eligible_names(decision: RouteDecision) -> list[str]:
    return [name for name, _ in decision.eligible]


def origin_preferred(scenario: Scenario, oracle: Expected) -> bool | None:
    """True: the rules keep a tolerant request at its origin; False: they do not; None: on the edge."""
    origin = scenario.request.origin
    if origin not in oracle.pool:
        return False
    config = scenario.config
    best = max(oracle.scores[name] for name in oracle.pool)
    # The origin keeps its stickiness only when it alone was eligible last time (it was keeping its traffic).
    stayed = scenario.previous_eligible == frozenset({origin})
    margin = config.origin_margin + (config.stickiness if stayed else 0.0)
    if oracle.scores[origin] >= best - margin + EPS:
        return True
    if oracle.scores[origin] < best - margin - EPS:
        return False
    return None


# ----------------------------------------------------------------------------------------------------------
# Properties.
# ----------------------------------------------------------------------------------------------------------


@PROPERTY
@given(scenarios())
def test_decision_shape(scenario: Scenario) -> None:
    """ranked/eligible/candidates are well formed; the function is pure."""
    decision = scenario.decide()
    oracle = expected(scenario)

    assert decision.ranked[0] == decision.region
    assert len(set(decision.ranked)) == len(decision.ranked)
    names = eligible_names(decision)
    assert len(set(names)) == len(names)
    assert decision.region in names
    assert set(names) <= set(decision.ranked)
    assert all(0.0 < p <= 1.0 + EPS for _, p in decision.eligible)
    assert math.isclose(sum(p for _, p in decision.eligible), 1.0, rel_tol=1e-9)
    if decision.feasible:
        assert set(decision.ranked) <= set(oracle.feasible)
        assert set(names) <= set(oracle.pool)
    else:
        assert decision.eligible == ((decision.region, 1.0),)

    assert [c.region for c in decision.candidates] == [r.name for r in scenario.regions]
    chosen = [c for c in decision.candidates if c.verdict is Verdict.CHOSEN]
    assert [c.region for c in chosen] == [decision.region]
    for candidate in decision.candidates:
        if candidate.verdict is Verdict.ELIGIBLE:
            assert candidate.region in names
        if decision.feasible and candidate.verdict is not Verdict.CHOSEN:
            assert (candidate.verdict is Verdict.FILTERED) == (candidate.region not in oracle.feasible)
            assert (candidate.verdict is Verdict.AVOIDED) == (
                candidate.region in oracle.avoided and candidate.region not in names
            )

    assert scenario.decide() == decision


@PROPERTY
@given(scenarios())
def test_never_over_budget_while_a_region_fits(scenario: Scenario) -> None:
    decision = scenario.decide()
    oracle = expected(scenario)
    if oracle.feasible:
        assert decision.feasible
        assert decision.region in oracle.feasible
        assert decision.reason not in (RouteReason.NO_FEASIBLE, RouteReason.NO_HEALTHY)
    else:
        assert not decision.feasible
        assert decision.reason in (RouteReason.NO_FEASIBLE, RouteReason.NO_HEALTHY)


@PROPERTY
@given(scenarios(budget=st.one_of(st.floats(0.0, 15.0), st.floats(0.0, 60.0))))
def test_nothing_fits_falls_back_to_nearest_healthy(scenario: Scenario) -> None:
    oracle = expected(scenario)
    if oracle.feasible:
        return  # covered by the budget property; tight budgets make this branch rare
    decision = scenario.decide()
    states = by_name(scenario)
    known = {name: value for name, value in oracle.rtt.items() if value is not None}
    healthy = {name: value for name, value in known.items() if states[name].healthy}
    assert not decision.feasible
    if healthy:
        assert decision.reason is RouteReason.NO_FEASIBLE
        assert decision.region in healthy
        # Tolerant work keeps out of a grid emergency while a calm healthy region exists, within budget or not.
        calm = {
            name: value
            for name, value in healthy.items()
            if scenario.request.mode is not RoutingMode.SHIFT
            or states[name].stress_level < scenario.config.avoid_stress_level
        }
        nearest = calm or healthy
        assert nearest[decision.region] == min(nearest.values())
        assert set(decision.ranked) <= set(healthy)
    else:
        assert decision.reason is RouteReason.NO_HEALTHY
        assert known[decision.region] == min(known.values())


@PROPERTY
@given(scenarios(mode=RoutingMode.STAY))
def test_realtime_stays_at_origin_else_nearest_feasible(scenario: Scenario) -> None:
    oracle = expected(scenario)
    if not oracle.feasible:
        return
    decision = scenario.decide()
    origin = scenario.request.origin
    if origin in oracle.feasible:
        assert decision.region == origin
        assert decision.reason is RouteReason.REALTIME_ORIGIN
    else:
        feasible_rtt = {name: oracle.rtt[name] or 0.0 for name in oracle.feasible}
        assert decision.reason is RouteReason.REALTIME_NEAREST
        assert feasible_rtt[decision.region] == min(feasible_rtt.values())
    assert decision.eligible == ((decision.region, 1.0),)


@PROPERTY
@given(
    scenarios(mode=RoutingMode.STAY),
    st.lists(st.tuples(headrooms, stress_levels), min_size=12, max_size=12),
    st.floats(0.0, 1.0, exclude_max=True),
)
def test_realtime_is_never_moved_for_grid_reasons(
    scenario: Scenario, grid: list[tuple[float, int]], other_draw: float
) -> None:
    before = scenario.decide()
    regridded = [
        replace(region, headroom=headroom, stress_level=stress)
        for region, (headroom, stress) in zip(scenario.regions, grid, strict=False)
    ]
    after = scenario.decide(regions=regridded, draw=other_draw)
    assert (after.region, after.reason, after.feasible, after.ranked, after.eligible) == (
        before.region,
        before.reason,
        before.feasible,
        before.ranked,
        before.eligible,
    )


@PROPERTY
@given(scenarios(mode=RoutingMode.SHIFT))
def test_tolerant_goes_to_best_calm_region_or_stays_at_origin(scenario: Scenario) -> None:
    oracle = expected(scenario)
    if not oracle.feasible:
        return
    decision = scenario.decide()
    calm = [name for name in oracle.feasible if name not in oracle.avoided]
    if calm:
        assert decision.region in calm, "an emergency-stressed region was chosen while a calm one fit"
        assert decision.reason is not RouteReason.ONLY_STRESSED
    else:
        assert decision.reason is RouteReason.ONLY_STRESSED
    assert decision.region in oracle.pool

    config = scenario.config
    best = max(oracle.scores[name] for name in oracle.pool)
    origin = scenario.request.origin
    stays = origin_preferred(scenario, oracle)
    if stays:
        assert decision.region == origin
        assert decision.eligible == ((origin, 1.0),)
        assert decision.reason in (RouteReason.ORIGIN_PREFERRED, RouteReason.ONLY_STRESSED)
    elif stays is False:
        assert decision.reason is not RouteReason.ORIGIN_PREFERRED
        # Near the top: within the spread band, or the stickiness beyond it for a previously eligible region.
        slack = config.spread_band + (config.stickiness if decision.region in scenario.previous_eligible else 0.0)
        assert oracle.scores[decision.region] >= best - slack - EPS


tolerant_scenarios = st.one_of(scenarios(mode=RoutingMode.SHIFT), scenarios(mode=RoutingMode.SHIFT, crowded=True))


@PROPERTY
@given(tolerant_scenarios)
def test_load_spreads_by_spare_capacity_among_near_best(scenario: Scenario) -> None:
    oracle = expected(scenario)
    if not oracle.feasible or origin_preferred(scenario, oracle) is not False:
        return
    decision = scenario.decide()
    config = scenario.config
    best = max(oracle.scores[name] for name in oracle.pool)

    def sticky(name: str) -> float:
        return config.stickiness if name in scenario.previous_eligible else 0.0

    must = {name for name in oracle.pool if oracle.scores[name] >= best - config.spread_band - sticky(name) + EPS}
    may = {name for name in oracle.pool if oracle.scores[name] >= best - config.spread_band - sticky(name) - EPS}
    names = eligible_names(decision)
    assert must <= set(names) <= may
    if len(must) >= 2:  # no herding onto the single best region
        assert len(names) >= 2
    states = by_name(scenario)
    weights = {n: states[n].capacity_replicas * max(1.0 - states[n].utilization, SPARE_FLOOR) for n in names}
    total = sum(weights.values())
    for name, probability in decision.eligible:
        assert math.isclose(probability, weights[name] / total, rel_tol=1e-9, abs_tol=1e-12)
    if not [n for n in oracle.feasible if n not in oracle.avoided]:
        assert decision.reason is RouteReason.ONLY_STRESSED
    else:
        assert decision.reason is (RouteReason.SPREAD if len(names) > 1 else RouteReason.MOST_HEADROOM)


@CHEAP
@given(tolerant_scenarios)
def test_draw_picks_each_eligible_region_with_its_probability(scenario: Scenario) -> None:
    draws = 200
    decisions = [scenario.decide(draw=k / draws) for k in range(draws)]
    first = decisions[0]
    assert all(d.eligible == first.eligible for d in decisions), "the draw only picks; it must not move the set"
    counts = Counter(d.region for d in decisions)
    assert set(counts) <= set(eligible_names(first))
    for name, probability in first.eligible:
        assert abs(counts[name] / draws - probability) <= 1.0 / draws + EPS, (name, counts, first.eligible)


def nudged(
    regions: Sequence[RegionState], eligible: frozenset[str], sizes: Sequence[float], stickiness: float
) -> list[RegionState]:
    """The worst tiny change for hysteresis: eligible regions lose headroom, the others gain, each by
    less than stickiness / 2 (so any score gap moves by less than stickiness)."""
    return [
        replace(region, headroom=min(1.0, max(0.0, region.headroom + (-size if region.name in eligible else size))))
        for region, size in zip(regions, (size * stickiness for size in sizes), strict=False)
    ]


nudge_sizes = st.lists(st.floats(0.0, 0.45), min_size=12, max_size=12)  # x stickiness


@PROPERTY
@given(scenarios(mode=RoutingMode.SHIFT, config=configs, with_previous=False), nudge_sizes)
def test_tiny_headroom_change_keeps_previously_eligible_regions(scenario: Scenario, sizes: list[float]) -> None:
    first = scenario.decide(previous_eligible=frozenset())
    previous = frozenset(eligible_names(first))
    second = scenario.decide(
        regions=nudged(scenario.regions, previous, sizes, scenario.config.stickiness), previous_eligible=previous
    )
    origin = scenario.request.origin
    # The origin winning all its traffic back is a move, not a flap: it was not keeping it (it was gone, or one
    # member of a spread), so the plain origin margin applies; once it keeps it, stickiness holds it there.
    origin_returns = second.eligible == ((origin, 1.0),) and previous != {origin} and origin in expected(scenario).pool
    if not origin_returns:
        assert previous <= set(eligible_names(second)), (first.eligible, second.eligible)


@PROPERTY
@given(scenarios(mode=RoutingMode.SHIFT, config=configs, with_previous=False), nudge_sizes)
def test_alternating_tiny_headroom_changes_settle(scenario: Scenario, sizes: list[float]) -> None:
    start = frozenset(eligible_names(scenario.decide(previous_eligible=frozenset())))
    fleets = (list(scenario.regions), nudged(scenario.regions, start, sizes, scenario.config.stickiness))
    previous: frozenset[str] = frozenset()
    history: list[frozenset[str]] = []
    for step in range(6):
        decision = scenario.decide(regions=fleets[step % 2], previous_eligible=previous)
        previous = frozenset(eligible_names(decision))
        history.append(previous)
    assert history[3] == history[4] == history[5], history


# ----------------------------------------------------------------------------------------------------------
# Examples on the four US AWS regions, with their real p50 round-trip times (ms).
# ----------------------------------------------------------------------------------------------------------

US = ("us-east-1", "us-east-2", "us-west-1", "us-west-2")
AWS_US_RTT_MS: dict[str, dict[str, float]] = {
    "us-east-1": {"us-east-1": 5.349, "us-east-2": 14.668, "us-west-1": 63.932, "us-west-2": 64.269},
    "us-east-2": {"us-east-1": 16.128, "us-east-2": 4.915, "us-west-1": 52.913, "us-west-2": 51.1},
    "us-west-1": {"us-east-1": 63.80095, "us-east-2": 52.498, "us-west-1": 2.503996, "us-west-2": 21.93397},
    "us-west-2": {"us-east-1": 63.97194, "us-east-2": 50.62995, "us-west-1": 21.93998, "us-west-2": 3.042},
}


def us_fleet(**changes: dict[str, Any]) -> list[RegionState]:
    """Four calm, healthy regions (headroom 0.5, 20 % busy, 4 replicas, 20 ms service); `changes` per region."""
    base = {name: RegionState(name, 0.5, 0, True, 0.2, 4, 20.0) for name in US}
    return [replace(base[name], **changes.get(name.replace("-", "_"), {})) for name in US]


def route(
    origin: str,
    mode: RoutingMode,
    budget_ms: float,
    regions: Sequence[RegionState],
    config: RoutingConfig = DEFAULTS,
    previous_eligible: frozenset[str] = frozenset(),
    draw: float = 0.0,
) -> RouteDecision:
    request = RouteRequest(origin, mode.value, mode, budget_ms)
    return choose_region(request, regions, AWS_US_RTT_MS, config, previous_eligible=previous_eligible, draw=draw)


def test_pinned_rtts_match_the_shared_matrix(shared_data: Path) -> None:
    data = json.loads((shared_data / "latency" / "aws_interregion_p50_1y_ms.json").read_text())["data"]
    assert {a: {b: data[a][b] for b in US} for a in US} == AWS_US_RTT_MS


def test_tolerant_leaves_an_origin_in_grid_emergency() -> None:
    fleet = us_fleet(
        us_east_1={"headroom": 0.6},
        us_east_2={"headroom": 0.5, "stress_level": 1},
        us_west_1={"headroom": 0.9, "stress_level": 3},
        us_west_2={"headroom": 0.45},
    )
    decision = route("us-west-1", RoutingMode.SHIFT, 200.0, fleet)
    assert decision.feasible
    assert decision.region == "us-east-1"
    assert decision.reason is RouteReason.MOST_HEADROOM
    assert {c.region: c.verdict for c in decision.candidates}["us-west-1"] is Verdict.AVOIDED
    assert decision.ranked == ("us-east-1", "us-east-2", "us-west-2", "us-west-1")  # avoided: last resort

    calmer = [replace(r, stress_level=2) if r.name == "us-west-1" else r for r in fleet]
    stays = route("us-west-1", RoutingMode.SHIFT, 200.0, calmer)
    assert (stays.region, stays.reason) == ("us-west-1", RouteReason.ORIGIN_PREFERRED)


def test_tolerant_serves_from_stressed_regions_when_only_they_fit() -> None:
    fleet = us_fleet(us_west_1={"stress_level": 3}, us_west_2={"stress_level": 3, "headroom": 0.9})
    decision = route("us-west-1", RoutingMode.SHIFT, 60.0, fleet)  # the us-east regions are out of budget
    assert decision.feasible
    assert decision.reason is RouteReason.ONLY_STRESSED
    assert decision.region == "us-west-2"


def test_realtime_stays_at_an_origin_in_grid_emergency() -> None:
    fleet = us_fleet(us_west_1={"stress_level": 3, "headroom": 0.0}, us_east_1={"headroom": 1.0})
    decision = route("us-west-1", RoutingMode.STAY, 50.0, fleet)
    assert (decision.region, decision.reason, decision.feasible) == ("us-west-1", RouteReason.REALTIME_ORIGIN, True)
    assert decision.eligible == (("us-west-1", 1.0),)


def test_realtime_moves_to_nearest_healthy_not_to_the_best_grid() -> None:
    fleet = us_fleet(
        us_west_1={"healthy": False},
        us_west_2={"stress_level": 3, "headroom": 0.0},
        us_east_1={"headroom": 1.0},
        us_east_2={"headroom": 1.0},
    )
    decision = route("us-west-1", RoutingMode.STAY, 150.0, fleet)  # every healthy region fits
    assert (decision.region, decision.reason) == ("us-west-2", RouteReason.REALTIME_NEAREST)
    assert decision.ranked == ("us-west-2", "us-east-2", "us-east-1")


def test_budget_is_inclusive() -> None:
    fleet = [replace(r, utilization=0.0, service_time_ms=0.0) for r in us_fleet(us_west_1={"healthy": False})]
    decision = route("us-west-1", RoutingMode.STAY, AWS_US_RTT_MS["us-west-1"]["us-west-2"], fleet)
    assert (decision.region, decision.feasible) == ("us-west-2", True)


@pytest.mark.parametrize("mode", [RoutingMode.STAY, RoutingMode.SHIFT])
def test_tight_budget_with_origin_down_gives_nearest_healthy(mode: RoutingMode) -> None:
    fleet = [replace(r, utilization=0.0, service_time_ms=5.0) for r in us_fleet(us_west_1={"healthy": False})]
    decision = route("us-west-1", mode, 10.0, fleet)
    assert not decision.feasible
    assert (decision.region, decision.reason) == ("us-west-2", RouteReason.NO_FEASIBLE)
    assert decision.ranked == ("us-west-2", "us-east-2", "us-east-1")


def test_no_healthy_region() -> None:
    fleet = [replace(r, healthy=False) for r in us_fleet()]
    decision = route("us-east-2", RoutingMode.SHIFT, 300.0, fleet)
    assert (decision.region, decision.reason, decision.feasible) == ("us-east-2", RouteReason.NO_HEALTHY, False)


def split_fleet() -> list[RegionState]:
    # Scores: us-east-1 0.2 (origin, far off), us-east-2 0.72, us-west-1 0.75, us-west-2 0.76: three within 0.05.
    # Spare-capacity weights 2 * 0.5 = 1, 4 * 0.75 = 3, 4 * 1.0 = 4.
    return us_fleet(
        us_east_1={"headroom": 0.2, "utilization": 0.0},
        us_east_2={"headroom": 0.82, "utilization": 0.5, "capacity_replicas": 2},
        us_west_1={"headroom": 0.80, "utilization": 0.25, "capacity_replicas": 4},
        us_west_2={"headroom": 0.76, "utilization": 0.0, "capacity_replicas": 4},
    )


def test_spread_split_over_4000_draws_matches_probabilities() -> None:
    fleet = split_fleet()
    decision = route("us-east-1", RoutingMode.SHIFT, 300.0, fleet)
    assert decision.reason is RouteReason.SPREAD
    probabilities = dict(decision.eligible)
    expected_split = {"us-west-2": 0.5, "us-west-1": 0.375, "us-east-2": 0.125}
    assert probabilities.keys() == expected_split.keys()
    for name, share in expected_split.items():
        assert probabilities[name] == pytest.approx(share)
    draws = 4000
    counts = Counter(route("us-east-1", RoutingMode.SHIFT, 300.0, fleet, draw=i / draws).region for i in range(draws))
    for name, share in expected_split.items():
        assert abs(counts[name] / draws - share) <= 0.01, counts
    assert set(counts) == set(expected_split)


def test_saturated_region_keeps_a_floor_share() -> None:
    fleet = [replace(r, utilization=1.4) if r.name == "us-west-1" else r for r in split_fleet()]
    fleet = [replace(r, headroom=r.headroom + 0.2 * 0.75) if r.name == "us-west-1" else r for r in fleet]
    probabilities = dict(route("us-east-1", RoutingMode.SHIFT, 1000.0, fleet).eligible)
    assert probabilities["us-west-1"] == pytest.approx(4 * SPARE_FLOOR / (1 + 4 * SPARE_FLOOR + 4))


def test_origin_within_margin_stays_and_keeps_stickiness() -> None:
    def fleet(origin_headroom: float) -> list[RegionState]:
        return us_fleet(
            us_east_2={"headroom": origin_headroom},
            us_west_2={"headroom": 0.72},
            us_east_1={"headroom": 0.1},
            us_west_1={"headroom": 0.1},
        )

    assert route("us-east-2", RoutingMode.SHIFT, 200.0, fleet(0.65)).reason is RouteReason.ORIGIN_PREFERRED
    moved = route("us-east-2", RoutingMode.SHIFT, 200.0, fleet(0.60))  # 0.12 below the best: margin 0.1
    assert moved.region == "us-west-2"
    sticky = route("us-east-2", RoutingMode.SHIFT, 200.0, fleet(0.60), previous_eligible=frozenset({"us-east-2"}))
    assert (sticky.region, sticky.reason) == ("us-east-2", RouteReason.ORIGIN_PREFERRED)


def test_previously_eligible_region_keeps_stickiness_margin() -> None:
    def fleet(west_1: float) -> list[RegionState]:
        return us_fleet(
            us_east_1={"headroom": 0.1},
            us_east_2={"headroom": 0.1},
            us_west_1={"headroom": west_1},
            us_west_2={"headroom": 0.8},
        )

    both = frozenset({"us-west-1", "us-west-2"})
    assert eligible_names(route("us-east-1", RoutingMode.SHIFT, 200.0, fleet(0.74))) == ["us-west-2"]
    kept = route("us-east-1", RoutingMode.SHIFT, 200.0, fleet(0.74), previous_eligible=both)
    assert set(eligible_names(kept)) == both
    assert kept.reason is RouteReason.SPREAD
    dropped = route("us-east-1", RoutingMode.SHIFT, 200.0, fleet(0.70), previous_eligible=both)
    assert eligible_names(dropped) == ["us-west-2"]


def test_latency_estimate_and_score() -> None:
    region = RegionState("x", 0.9, 0, True, 0.5, 4, 20.0)
    assert estimate_latency_ms(10.0, region, DEFAULTS) == pytest.approx(50.0)  # 20 ms x 1 / (1 - 0.5)
    assert estimate_latency_ms(10.0, replace(region, utilization=1.2), DEFAULTS) == pytest.approx(410.0)  # capped
    assert score(region, DEFAULTS) == pytest.approx(0.8)
    assert score(replace(region, utilization=2.0), DEFAULTS) == pytest.approx(0.7)  # load penalty capped at full


def test_unknown_origin_raises() -> None:
    with pytest.raises(UnknownRegionError, match="mars-1"):
        route("mars-1", RoutingMode.SHIFT, 200.0, us_fleet())


def test_deferred_class_is_not_routed() -> None:
    with pytest.raises(ValueError, match="deferred"):
        route("us-east-1", RoutingMode.DEFER, 200.0, us_fleet())


def test_unreachable_fleet_raises() -> None:
    with pytest.raises(UnknownRegionError, match="no round-trip time"):
        choose_region(
            RouteRequest("edge-0", "tolerant", RoutingMode.SHIFT, 200.0),
            us_fleet(),
            {"edge-0": {"eu-west-1": 5.0}},
            DEFAULTS,
        )


def test_empty_fleet_is_refused() -> None:
    with pytest.raises(ValueError, match="no regions"):
        route("us-east-1", RoutingMode.SHIFT, 200.0, [])


def test_no_flapping_when_spread_band_exceeds_origin_margin() -> None:
    # Regression: an origin that was merely one member of a spread got the origin stickiness, so with
    # spread_band > origin_margin traffic flapped between {origin} and the spread on a 0.002 wobble.
    config = RoutingConfig(origin_margin=0.02, spread_band=0.1, stickiness=0.03)
    previous: frozenset[str] = frozenset()
    history = []
    for step in range(6):
        origin_headroom = 0.751 if step % 2 == 0 else 0.749  # wobble 0.002, well under the 0.03 stickiness
        fleet = us_fleet(
            us_east_1={"headroom": 0.1},
            us_east_2={"headroom": 0.1},
            us_west_1={"headroom": origin_headroom, "utilization": 0.0},
            us_west_2={"headroom": 0.8, "utilization": 0.0},
        )
        decision = route("us-west-1", RoutingMode.SHIFT, 200.0, fleet, config=config, previous_eligible=previous)
        previous = frozenset(eligible_names(decision))
        history.append(previous)
    assert history[3] == history[4] == history[5], history
