"""The training job registry: each Ray Train job's latest progress, operators' pauses, and its run-pause-shrink answer,
planned by the job registry's window plan and slack rule (policies.job_registry) and decided by the training gate."""

from __future__ import annotations

from dataclasses import dataclass, field

from policies.control_state import check_region
from policies.job_registry import JobRegistry
from policies.job_usage import JobMeter
from policies.ladder import BatchPolicy
from policies.power import TrainingLoad
from policies.tiers import allowance, max_slowdown
from policies.training_gate import TrainingAnswer, TrainingProgress, decide_training, training_status

PLAN_PREFIX = "training/"
"""Training plans sit in the job registry's plan cache under this prefix, apart from batch jobs of the same id."""
FINISHED = ("done", "failed", "stopped")


@dataclass(frozen=True)
class TrainingControl:
    """The answer to an operator's pause or resume: whether the job is known, and if it was refused, why."""

    known: bool
    accepted: bool
    reason: str


@dataclass
class TrainingJobs:
    """Training jobs by id, as their runners last reported them, and the ones an operator paused."""

    registry: JobRegistry  # the window plans, the slack rule, the fleet and the control clock
    jobs: dict[str, TrainingProgress] = field(default_factory=dict)
    paused: set[str] = field(default_factory=set)

    def _meter(self, progress: TrainingProgress) -> JobMeter:
        return self.registry.meters.meter(
            "training", progress.job_id, progress.region, progress.tenant_id, progress.flex_tier
        )

    def report(self, progress: TrainingProgress) -> None:
        check_region(self.registry.context.fleet, progress.region)
        self.jobs[progress.job_id] = progress
        self.registry.meters.report(
            self._meter(progress), self.registry.clock.now_s(), progress.state, progress.steps_done
        )

    def gate(
        self, progress: TrainingProgress, stress_level: int, batch: BatchPolicy, policy_pause: str | None
    ) -> TrainingAnswer:
        """Run (at which size) or pause the job's next stretch of steps (see policies.training_gate)."""
        self.report(progress)
        now_s = self.registry.clock.now_s()
        key = PLAN_PREFIX + progress.job_id
        verdict = self.registry.window_verdict(key, progress, progress.work_left_wall_s, now_s)
        answer = decide_training(
            progress=progress,
            manual_pause=progress.job_id in self.paused,
            verdict=verdict,
            stress_level=stress_level,
            workers_fraction=batch.workers_fraction,
            now_s=now_s,
            speedup=self.registry.context.fleet.signal_source.speedup,
            policy_pause=policy_pause,
        )
        meter = self._meter(progress)
        if answer.run:
            meter.share = answer.shape.threads / max(progress.full_shape.threads, 1)
            if answer.shape != progress.full_shape:
                meter.effects.add("shrunk")
        elif progress.job_id not in self.paused:
            meter.effects.add("deferred")  # paused by the grid, not by an operator
        return answer

    def pause(self, job_id: str) -> TrainingControl:
        progress = self.jobs.get(job_id)
        if progress is None:
            return TrainingControl(False, False, f"no training job {job_id!r}")
        if not progress.checkpointing:
            # Pausing stops its workers; without a checkpoint to resume from, every step so far would be lost.
            return TrainingControl(
                True,
                False,
                f"training job {job_id!r} cannot pause: its trainer was asked to checkpoint and reported none "
                "(call ray.train.report(metrics, checkpoint=...) when the step boundary asks for one)",
            )
        self.paused.add(job_id)
        return TrainingControl(True, True, "pause requested: it checkpoints at its next step boundary and stops")

    def resume(self, job_id: str) -> TrainingControl:
        if job_id not in self.jobs:
            return TrainingControl(False, False, f"no training job {job_id!r}")
        self.paused.discard(job_id)
        return TrainingControl(True, True, "resume requested: it restarts from its latest checkpoint")

    def statuses(self) -> list[dict[str, object]]:
        now_s = self.registry.clock.now_s()
        speedup = self.registry.context.fleet.signal_source.speedup
        return [
            training_status(progress, now_s, speedup, job_id in self.paused, self._meter(progress).effects)
            for job_id, progress in sorted(self.jobs.items())
        ]

    def load(self, region: str) -> TrainingLoad:
        """The region's training work for the power model: measured CPU of running workers; what every unfinished
        job would use at full size (the no-control baseline); and what pausing the deferrable ones (tier 3), or
        shrinking each to its tier's limit (speed, so CPU, at most proportional to threads), would shed."""
        running = deferrable = reducible = full = 0.0
        for progress in self.jobs.values():
            if progress.region != region or progress.state in FINISHED:
                continue
            full += progress.full_cpu_s_per_s
            if progress.state != "running":
                continue
            running += progress.cpu_s_per_s
            if not progress.checkpointing:
                continue
            if allowance(progress.flex_tier).may_defer:
                deferrable += progress.cpu_s_per_s
            if progress.flex_tier > 0:
                floor_cpu = (1.0 - max_slowdown(progress.flex_tier)) * progress.full_cpu_s_per_s
                reducible += max(0.0, progress.cpu_s_per_s - floor_cpu)
        return TrainingLoad(running_cpu=running, full_cpu=full, deferrable_cpu=deferrable, reducible_cpu=reducible)
