"""Batch gate (pure): before each shard, run or pause, from the operator, the plan's slack, grid stress and the plan."""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

from policies.tiers import allowance, job_floor_share, job_share, not_deferrable

# Pause a job's shards while its region is at this stress level or above (unless its slack has run out).
PAUSE_STRESS_LEVEL = 2
# Longest a paused runner sleeps between gate checks, wall seconds: a pause or resume takes effect this fast.
MAX_POLL_S = 1.0


@dataclass(frozen=True)
class BatchKnobs:
    """What a job's pipeline runs with: read from the control state when a segment of its stream starts, and passed
    to the pipeline (`module:function(dataset, knobs)`); a change closes the segment so the next uses the new ones."""

    batch_size: int
    precision: str
    concurrency: int = 1  # workers (actor-pool size, or parallel tasks) a stage of the pipeline may run
    num_cpus: float = 0.25  # CPUs each of those workers reserves (the job's, not the grid's: see BatchJobSpec)


def workers_for(max_workers: int, fraction: float, *, at_least: bool = False) -> int:
    """Workers a job's stages run at the policy's share of its max_workers: at least one (never zero: a running job
    is turned down, not stopped, by this knob; pausing is the gate's). `at_least`: rounded up, for a share that is a
    tier's floor (a tier-2 job of 2 workers keeps both: one would be 50 % slower, past the 25 % it accepts)."""
    workers = max_workers * fraction
    # Rounded first so that 0.9 x 10 is 9, not 10 after binary floating point.
    return max(1, math.ceil(round(workers, 9)) if at_least else int(workers))


@dataclass(frozen=True)
class JobProgress:
    """A runner's report: where its job stands (plain values: the control plane sits below the batch layer)."""

    job_id: str
    region: str
    signal: str  # carbon | price | headroom: what the job's plan optimises
    deadline_s: float  # control-clock time
    state: str  # running | paused | done | failed | stopped
    rows_done: int
    rows_total: int
    rows_per_second: float  # measured wall throughput
    reason: str = ""
    resume_at_s: float | None = None  # control-clock time the runner expects to resume
    max_workers: int = 1  # the most workers a stage of the job's pipeline may run (the policy scales it down)
    tenant_id: str | None = None  # the tenant whose key submitted it (None: an operator's job)
    flex_tier: int | None = None  # 0..3 (policies.tiers); None: no tier asked, the gate's rule as it always was

    @property
    def rows_left(self) -> int:
        return self.rows_total - self.rows_done


@dataclass(frozen=True)
class PlanVerdict:
    """What the window plan says about now."""

    run: bool
    forced: bool  # slack has run out: run regardless of the grid
    reason: str
    resume_at_s: float | None


@dataclass(frozen=True)
class GateAnswer:
    run: bool
    reason: str
    resume_at_s: float | None
    knobs: BatchKnobs
    poll_s: float


def decide_gate(
    *,
    manual_pause: bool,
    verdict: PlanVerdict,
    stress_level: int,
    knobs: BatchKnobs,
    now_s: float,
    speedup: float,
    policy_pause: str | None = None,
) -> GateAnswer:
    """The gate's rule, in order: an operator's pause wins; then a job out of slack runs whatever the grid
    says (a feasible deadline is never missed because of pausing); then the policy's pause (`policy_pause`, its
    reason) and grid stress pause; then the plan."""

    def pause(reason: str, resume_at_s: float | None) -> GateAnswer:
        wait_s = MAX_POLL_S if resume_at_s is None else (resume_at_s - now_s) / speedup
        return GateAnswer(False, reason, resume_at_s, knobs, min(MAX_POLL_S, max(wait_s, 0.05)))

    if manual_pause:
        return pause("paused by an operator", None)
    if verdict.forced:
        return GateAnswer(True, verdict.reason, None, knobs, 0.0)
    if policy_pause is not None:
        return pause(policy_pause, verdict.resume_at_s)
    if stress_level >= PAUSE_STRESS_LEVEL:
        return pause(f"grid stress {stress_level} in the job's region", verdict.resume_at_s)
    if not verdict.run:
        return pause(verdict.reason, verdict.resume_at_s)
    return GateAnswer(True, verdict.reason, None, knobs, 0.0)


@dataclass(frozen=True)
class TierBound:
    """A job's gate inputs bound by its flexibility tier: the verdict the gate decides on, the share of its full size
    it may run at, and whether the ladder's reduced precision may apply."""

    verdict: PlanVerdict
    share: float
    may_degrade: bool
    held: bool  # the grid would have paused a job of a deferrable tier; this tier ran on (at its floor) instead


def tier_bound(
    tier: int | None,
    verdict: PlanVerdict,
    *,
    stress_level: int,
    workers_fraction: float,
    now_s: float,
    speedup: float,
    policy_pause: str | None = None,
) -> TierBound:
    """Bind the gate to the job's tier (policies/tiers.py), for batch and training jobs alike: a tier that may not be
    deferred (0..2) gets a run verdict whatever the grid says (an operator may still pause it), and where the grid
    would have paused a deferrable job it runs at its tier's floor share instead; tier 3 and untiered jobs keep the
    gate's rule. The share is the ladder's, never below what the tier accepts."""
    reason = not_deferrable(tier)
    fraction, held = workers_fraction, False
    if tier is not None and reason is not None and not verdict.forced:
        grid = decide_gate(
            manual_pause=False,
            verdict=verdict,
            stress_level=stress_level,
            knobs=BatchKnobs(batch_size=1, precision="fp32"),  # only whether it would run is read
            now_s=now_s,
            speedup=speedup,
            policy_pause=policy_pause,
        )
        if not grid.run:
            fraction, held = min(fraction, job_floor_share(tier)), True
        verdict = PlanVerdict(True, True, reason if not held else f"{reason}; the grid asked: {grid.reason}", None)
    may_degrade = tier is None or allowance(tier).may_degrade
    return TierBound(verdict, job_share(tier, fraction), may_degrade, held)


def schedule_fields(
    state: str, resume_at_s: float | None, finish_s: float | None, deadline_s: float
) -> dict[str, object]:
    """A job's expected resume and finish against its deadline, as batch and training status show them (control-clock
    times in ISO 8601): on track when done, or when the expected finish is known and no later than the deadline."""
    from fleet.times import iso

    return {
        "expected_resume": None if resume_at_s is None else iso(resume_at_s),
        "expected_finish": None if finish_s is None else iso(finish_s),
        "deadline": iso(deadline_s),
        "on_track": state == "done" or (finish_s is not None and finish_s <= deadline_s),
    }


def job_status(
    progress: JobProgress, now_s: float, speedup: float, paused_by_operator: bool, effects: Iterable[str] = ()
) -> dict[str, object]:
    """A job's status for operators (CLI and HTTP): state, progress, and expected finish against the deadline.

    Times are on the control clock (trace time under replay). The expected finish assumes the job runs from
    its expected resume time (or now) at its measured throughput, without further pauses.
    """

    start_s = progress.resume_at_s if progress.state == "paused" and progress.resume_at_s else now_s
    left_s = progress.rows_left / progress.rows_per_second * speedup if progress.rows_per_second > 0 else None
    finish_s = None if progress.state == "done" or left_s is None else start_s + left_s
    return {
        "job_id": progress.job_id,
        "region": progress.region,
        "state": progress.state,
        "paused_by_operator": paused_by_operator,
        "reason": progress.reason,
        "rows_done": progress.rows_done,
        "rows_total": progress.rows_total,
        "rows_per_second": round(progress.rows_per_second, 3),
        **schedule_fields(progress.state, progress.resume_at_s, finish_s, progress.deadline_s),
        "signal": progress.signal,
        "tenant_id": progress.tenant_id,
        "flex_tier": progress.flex_tier,
        "effects": sorted(effects),  # what the grid did to it under its tier: deferred, shrunk, degraded
    }
