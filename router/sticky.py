"""The serving replica's router: `choose_region` with anti-flap memory and a plan cache, so the per-request work is
one draw over cached weights, whatever the fleet's size."""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass, replace

from fleet.routing import RoutingConfig
from router.routing import RegionState, RouteDecision, RouteRequest, RouteShares, choose_region, route_shares

MAX_CACHED_PLANS = 4096
"""Plans kept per control state: (origin, class, budget, memory) keys; a fleet has a few dozen in practice."""


@dataclass(frozen=True, slots=True)
class _Plan:
    """One ranking, decided without a draw: the decision for each region the draw may pick."""

    cumulative: tuple[tuple[float, RouteDecision], ...]  # (cumulative probability, decision), in eligible order
    eligible: frozenset[str]

    def pick(self, draw: float) -> RouteDecision:
        for upper, decision in self.cumulative:
            if draw < upper:
                return decision
        return self.cumulative[-1][1]  # draw rounding at the top end, as routing._pick


def _plan(decision: RouteDecision) -> _Plan:
    """Every draw's decision from the draw-0 one: the chosen region, then the other eligible regions by falling
    probability (a stable sort, as routing does), then the same fallbacks."""
    names = [name for name, _ in decision.eligible]
    by_probability = [name for name, _ in sorted(decision.eligible, key=lambda item: -item[1])]
    tail = decision.ranked[len(names) :]
    cumulative = []
    total = 0.0
    for name, probability in decision.eligible:
        total += probability
        ranked = (name, *(other for other in by_probability if other != name), *tail)
        cumulative.append((total, replace(decision, region=name, ranked=ranked)))
    return _Plan(tuple(cumulative), frozenset(names))


class StickyRouter:
    """`choose_region` with the anti-flap memory a serving replica keeps: per (origin, class), the eligible set of
    its last decision, passed back as `previous_eligible`. The gateway routes with it; the load-test checker uses
    it to know which split a replica in steady state intends. The memory is explicit state, not a global.

    With a `plan_key` (the control state's version and anything else the regions depend on), the ranking is
    computed once per (key, origin, class, budget, memory) and each request only draws over it: the ranking only
    changes when the control state does. A new key drops every cached plan.
    """

    def __init__(self, rtt_ms: Mapping[str, Mapping[str, float]], config: RoutingConfig) -> None:
        self.rtt_ms = rtt_ms
        self.config = config
        self._previous_eligible: dict[tuple[str, str], frozenset[str]] = {}
        self._plan_key: Hashable = None
        self._plans: dict[tuple[RouteRequest, frozenset[str]], _Plan] = {}

    def decide(
        self,
        request: RouteRequest,
        regions: Sequence[RegionState],
        *,
        draw: float = 0.0,
        explain: bool = False,
        plan_key: Hashable = None,
    ) -> RouteDecision:
        key = (request.origin, request.workload_class)
        previous = self._previous_eligible.get(key, frozenset())
        if explain or plan_key is None:
            decision = choose_region(
                request, regions, self.rtt_ms, self.config, previous_eligible=previous, draw=draw, explain=explain
            )
            self._previous_eligible[key] = frozenset(name for name, _ in decision.eligible)
            return decision
        if plan_key != self._plan_key or len(self._plans) >= MAX_CACHED_PLANS:
            self._plans.clear()
            self._plan_key = plan_key
        plan = self._plans.get((request, previous))
        if plan is None:
            first = choose_region(
                request, regions, self.rtt_ms, self.config, previous_eligible=previous, draw=0.0, explain=False
            )
            plan = self._plans[request, previous] = _plan(first)
        self._previous_eligible[key] = plan.eligible
        return plan.pick(draw)

    def shares(self, request: RouteRequest, regions: Sequence[RegionState]) -> RouteShares:
        """The eligible split alone (router.routing.route_shares), with the same memory as `decide`: for a caller
        that splits work by the expectation of the draw (the simulator)."""
        key = (request.origin, request.workload_class)
        split = route_shares(
            request, regions, self.rtt_ms, self.config, previous_eligible=self._previous_eligible.get(key, frozenset())
        )
        self._previous_eligible[key] = frozenset(regions[i].name for i, _ in split.shares)
        return split

    def memory(self, origin: str, workload_class: str) -> frozenset[str]:
        """The eligible set of the last decision for (origin, class): what the next one keeps a margin for."""
        return self._previous_eligible.get((origin, workload_class), frozenset())

    def forget(self) -> None:
        """Drop the memory: the next decision for every key is made from scratch."""
        self._previous_eligible.clear()
        self._plans.clear()
