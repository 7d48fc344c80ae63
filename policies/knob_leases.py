"""Knob leases: per region, the knobs in force (an operator's pin, else the policy's fresh decision, else the safe
defaults) and why, and what batch work may do there; the policy's published decisions and when it last spoke."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum

from fleet.clock import Clock
from fleet.config import FleetConfig
from fleet.serving import Knobs
from policies.calibration import Calibration
from policies.control_state import check_region
from policies.ladder import BatchPolicy, RegionDecision, safe_batch_policy


class KnobSource(StrEnum):
    """Where a region's knobs in force come from (stable strings: API)."""

    OPERATOR = "operator"  # pinned by an operator; the policy leaves the region alone
    POLICY = "policy"  # the policy actor's fresh decision
    DEFAULTS = "defaults"  # serving.knobs: no policy decision yet, or it went stale (safe defaults)
    CONFIGURED = "configured"  # a replica's own: it has no lease (control plane unreachable, or not synced yet)


@dataclass(frozen=True)
class KnobsLease:
    """A regional replica's answer to its periodic sync: the knobs to run with now, and why."""

    knobs: Knobs
    source: str
    reason: str


@dataclass
class KnobLeases:
    """Operator pins and the policy's decisions; the policy's decisions count only while fresh."""

    fleet: FleetConfig
    wall_clock: Clock
    pins: dict[str, Knobs] = field(default_factory=dict)
    decisions: dict[str, RegionDecision] = field(default_factory=dict)
    calibration: Calibration | None = None  # what the policy decided with; shown to operators
    policy_wall_s: float | None = None  # when the policy last published (wall clock)

    def set_knobs(self, region: str, knobs: Knobs | None) -> None:
        """Pin a region's knobs (an operator's override: the policy leaves them alone); None unpins."""
        check_region(self.fleet, region)
        if knobs is None:
            self.pins.pop(region, None)
        else:
            self.pins[region] = knobs

    def publish(self, decisions: Mapping[str, RegionDecision], calibration: Calibration | None = None) -> None:
        """The policy actor's decisions; they are in force until replaced or until they go stale."""
        for region in decisions:
            check_region(self.fleet, region)
        self.decisions.update(decisions)
        self.policy_wall_s = self.wall_clock.now_s()
        if calibration is not None:
            self.calibration = calibration

    def policy_age_s(self) -> float | None:
        return None if self.policy_wall_s is None else self.wall_clock.now_s() - self.policy_wall_s

    def policy_fresh(self) -> bool:
        age = self.policy_age_s()
        return age is not None and age <= self.fleet.policy.fallback_after_s

    def lease(self, region: str) -> KnobsLease:
        pinned = self.pins.get(region)
        if pinned is not None:
            return KnobsLease(pinned, KnobSource.OPERATOR, "pinned by an operator")
        decision = self.decisions.get(region)
        if decision is not None and self.policy_fresh():
            return KnobsLease(decision.knobs, KnobSource.POLICY, f"rung {decision.step}: {decision.reason}")
        age = self.policy_age_s()
        if decision is None or age is None:
            reason = "no policy decision yet" if self.fleet.policy.enabled else "policy disabled"
        else:
            reason = f"policy silent for {age:.0f} s (> {self.fleet.policy.fallback_after_s:g} s): safe defaults"
        return KnobsLease(self.fleet.serving.knobs, KnobSource.DEFAULTS, reason)

    def in_force(self, region: str) -> tuple[Knobs, str]:
        lease = self.lease(region)
        return lease.knobs, lease.source

    def batch_policy(self, region: str) -> BatchPolicy:
        """What batch work may do in the region: the policy's fresh decision, else safe defaults from the knobs."""
        decision = self.decisions.get(region)
        if decision is not None and self.policy_fresh() and region not in self.pins:
            return decision.batch
        return safe_batch_policy(self.pins.get(region, self.fleet.serving.knobs))

    def batch_pause_reason(self, region: str) -> str | None:
        """Why the policy pauses batch work in the region now; None when it does not."""
        decision = self.decisions.get(region)
        if self.batch_policy(region).may_run or decision is None:
            return None
        return f"policy: batch paused at rung {decision.step} ({decision.reason})"
