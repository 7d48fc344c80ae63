"""Region choice: the one pure routing function used by the gateway, the CLI, the load-test checker and simulations.

Given a request (origin, class, latency budget), each region's state and the round-trip times, it returns
the chosen region, the ranked fallbacks, the regions it could have picked (with weights), and why.
Randomness is injected (`draw`), so the function is deterministic and a checker can replay it.
`route_shares` is the same rules' eligible split alone, for the simulator, which needs no ranking or reasons.
docs/routing.md explains the rules.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from fleet.errors import UnknownRegionError
from fleet.routing import RoutingConfig, RoutingMode

# The vocabulary lives in router.route_types; callers keep importing it from here, next to the function.
from router.route_types import Candidate as Candidate
from router.route_types import RegionState as RegionState
from router.route_types import RouteDecision as RouteDecision
from router.route_types import RouteReason as RouteReason
from router.route_types import RouteRequest as RouteRequest
from router.route_types import Verdict as Verdict

# Spare-capacity weight floor: a saturated but feasible region keeps a sliver of share, so weights never
# all vanish and a region is not starved by a momentary spike in its load figure.
_MIN_SPARE = 0.05


def estimate_latency_ms(rtt_ms: float, region: RegionState, config: RoutingConfig) -> float:
    """Round trip plus service time, slowed by queueing as 1 / (1 - utilisation), capped."""
    # `b if b < a else a` is min(a, b), NaN included, without the builtin's call: this runs per region per request.
    busy = 0.999 if region.utilization > 0.999 else region.utilization
    queue_factor = 1.0 / (1.0 - busy)
    cap = config.max_queue_factor
    return rtt_ms + region.service_time_ms * (cap if cap < queue_factor else queue_factor)


def score(region: RegionState, config: RoutingConfig) -> float:
    """Headroom less a penalty for load, so a busy region attracts less even when its grid is good."""
    return region.headroom - config.load_penalty * (1.0 if region.utilization > 1.0 else region.utilization)


def choose_region(
    request: RouteRequest,
    regions: Sequence[RegionState],
    rtt_ms: Mapping[str, Mapping[str, float]],
    config: RoutingConfig,
    *,
    previous_eligible: frozenset[str] = frozenset(),
    draw: float = 0.0,
    explain: bool = True,
) -> RouteDecision:
    """Choose the serving region for one request.

    `previous_eligible` is the eligible set of the previous decision for the same (origin, class): regions
    in it keep a `stickiness` margin, so tiny headroom changes do not flap traffic. `draw` in [0, 1) picks
    among eligible regions by weight. With `explain=False` the decision carries no per-candidate detail
    (`candidates` is empty): the serving path skips that work, the explain endpoints keep it.
    """
    row = _checked_row(request, regions, rtt_ms)
    scored, pool, avoided = _classify(request, regions, row, config)
    if request.mode is RoutingMode.STAY:
        return _route_stay(request, scored, pool, config, explain)
    return _route_shift(request, scored, pool, avoided, config, previous_eligible, draw, explain)


@dataclass(frozen=True, slots=True)
class RouteShares:
    """`choose_region`'s decision reduced to where the draw may send the request: (index into the regions given,
    probability) in draw order, and whether any region fit the budget."""

    feasible: bool
    shares: tuple[tuple[int, float], ...]


def route_shares(
    request: RouteRequest,
    regions: Sequence[RegionState],
    rtt_ms: Mapping[str, Mapping[str, float]],
    config: RoutingConfig,
    *,
    previous_eligible: frozenset[str] = frozenset(),
) -> RouteShares:
    """The regions `choose_region` may send the request to, with their probabilities, without the ranking, reasons
    or names it also builds: for callers that split work by the expectation of the draw (the simulator routes
    thousands of pieces an hour) and need nothing else. Same rules, same numbers (tests/unit/test_routing_cache.py).
    """
    if request.mode is RoutingMode.SHIFT:
        scored, pool, avoided = _classify(request, regions, _checked_row(request, regions, rtt_ms), config)
        choice = _shift_choice(request, scored, pool, avoided, config, previous_eligible)
        if choice is not None:
            return RouteShares(True, tuple(choice.probabilities.items()))
    # Real-time work and fallbacks: one region, whatever it is; rare enough to take the whole decision.
    decision = choose_region(request, regions, rtt_ms, config, previous_eligible=previous_eligible, explain=False)
    index = {region.name: i for i, region in enumerate(regions)}
    return RouteShares(decision.feasible, tuple((index[name], p) for name, p in decision.eligible))


def _checked_row(
    request: RouteRequest, regions: Sequence[RegionState], rtt_ms: Mapping[str, Mapping[str, float]]
) -> Mapping[str, float]:
    if request.mode is RoutingMode.DEFER:
        raise ValueError(f"class {request.workload_class!r} is deferred (batch): it is not routed per request")
    if not regions:
        raise ValueError("no regions to route to")
    row = rtt_ms.get(request.origin)
    if row is None:
        raise UnknownRegionError(f"origin {request.origin!r} has no round-trip times in the latency matrix")
    return row


def _classify(
    request: RouteRequest, regions: Sequence[RegionState], row: Mapping[str, float], config: RoutingConfig
) -> tuple[_Scored, list[int], list[int]]:
    """One pass: estimate, classify and score every region; the pool (indices that fit the budget and are not
    avoided) and the avoided. No strings here: this is the per-request path."""
    budget = request.latency_budget_ms
    stay = request.mode is RoutingMode.STAY
    scored: _Scored = []
    pool: list[int] = []
    avoided: list[int] = []
    loaded: list[int] = []  # calm, healthy, within the budget when idle but not at their current load
    avoid_level = config.avoid_stress_level
    origin = request.origin
    for index, region in enumerate(regions):
        rtt = row.get(region.name)
        if rtt is None and region.name == origin:
            rtt = 0.0  # the origin to itself, unless the matrix says otherwise
        region_score = score(region, config)
        if rtt is None:
            scored.append((region, None, None, region_score, Verdict.FILTERED))
            continue
        latency = estimate_latency_ms(rtt, region, config)
        if not region.healthy or latency > budget:
            verdict = Verdict.FILTERED
            if (
                not stay
                and region.healthy
                and region.stress_level < avoid_level
                and rtt + region.service_time_ms <= budget
            ):
                loaded.append(index)
        elif not stay and region.stress_level >= avoid_level:
            verdict = Verdict.AVOIDED
            avoided.append(index)
        else:
            verdict = Verdict.FEASIBLE
            pool.append(index)
        scored.append((region, rtt, latency, region_score, verdict))
    if not pool and loaded:
        # Every calm region that fits the budget is loaded past it for now: tolerant work waits in one of them (the
        # gateway's admission bounds that wait) rather than spill into a region in grid emergency.
        for index in loaded:
            scored[index] = (*scored[index][:4], Verdict.FEASIBLE)
        pool = loaded
    return scored, pool, avoided


_Scored = list[tuple[RegionState, float | None, float | None, float, Verdict]]  # region, rtt, latency, score


def _route_stay(
    request: RouteRequest, scored: _Scored, pool: list[int], config: RoutingConfig, explain: bool
) -> RouteDecision:
    # Real-time work is never moved for grid reasons: origin if it can serve, else the nearest that can.
    by_rtt = sorted(pool, key=lambda i: (scored[i][1] or 0.0, scored[i][0].name))
    origin_index = next((i for i in pool if scored[i][0].name == request.origin), None)
    if origin_index is not None:
        chosen, reason, detail = origin_index, RouteReason.REALTIME_ORIGIN, "real-time: served at its origin"
    elif by_rtt:
        chosen = by_rtt[0]
        reason = RouteReason.REALTIME_NEAREST
        detail = f"real-time: origin {request.origin} cannot serve within budget; nearest healthy region"
    else:
        return _fallback(request, scored, config, explain)
    ranked = [chosen] + [i for i in by_rtt if i != chosen]
    return _decision(request, scored, chosen, reason, detail, True, ranked, {chosen: 1.0}, explain)


@dataclass(frozen=True, slots=True)
class _ShiftChoice:
    stressed_only: bool  # every region that fits is in grid emergency
    pool: list[int]  # the regions chosen from
    best: float
    margin: float  # the origin's margin (0.0 when the origin is not in the pool)
    kept_origin: bool  # the origin stays within its margin of the best
    probabilities: dict[int, float]  # eligible regions in draw order


def _shift_choice(
    request: RouteRequest,
    scored: _Scored,
    pool: list[int],
    avoided: list[int],
    config: RoutingConfig,
    previous_eligible: frozenset[str],
) -> _ShiftChoice | None:
    """Tolerant work's rules: stay within a margin of the best, else spread over the near-best by spare capacity.
    None: nothing fits the budget."""
    stressed_only = not pool
    if stressed_only:
        pool = avoided  # every feasible region is in emergency: serving beats failing
    if not pool:
        return None
    best = max(scored[i][3] for i in pool)

    # The origin keeps traffic while within a margin of the best: a move costs latency and egress.
    # Hysteresis: once staying, it takes `stickiness` more to leave; once gone, the plain margin to return.
    # "Staying" means the origin alone was eligible last time, not merely one member of a spread: otherwise,
    # with spread_band > origin_margin, a spread that includes the origin would flip to staying and back.
    origin_index = next((i for i in pool if scored[i][0].name == request.origin), None)
    margin = 0.0
    if origin_index is not None:
        stayed = previous_eligible == frozenset((request.origin,))
        margin = config.origin_margin + (config.stickiness if stayed else 0.0)
        if scored[origin_index][3] >= best - margin:
            return _ShiftChoice(stressed_only, pool, best, margin, True, {origin_index: 1.0})

    # Spread over near-best regions by spare capacity, so the single best region is not flooded. Only the near-best
    # are ranked here (the same order as ranking the whole pool, then filtering): the split needs no more.
    band, sticky_band = best - config.spread_band, best - config.spread_band - config.stickiness
    near = [
        i
        for i in pool
        if scored[i][3] >= band or (scored[i][0].name in previous_eligible and scored[i][3] >= sticky_band)
    ]
    eligible = _by_score(near, scored)
    weights = {i: scored[i][0].capacity_replicas * max(1.0 - scored[i][0].utilization, _MIN_SPARE) for i in eligible}
    total = sum(weights.values())
    probabilities = {i: weight / total for i, weight in weights.items()}
    return _ShiftChoice(stressed_only, pool, best, margin, False, probabilities)


def _by_score(indices: list[int], scored: _Scored) -> list[int]:
    """Best score first; ties to the nearer region, then by name."""
    return sorted(indices, key=lambda i: (-scored[i][3], scored[i][1] or 0.0, scored[i][0].name))


def _route_shift(
    request: RouteRequest,
    scored: _Scored,
    pool: list[int],
    avoided: list[int],
    config: RoutingConfig,
    previous_eligible: frozenset[str],
    draw: float,
    explain: bool,
) -> RouteDecision:
    choice = _shift_choice(request, scored, pool, avoided, config, previous_eligible)
    if choice is None:
        return _fallback(request, scored, config, explain)
    by_score, best, probabilities = _by_score(choice.pool, scored), choice.best, choice.probabilities
    rest = _rest(avoided, choice.pool, scored)
    if choice.kept_origin:
        (origin_index,) = probabilities
        ranked = [origin_index] + [i for i in by_score if i != origin_index] + rest
        detail = (
            f"origin score {scored[origin_index][3]:.3f} within {choice.margin:.3f} of best {best:.3f}: "
            "stay (a move costs latency and egress)"
        )
        reason = RouteReason.ONLY_STRESSED if choice.stressed_only else RouteReason.ORIGIN_PREFERRED
        return _decision(request, scored, origin_index, reason, detail, True, ranked, probabilities, explain)

    eligible = list(probabilities)
    chosen = _pick(eligible, probabilities, draw)
    ranked = (
        [chosen]
        + sorted((i for i in eligible if i != chosen), key=lambda i: -probabilities[i])
        + [i for i in by_score if i not in probabilities]
        + rest
    )
    if choice.stressed_only:
        reason = RouteReason.ONLY_STRESSED
        detail = "every region within budget is in grid emergency; serving from the one with most headroom"
    elif len(eligible) == 1:
        reason = RouteReason.MOST_HEADROOM
        detail = f"highest score {best:.3f} among {len(choice.pool)} feasible region(s)"
    else:
        reason = RouteReason.SPREAD
        detail = (
            f"{len(eligible)} regions within {config.spread_band:g} of best score {best:.3f}; split by spare capacity"
        )
    return _decision(request, scored, chosen, reason, detail, True, ranked, probabilities, explain)


def _rest(avoided: list[int], pool: list[int], scored: _Scored) -> list[int]:
    # Avoided regions still fit the budget: last-resort fallbacks, best score first.
    if avoided is pool:
        return []
    return sorted(avoided, key=lambda i: -scored[i][3])


def _pick(eligible: list[int], probabilities: Mapping[int, float], draw: float) -> int:
    cumulative = 0.0
    for index in eligible:
        cumulative += probabilities[index]
        if draw < cumulative:
            return index
    return eligible[-1]  # draw rounding at the top end


def _fallback(request: RouteRequest, scored: _Scored, config: RoutingConfig, explain: bool) -> RouteDecision:
    """Nothing fits: the nearest healthy region, or the nearest at all, and say so. Tolerant work still keeps out of
    a grid emergency while a calm healthy region exists: over budget is a late answer, an emergency is the grid's."""
    known = [i for i, entry in enumerate(scored) if entry[1] is not None]
    healthy = [i for i in known if scored[i][0].healthy]
    candidates = healthy or known
    if not candidates:
        raise UnknownRegionError(f"origin {request.origin!r} has no round-trip time to any region of the fleet")
    # With no healthy region there is no calm healthy one to keep to: the nearest at all, whatever its grid.
    avoid = request.mode is RoutingMode.SHIFT and bool(healthy)
    ranked = sorted(
        candidates,
        key=lambda i: (
            avoid and scored[i][0].stress_level >= config.avoid_stress_level,
            scored[i][1] or 0.0,
            scored[i][0].name,
        ),
    )
    if healthy:
        reason = RouteReason.NO_FEASIBLE
        detail = f"no region fits the {request.latency_budget_ms:g} ms budget; nearest healthy region"
    else:
        reason = RouteReason.NO_HEALTHY
        detail = "no healthy region; nearest region, best effort"
    return _decision(request, scored, ranked[0], reason, detail, False, ranked, {ranked[0]: 1.0}, explain)


def _why(request: RouteRequest, region: RegionState, latency: float | None, verdict: Verdict) -> str:
    """Why a candidate got its verdict (built only when a decision is explained)."""
    if verdict is Verdict.FILTERED:
        if latency is None:
            return "no round-trip time from origin"
        if not region.healthy:
            return "unhealthy"
        return f"over budget: est {latency:.1f} ms > {request.latency_budget_ms:g} ms"
    if verdict is Verdict.AVOIDED:
        return f"grid stress {region.stress_level} (avoided while others fit)"
    if latency is not None and latency > request.latency_budget_ms:
        return f"loaded past the budget (est {latency:.1f} ms), fits it idle: waiting here beats a grid emergency"
    return "fits budget"


def _decision(
    request: RouteRequest,
    scored: _Scored,
    chosen: int,
    reason: RouteReason,
    detail: str,
    feasible: bool,
    ranked: list[int],
    probabilities: Mapping[int, float],
    explain: bool,
) -> RouteDecision:
    candidates = []
    if explain:
        for index, (region, rtt, latency, region_score, verdict) in enumerate(scored):
            why = _why(request, region, latency, verdict)
            if index == chosen:
                verdict, why = Verdict.CHOSEN, detail
            elif index in probabilities:
                verdict, why = Verdict.ELIGIBLE, f"eligible with p={probabilities[index]:.2f}"
            candidates.append(
                Candidate(
                    region.name,
                    rtt,
                    latency,
                    region.headroom,
                    region.stress_level,
                    region.healthy,
                    region.utilization,
                    region_score,
                    verdict,
                    why,
                )
            )
    return RouteDecision(
        region=scored[chosen][0].name,
        reason=reason,
        detail=detail,
        feasible=feasible,
        ranked=tuple(scored[i][0].name for i in ranked),
        eligible=tuple((scored[i][0].name, p) for i, p in probabilities.items()),
        candidates=tuple(candidates),
    )
