"""The engine's tolerant work: each origin's work routed by the live routing rules, in pieces, filling destinations.

Each origin's tolerant work is routed by the gateway's router (router.sticky.StickyRouter.shares: choose_region's
decision as indices and probabilities, with the router's anti-flap memory) in `chunks` pieces, round robin over
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
    router: StickyRouter,
    states: Sequence[RegionState],
    busy: FloatArray,
    compute: float,
    tolerant_cpu: float,
    ratio: FloatArray,
    chunks: int,
    budget_ms: float,
) -> Routed:
    """Route every origin's `tolerant_cpu` (at fp32; `ratio` is each destination's cost under its knobs) over the
    fleet whose regions are busy `busy` CPU before it (updated in place)."""
    n = len(states)
    # Only the regions work lands on change between two decisions: rebuild just their states.
    current = [with_utilization(state, busy[i] / compute) for i, state in enumerate(states)]
    routed = Routed(np.zeros(n), np.zeros((n, n)), 0.0)
    piece = tolerant_cpu / chunks
    requests = [RouteRequest(state.name, "tolerant", RoutingMode.SHIFT, budget_ms) for state in states]
    for _ in range(chunks if piece > 0 else 0):
        for origin, request in enumerate(requests):
            split = router.shares(request, current)
            if not split.feasible:
                routed.over_budget += piece
            for d, share in split.shares:
                routed.tolerant_in[d] += piece * share
                busy[d] += piece * share * ratio[d]
                current[d] = with_utilization(current[d], busy[d] / compute)
                if d != origin:
                    routed.moved[origin, d] += piece * share
    return routed


def route_home(busy: FloatArray, tolerant_cpu: float, ratio: FloatArray, chunks: int) -> Routed:
    """Without the geographic lever, each origin serves its own tolerant work (in the same pieces)."""
    n = len(busy)
    routed = Routed(np.zeros(n), np.zeros((n, n)), 0.0)
    piece = tolerant_cpu / chunks
    for _ in range(chunks if piece > 0 else 0):
        routed.tolerant_in += piece
        busy += piece * ratio
    return routed
