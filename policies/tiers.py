"""Flexibility tiers: which tier a call gets within what its key allows, and how a tier maps onto classes and modes.

Pure. Tier 0 is never moved, degraded or deferred; 1 may move within the latency budget; 2 may also run degraded
down to its class's quality floor; 3 may also be deferred (jobs, up to the deadline). docs/tenants.md.
"""

from __future__ import annotations

from dataclasses import dataclass

from fleet.routing import RoutingMode, WorkloadClassConfig
from fleet.tenants import MAX_TIER

TIER_NAMES = ("firm", "movable", "degradable", "deferrable")


class TierRefused(ValueError):
    """A requested tier the key does not allow, or one that is not a tier at all."""

    def __init__(self, message: str, *, forbidden: bool) -> None:
        super().__init__(message)
        self.forbidden = forbidden  # True: a real tier above the key's maximum (403); False: not a tier (422)


@dataclass(frozen=True)
class TierRoute:
    """How one call is served under its tier: the routing mode and the class the region serves it as."""

    tier: int
    mode: RoutingMode
    serve_as: str  # the workload class sent to the region: its precision follows that class's ladder rung
    may_move: bool
    may_degrade: bool
    may_defer: bool


def chosen_tier(header: str | None, default_tier: int, max_tier: int) -> int:
    """The tier for a call: the header's when given (0..max_tier), else the key's default."""
    if header is None or not header.strip():
        return default_tier
    text = header.strip()
    if not text.isdigit() or int(text) > MAX_TIER:
        raise TierRefused(f"X-Gridshift-Flex-Tier must be one of 0..{MAX_TIER}, got {header!r}", forbidden=False)
    tier = int(text)
    if tier > max_tier:
        raise TierRefused(f"tier {tier} exceeds this key's maximum tier {max_tier}", forbidden=True)
    return tier


def tier_route(tier: int, requested_class: str, workload: WorkloadClassConfig, firm_class: str | None) -> TierRoute:
    """The tier mapped onto the fleet's classes: the stricter of the class and the tier decides.

    A class that stays (real-time) stays at any tier; a tier below 1 stays whatever the class. Below tier 2 the
    call is served as the firm class, which the ladder never degrades, when the fleet has one.
    """
    if not 0 <= tier <= MAX_TIER:
        raise ValueError(f"tier must be 0..{MAX_TIER}, got {tier}")
    if workload.mode is RoutingMode.DEFER:
        raise ValueError(f"class {requested_class!r} is deferred (batch): it is not served per request")
    may_move = tier >= 1 and workload.mode is RoutingMode.SHIFT
    may_degrade = tier >= 2 or firm_class is None
    return TierRoute(
        tier=tier,
        mode=RoutingMode.SHIFT if may_move else RoutingMode.STAY,
        serve_as=requested_class if may_degrade else firm_class or requested_class,
        may_move=may_move,
        may_degrade=may_degrade,
        may_defer=tier >= 3,
    )


def tier_effects(origin: str, served_region: str, degraded: bool) -> tuple[str, ...]:
    """What the tier did to one served call: moved (served away from its origin), degraded (below full precision)."""
    effects: list[str] = []
    if served_region != origin:
        effects.append("moved")
    if degraded:
        effects.append("degraded")
    return tuple(effects)
