"""The engine's tolerant work: each origin's work routed by the live routing core, in pieces, filling destinations.

Each origin's tolerant work is routed by router.sticky.StickyRouter.decide in `chunks` pieces, round robin over
origins; each destination's utilisation is updated as work lands, and a piece is split by the decision's eligible
probabilities (the expectation of the per-request draw). Nothing here decides.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from fleet.routing import RoutingMode
from grid.trace import FloatArray
from router.routing import RegionState, RouteRequest
from router.sticky import StickyRouter


@dataclass
class Routed:
    """One hour's tolerant work, in CPU (fleet order)."""

    tolerant_in: FloatArray  # served in each region
    moved: FloatArray  # (origin, destination): served away from the origin
    over_budget: float  # routed with no region within the budget


def with_utilization(state: RegionState, utilization: float) -> RegionState:
    # The constructor, not dataclasses.replace: this runs for every routed piece, and replace costs ten times more.
    return RegionState(
        state.name,
        state.headroom,
        state.stress_level,
        state.healthy,
        utilization,
        state.capacity_replicas,
        state.service_time_ms,
    )


def route_tolerant(
    router: StickyRouter | None,
    states: Sequence[RegionState],
    busy: list[float],
    compute: float,
    tolerant_cpu: float,
    ratio: Sequence[float],
    chunks: int,
    budget_ms: float,
) -> Routed:
    """Route every origin's `tolerant_cpu` (at fp32; `ratio` is each destination's cost under its knobs) over the
    fleet whose regions are busy `busy` CPU before it (updated in place). No router: each origin serves its own."""
    names = [state.name for state in states]
    index = {name: i for i, name in enumerate(names)}
    n = len(states)
    # Only the regions work lands on change between two decisions: rebuild just their states.
    current = [with_utilization(state, busy[i] / compute) for i, state in enumerate(states)]
    routed = Routed(np.zeros(n), np.zeros((n, n)), 0.0)
    piece = tolerant_cpu / chunks
    requests = [RouteRequest(origin, "tolerant", RoutingMode.SHIFT, budget_ms) for origin in names]
    for _ in range(chunks if piece > 0 else 0):
        for origin_index, origin in enumerate(names):
            if router is None:
                split: tuple[tuple[str, float], ...] = ((origin, 1.0),)
            else:
                route = router.decide(requests[origin_index], current)
                split = route.eligible
                if not route.feasible:
                    routed.over_budget += piece
            for destination, share in split:
                d = index[destination]
                routed.tolerant_in[d] += piece * share
                busy[d] += piece * share * ratio[d]
                current[d] = with_utilization(current[d], busy[d] / compute)
                if d != origin_index:
                    routed.moved[origin_index, d] += piece * share
    return routed
