"""Training gate (pure): run, pause or shrink a Ray Train job, by its flexibility tier, from the batch gate's rule.

A training job is time-shifted like a batch job (the window planner and the slack rule, through the job registry)
and paused by the same rule (`policies.batch_gate.decide_gate`: an operator, the slack rule, the policy's pause,
grid stress, the plan). Its flexibility tier is the tenants' one (policies/tiers.py): only tier 3 may be paused by
the grid; below the pause rung a job runs smaller, as the ladder's `batch_workers_fraction` asks, but never slower
than its tier accepts (0 / 10 / 25 / 50 %); a tier 1 or 2 job the grid would pause runs at its tier's floor instead.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

from policies.batch_gate import BatchKnobs, PlanVerdict, decide_gate, schedule_fields, tier_bound
from policies.tiers import job_share, max_slowdown


@dataclass(frozen=True)
class TrainingShape:
    """How big a training run is: its worker processes and the torch threads of each."""

    workers: int
    threads_per_worker: int

    @property
    def threads(self) -> int:
        return self.workers * self.threads_per_worker


@dataclass(frozen=True)
class TrainingProgress:
    """A training runner's report (plain values: the control plane sits below the training layer)."""

    job_id: str
    region: str
    signal: str  # carbon | price | headroom: what the job's plan optimises
    deadline_s: float  # control-clock time
    flex_tier: int  # 0..3 (policies.tiers.TIERS)
    state: str  # starting | running | paused | done | failed | stopped
    steps_done: int  # steps the latest committed checkpoint holds: progress that survives anything
    steps_total: int
    step_s: float  # wall seconds per step at full size: measured, an estimate until then
    max_workers: int
    threads_per_worker: int
    workers: int = 0  # workers running now (0 while paused)
    threads: int = 0  # torch threads of each running worker
    steps_seen: int = 0  # the latest step boundary a worker reached (live progress, not yet committed)
    steps_per_second: float = 0.0  # measured at the current size
    cpu_s_per_s: float = 0.0  # measured CPU time of its workers per wall second, now
    full_cpu_s_per_s: float = 0.0  # what its workers would use at full size (measured per thread, scaled)
    checkpoints: int = 0  # checkpoints committed since the job started
    checkpointing: bool = True  # False: asked to checkpoint, the trainer did not; it cannot be paused or shrunk
    reason: str = ""
    resume_at_s: float | None = None
    tenant_id: str | None = None  # the tenant whose key submitted it (None: an operator's job)

    @property
    def steps_left(self) -> int:
        return max(self.steps_total - self.steps_done, 0)

    @property
    def work_left_wall_s(self) -> float:
        """Work left at full size, wall seconds: from the committed step, since later steps may have to be redone."""
        return self.steps_left * self.step_s

    @property
    def full_shape(self) -> TrainingShape:
        return TrainingShape(self.max_workers, self.threads_per_worker)


@dataclass(frozen=True)
class TrainingAnswer:
    """The gate's answer: run (at `shape`) or pause until `resume_at_s`, and how soon to ask again (wall s)."""

    run: bool
    reason: str
    resume_at_s: float | None
    shape: TrainingShape
    poll_s: float
    full_threads: int = 1  # the job's threads at full size

    @property
    def expected_slowdown(self) -> float:
        """Against full size, if speed scales with threads (it scales less, so the real slowdown is smaller)."""
        return 0.0 if not self.run else 1.0 - self.shape.threads / max(self.full_threads, 1)


def shrink(full: TrainingShape, flex_tier: int, workers_fraction: float) -> TrainingShape:
    """The shape the ladder's share asks for, bounded by the tier (policies.tiers.job_share)."""
    return shrink_to(full, job_share(flex_tier, workers_fraction))


def shrink_to(full: TrainingShape, share: float) -> TrainingShape:
    """Threads in all fall to `share` of full size (with speed at most proportional to threads, the job is slowed by
    no more than that). Whole workers go first (each frees a process and its memory), then threads."""
    # Rounded first so that 0.9 x 10 threads is 9, not 10 after binary floating point.
    budget = max(1, math.ceil(round(full.threads * share, 9)))
    workers = min(full.workers, math.ceil(budget / full.threads_per_worker))
    return TrainingShape(workers, min(full.threads_per_worker, math.ceil(budget / workers)))


def decide_training(
    *,
    progress: TrainingProgress,
    manual_pause: bool,
    verdict: PlanVerdict,
    stress_level: int,
    workers_fraction: float,
    now_s: float,
    speedup: float,
    policy_pause: str | None = None,
) -> TrainingAnswer:
    """Run or pause by the batch gate's rule bound by the job's tier (`policies.batch_gate.tier_bound`), then the
    shape: full size when the job may not be slowed (tier 0, a trainer that does not checkpoint, or slack run out),
    else the ladder's share bounded by the tier."""
    full = progress.full_shape
    if not progress.checkpointing:
        reason = "the trainer does not checkpoint when asked, so it cannot pause or shrink: running at full size"
        verdict = PlanVerdict(True, True, reason, None)
    full_size = verdict.forced  # slack run out, or no checkpoints: the job may not be slowed
    bound = tier_bound(
        progress.flex_tier,
        verdict,
        stress_level=stress_level,
        workers_fraction=workers_fraction,
        now_s=now_s,
        speedup=speedup,
        policy_pause=policy_pause,
    )
    answer = decide_gate(
        manual_pause=manual_pause,
        verdict=bound.verdict,
        stress_level=stress_level,
        knobs=BatchKnobs(batch_size=1, precision="fp32"),  # training has no batch knobs; only run/pause is used
        now_s=now_s,
        speedup=speedup,
        policy_pause=policy_pause,
    )
    if not answer.run:
        return TrainingAnswer(
            False, answer.reason, answer.resume_at_s, TrainingShape(0, 0), answer.poll_s, full.threads
        )
    if full_size:
        return TrainingAnswer(True, answer.reason, None, full, 0.0, full.threads)
    shape = shrink_to(full, bound.share)
    reason = answer.reason
    if shape != full:
        reason = (
            f"shrunk to {shape.workers} worker(s) x {shape.threads_per_worker} thread(s) of {full.workers} x "
            f"{full.threads_per_worker} (share {bound.share:g}, tier {progress.flex_tier} accepts "
            f"{max_slowdown(progress.flex_tier):.0%} slowdown); {answer.reason}"
        )
    return TrainingAnswer(True, reason, None, shape, 0.0, full.threads)


def training_status(
    progress: TrainingProgress,
    now_s: float,
    speedup: float,
    paused_by_operator: bool,
    effects: Iterable[str] = (),
) -> dict[str, object]:
    """A training job's status for operators (CLI and HTTP): state, steps, size, and expected finish against the
    deadline, on the control clock, assuming it runs from its expected resume (or now) at full size."""

    start_s = progress.resume_at_s if progress.state == "paused" and progress.resume_at_s else now_s
    left_s = progress.work_left_wall_s * speedup
    finish_s = None if progress.state == "done" else start_s + left_s
    return {
        "job_id": progress.job_id,
        "region": progress.region,
        "state": progress.state,
        "flex_tier": progress.flex_tier,
        "tenant_id": progress.tenant_id,
        "paused_by_operator": paused_by_operator,
        "reason": progress.reason,
        "steps_done": progress.steps_done,
        "steps_seen": progress.steps_seen,
        "steps_total": progress.steps_total,
        "steps_per_second": round(progress.steps_per_second, 3),
        "step_s": round(progress.step_s, 6),
        "workers": progress.workers,
        "threads_per_worker": progress.threads,
        "max_workers": progress.max_workers,
        "checkpoints": progress.checkpoints,
        "checkpointing": progress.checkpointing,
        "cpu_s_per_s": round(progress.cpu_s_per_s, 3),
        **schedule_fields(progress.state, progress.resume_at_s, finish_s, progress.deadline_s),
        "signal": progress.signal,
        "effects": sorted(effects),  # what the grid did to it under its tier: deferred, shrunk
    }


def deadline_problem(now_s: float, deadline_s: float, work_left_wall_s: float, speedup: float) -> str | None:
    """Why the deadline cannot be met even running at full size from now on (control-clock seconds), or None."""
    from fleet.times import iso

    need_s = work_left_wall_s * speedup
    if deadline_s - now_s >= need_s:
        return None
    return (
        f"deadline {iso(deadline_s)} is too close: {need_s / 3600:.2f} h of work (at the estimated step time) but "
        f"{max(deadline_s - now_s, 0.0) / 3600:.2f} h left from {iso(now_s)} on the control clock"
    )
