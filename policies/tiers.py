"""Flexibility tiers: the one table of what each tier lets the grid do, which tier a call or job gets within what its
key allows, and how a tier maps onto inference classes and modes and onto a job's gate.

Pure. Tier 0 is never moved, degraded or deferred; 1 may move within the latency budget; 2 may also run degraded
down to its class's quality floor; 3 may also be deferred (jobs: up to the deadline; inference: queued up to a stated
limit). docs/tenants.md#flexibility-tiers has the table, for inference and for jobs.
"""

from __future__ import annotations

from dataclasses import dataclass

from fleet.routing import RoutingMode, WorkloadClassConfig
from fleet.tenants import MAX_TIER

TIER_NAMES = ("firm", "movable", "degradable", "deferrable")


@dataclass(frozen=True)
class TierAllowance:
    """What the grid may do to work of one tier.

    A job is not moved between regions (its data and deadline are its region's), so a job's tier spends its
    flexibility in time: `max_slowdown` is how much longer than at full size a job may take when the grid shrinks
    it (the job's form of a latency budget: tier 1 10 %, tier 2 25 %, tier 3 50 %, as Emerald AI's tiers); a
    degradable job (tier 2 and up) may also run at the ladder's reduced batch precision; only a deferrable one
    (tier 3) may be paused by the grid (its window plan, grid stress, the policy's pause rung).
    """

    tier: int
    may_move: bool
    may_degrade: bool
    may_defer: bool
    max_slowdown: float  # a share of full-size speed a job may lose to shrinking


TIERS: tuple[TierAllowance, ...] = (
    TierAllowance(0, may_move=False, may_degrade=False, may_defer=False, max_slowdown=0.0),
    TierAllowance(1, may_move=True, may_degrade=False, may_defer=False, max_slowdown=0.10),
    TierAllowance(2, may_move=True, may_degrade=True, may_defer=False, max_slowdown=0.25),
    TierAllowance(3, may_move=True, may_degrade=True, may_defer=True, max_slowdown=0.50),
)
"""Tiers 0..MAX_TIER, each allowing everything the one below does and more."""


def allowance(tier: int) -> TierAllowance:
    if not 0 <= tier <= MAX_TIER:
        raise ValueError(f"flex_tier must be 0..{MAX_TIER}, got {tier}")
    return TIERS[tier]


def max_slowdown(tier: int) -> float:
    return allowance(tier).max_slowdown


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


def allowed_tier(asked: int | None, default_tier: int, max_tier: int) -> int:
    """The tier a call or job gets: the one asked for (within 0..max_tier), else the key's default."""
    if asked is None:
        return default_tier
    if not 0 <= asked <= MAX_TIER:
        raise TierRefused(f"tier must be one of 0..{MAX_TIER}, got {asked}", forbidden=False)
    if asked > max_tier:
        raise TierRefused(f"tier {asked} exceeds this key's maximum tier {max_tier}", forbidden=True)
    return asked


def chosen_tier(header: str | None, default_tier: int, max_tier: int) -> int:
    """The tier for a call: the header's when given (0..max_tier), else the key's default."""
    if header is None or not header.strip():
        return default_tier
    text = header.strip()
    if not text.isdigit() or int(text) > MAX_TIER:
        raise TierRefused(f"X-Gridshift-Flex-Tier must be one of 0..{MAX_TIER}, got {header!r}", forbidden=False)
    return allowed_tier(int(text), default_tier, max_tier)


def tier_route(tier: int, requested_class: str, workload: WorkloadClassConfig, firm_class: str | None) -> TierRoute:
    """The tier mapped onto the fleet's classes: the stricter of the class and the tier decides.

    A class that stays (real-time) stays at any tier; a tier that may not move stays whatever the class. A tier that
    may not be degraded is served as the firm class, which the ladder never degrades, when the fleet has one.
    """
    allowed = allowance(tier)
    if workload.mode is RoutingMode.DEFER:
        raise ValueError(f"class {requested_class!r} is deferred (batch): it is not served per request")
    may_move = allowed.may_move and workload.mode is RoutingMode.SHIFT
    may_degrade = allowed.may_degrade or firm_class is None
    return TierRoute(
        tier=tier,
        mode=RoutingMode.SHIFT if may_move else RoutingMode.STAY,
        serve_as=requested_class if may_degrade else firm_class or requested_class,
        may_move=may_move,
        may_degrade=may_degrade,
        may_defer=allowed.may_defer and may_move,  # a class that stays (real-time) is never held either
    )


def tier_effects(origin: str, served_region: str, degraded: bool, deferred: bool = False) -> tuple[str, ...]:
    """What the tier did to one served call: moved (served away from its origin), degraded (below full precision),
    deferred (held in the gateway's queue until a region qualified, or its limit)."""
    effects: list[str] = []
    if served_region != origin:
        effects.append("moved")
    if degraded:
        effects.append("degraded")
    if deferred:
        effects.append("deferred")
    return tuple(effects)


# Jobs -------------------------------------------------------------------------------------------------------------


def job_share(tier: int | None, workers_fraction: float) -> float:
    """The share of its full size a job runs at when the ladder asks for `workers_fraction`: never below what its
    tier accepts (1 - max slowdown, with speed at most proportional to size). No tier: the ladder's share as is."""
    if not 0.0 < workers_fraction <= 1.0:
        raise ValueError(f"workers_fraction must be in (0, 1], got {workers_fraction}")
    if tier is None:
        return workers_fraction
    return max(workers_fraction, 1.0 - max_slowdown(tier))


def job_floor_share(tier: int) -> float:
    """The smallest share of full size the tier accepts: what a job that may not be paused runs at while the grid
    would pause a deferrable one."""
    return 1.0 - max_slowdown(tier)


def not_deferrable(tier: int | None) -> str | None:
    """Why the grid may not pause a job of this tier (None: it may; no tier is today's rule, deferrable)."""
    if tier is None or allowance(tier).may_defer:
        return None
    if tier == 0:
        return "flex tier 0: never deferred, shrunk or degraded by the grid"
    return f"flex tier {tier}: never deferred by the grid (at most {max_slowdown(tier):.0%} slower)"


JOB_EFFECTS = ("deferred", "shrunk", "degraded")
"""What the grid did to a job, as its status and usage say: paused by the grid, run smaller, run at reduced
precision."""
