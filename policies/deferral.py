"""Tier-3 inference deferral (pure): whether a call may wait for a better grid, and what to do at each check.

A call whose tier may be deferred (tier 3, of a class that may move: policies/tiers.py) waits while routing can only
serve it from a region in grid emergency (stress at or above `routing.avoid_stress_level`, the level tolerant
work already avoids whenever a calm region fits its budget). It is served as soon as routing picks a region below
that level, and at its limit it is served anyway, where routing sends it then: a tier-3 customer agreed to wait,
not to fail, so the limit bounds the wait rather than turning it into an error. The queue is bounded; a call that
finds it full is refused at once (503 with Retry-After) rather than queued behind the bound. docs/tenants.md.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from enum import StrEnum

from policies.tiers import TierRoute

DEFER_HEADER = "X-Gridshift-Defer-Max-S"
"""Request header lowering the stated deferral limit for one call (seconds; at most the fleet's `defer_max_s`)."""


class DeferAction(StrEnum):
    SERVE = "serve"  # no deferral needed (or no longer): serve now
    WAIT = "wait"  # hold the call and check again when the control state changes
    SERVE_AT_LIMIT = "limit_reached"  # waited as long as allowed: serve anyway, where routing sends it now
    REFUSE = "queue_full"  # would wait, but the queue is at its bound: 503 with Retry-After, at once


def needs_deferral(tier: TierRoute | None, region: str, stress: Mapping[str, int], avoid_level: int) -> bool:
    """Whether the call would wait: its tier may be deferred and the region routing chose is in grid emergency."""
    return tier is not None and tier.may_defer and stress.get(region, 0) >= avoid_level


def defer_action(*, needs: bool, waited_s: float, limit_s: float, queued: int, queue_max: int) -> DeferAction:
    """One check of a call: `waited_s` 0 on arrival (when the queue's bound applies), `queued` the calls held now."""
    if not needs:
        return DeferAction.SERVE
    if waited_s <= 0.0 and queued >= queue_max:
        return DeferAction.REFUSE
    if waited_s >= limit_s:
        return DeferAction.SERVE_AT_LIMIT
    return DeferAction.WAIT


def defer_limit_s(header: str | None, max_s: float) -> float:
    """The call's limit: the header's seconds when given (a number >= 0; above the fleet's limit it is the fleet's,
    since a call may lower the stated limit, never raise it), else the fleet's. ValueError says what is wrong."""
    if header is None or not header.strip():
        return max_s
    try:
        value = float(header)
    except ValueError:
        raise ValueError(f"{DEFER_HEADER} must be a number of seconds, got {header!r}") from None
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"{DEFER_HEADER} must be a finite number of seconds >= 0, got {header!r}")
    return min(value, max_s)


def retry_after_s(limit_s: float) -> int:
    """What a refused call is told: the queue drains within the stated limit, so retrying sooner finds it full."""
    return max(1, math.ceil(limit_s))
