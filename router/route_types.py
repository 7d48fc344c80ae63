"""The routing vocabulary: what the router is asked (a request, each region's state) and what it answers (a decision,
with every candidate as it saw it), and their stable JSON form. router.routing decides; docs/routing.md explains
the rules.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from fleet.routing import RoutingMode


@dataclass(frozen=True, slots=True)
class RouteRequest:
    """What the router needs to know of a request."""

    origin: str
    workload_class: str
    mode: RoutingMode
    latency_budget_ms: float


@dataclass(frozen=True, slots=True)
class RegionState:
    """What the router needs to know of a region at one moment (from the control state)."""

    name: str
    headroom: float  # [0, 1], after DR-event caps
    stress_level: int  # 0..3
    healthy: bool
    utilization: float  # in-flight work over capacity; 1.0 = full
    capacity_replicas: int
    service_time_ms: float  # idle service time estimate


class RouteReason(StrEnum):
    """Why a region was chosen (stable strings: they appear in headers and JSON)."""

    REALTIME_ORIGIN = "realtime_origin"
    REALTIME_NEAREST = "realtime_nearest_healthy"
    ORIGIN_PREFERRED = "origin_within_margin"
    MOST_HEADROOM = "most_headroom"
    SPREAD = "spread_by_capacity"
    ONLY_STRESSED = "only_stressed_regions_feasible"
    NO_FEASIBLE = "no_feasible_region"
    NO_HEALTHY = "no_healthy_region"


class Verdict(StrEnum):
    """What became of a candidate region."""

    CHOSEN = "chosen"
    ELIGIBLE = "eligible"  # could have been picked (weighted spread); a fallback
    FEASIBLE = "feasible"  # fits the budget but scored lower; a fallback
    AVOIDED = "avoided"  # fits the budget but its grid is in emergency; a last-resort fallback
    FILTERED = "filtered"  # unhealthy, unknown latency or over budget


@dataclass(frozen=True, slots=True)
class Candidate:
    """One region as the router saw it."""

    region: str
    rtt_ms: float | None
    est_latency_ms: float | None
    headroom: float
    stress_level: int
    healthy: bool
    utilization: float
    score: float
    verdict: Verdict
    why: str


@dataclass(frozen=True, slots=True)
class RouteDecision:
    """The router's answer."""

    region: str
    reason: RouteReason
    detail: str
    feasible: bool  # False: nothing fit the budget; `region` is a best-effort fallback
    ranked: tuple[str, ...]  # try in this order; `region` first
    eligible: tuple[tuple[str, float], ...]  # regions the draw could pick, with probabilities
    candidates: tuple[Candidate, ...]  # every region, in fleet order


def request_to_dict(request: RouteRequest) -> dict[str, object]:
    return {
        "origin": request.origin,
        "class": request.workload_class,
        "mode": request.mode.value,
        "latency_budget_ms": request.latency_budget_ms,
    }


def decision_to_dict(decision: RouteDecision) -> dict[str, object]:
    """The stable JSON form of a decision (docs/cli-json.md), shared by the CLI and the HTTP API."""
    return {
        "region": decision.region,
        "reason": decision.reason.value,
        "detail": decision.detail,
        "feasible": decision.feasible,
        "ranked": list(decision.ranked),
        "eligible": [{"region": name, "probability": round(p, 6)} for name, p in decision.eligible],
        "candidates": [
            {
                "region": c.region,
                "rtt_ms": None if c.rtt_ms is None else round(c.rtt_ms, 3),
                "est_latency_ms": None if c.est_latency_ms is None else round(c.est_latency_ms, 3),
                "headroom": round(c.headroom, 4),
                "stress_level": c.stress_level,
                "healthy": c.healthy,
                "utilization": round(c.utilization, 4),
                "score": round(c.score, 4),
                "verdict": c.verdict.value,
                "why": c.why,
            }
            for c in decision.candidates
        ],
    }
