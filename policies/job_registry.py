"""The job registry and gate: every job's latest progress, operators' pauses, each job's window plan (made from the
forecast, cached per trace hour), and the run-or-pause answer a job asks for before its next piece of work."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from fleet.clock import Clock
from grid.context import FleetContext
from policies.batch_gate import (
    MAX_POLL_S,
    BatchKnobs,
    GateAnswer,
    JobProgress,
    PlanVerdict,
    decide_gate,
    job_status,
    tier_bound,
    workers_for,
)
from policies.control_state import check_region
from policies.job_usage import JobMeter, JobMeters
from policies.ladder import BatchPolicy
from policies.plan import DEFAULT_PLANNER_CONFIG, Plan, PlannerConfig
from policies.plan_forecast import forecast_signal
from policies.planner import plan_verdict, plan_windows
from policies.pricing import HourConditions, forecast_hours

HOUR_S = 3600


class PlannedJob(Protocol):
    """What the window plan reads of a job's report (batch's JobProgress, training's TrainingProgress)."""

    @property
    def region(self) -> str: ...
    @property
    def signal(self) -> str: ...
    @property
    def deadline_s(self) -> float: ...
    @property
    def state(self) -> str: ...


@dataclass
class JobRegistry:
    """Jobs by id, as their runners last reported them; plans are remade each new trace hour."""

    context: FleetContext
    clock: Clock
    jobs: dict[str, JobProgress] = field(default_factory=dict)
    paused_jobs: set[str] = field(default_factory=set)
    _plans: dict[str, tuple[int, Plan]] = field(default_factory=dict)
    meters: JobMeters = field(init=False)  # batch and training jobs' usage (policies.job_usage)
    _hours: dict[tuple[str, int], HourConditions] = field(default_factory=dict)

    def __post_init__(self) -> None:
        fleet = self.context.fleet
        self.meters = JobMeters(self.hour_price, fleet.pricing, fleet.signal_source.speedup)

    def hour_price(self, region: str, hour_s: int) -> HourConditions:
        """A region-hour's forecast conditions, issued at the hour's start (as the gateway prices inference)."""
        key = (region, hour_s)
        if key not in self._hours:
            self._hours[key] = forecast_hours(self.context.trace, self.context.fleet, region, hour_s, 1)[0]
        return self._hours[key]

    def _meter(self, progress: JobProgress) -> JobMeter:
        return self.meters.meter("batch", progress.job_id, progress.region, progress.tenant_id, progress.flex_tier)

    def report(self, progress: JobProgress) -> None:
        check_region(self.context.fleet, progress.region)
        self.jobs[progress.job_id] = progress
        self.meters.report(self._meter(progress), self.clock.now_s(), progress.state, progress.rows_done)

    def gate(
        self, progress: JobProgress, stress_level: int, batch: BatchPolicy, policy_pause: str | None
    ) -> GateAnswer:
        """Run or pause the job's next piece of work, with the knobs it should use (see policies.batch_gate), bound
        by the job's flexibility tier (`tier_bound`): what the grid may do to it, and how small it may run."""
        self.report(progress)
        now_s = self.clock.now_s()
        speedup = self.context.fleet.signal_source.speedup
        bound = tier_bound(
            progress.flex_tier,
            self.plan_verdict(progress, now_s),
            stress_level=stress_level,
            workers_fraction=batch.workers_fraction,
            now_s=now_s,
            speedup=speedup,
            policy_pause=policy_pause,
        )
        full_precision = self.context.fleet.serving.knobs.precision.value
        answer = decide_gate(
            manual_pause=progress.job_id in self.paused_jobs,
            verdict=bound.verdict,
            stress_level=stress_level,
            knobs=BatchKnobs(
                batch_size=batch.batch_size,
                precision=batch.precision.value if bound.may_degrade else full_precision,
                concurrency=workers_for(progress.max_workers, bound.share, at_least=progress.flex_tier is not None),
            ),
            now_s=now_s,
            speedup=speedup,
            policy_pause=policy_pause,
        )
        meter = self._meter(progress)
        if answer.run:
            meter.share = answer.knobs.concurrency / max(progress.max_workers, 1)
            if answer.knobs.concurrency < progress.max_workers:
                meter.effects.add("shrunk")
            if answer.knobs.precision != full_precision:
                meter.effects.add("degraded")
        elif progress.job_id not in self.paused_jobs:
            meter.effects.add("deferred")  # paused by the grid, not by an operator
        return answer

    def planner_config(self) -> PlannerConfig:
        # A paused runner re-asks at most MAX_POLL_S wall seconds late; under trace replay that is
        # MAX_POLL_S x speedup trace seconds, so the reserve must cover it (twice, for one missed poll).
        speedup = self.context.fleet.signal_source.speedup
        margin_s = max(DEFAULT_PLANNER_CONFIG.margin_s, math.ceil(2 * MAX_POLL_S * speedup))
        return DEFAULT_PLANNER_CONFIG.model_copy(update={"margin_s": margin_s})

    def plan_verdict(self, progress: JobProgress, now_s: float) -> PlanVerdict:
        """The job's window plan, made from the forecast at its first gate and again each new trace hour."""
        work_wall_s = progress.rows_left / max(progress.rows_per_second, 1e-6)
        return self.window_verdict(progress.job_id, progress, work_wall_s, now_s)

    def window_verdict(self, plan_key: str, job: PlannedJob, work_wall_s: float, now_s: float) -> PlanVerdict:
        """Any deferrable job's plan verdict (batch or training), from its remaining work in wall seconds at its
        measured speed; the plan is cached under `plan_key` and remade each new trace hour."""
        fleet = self.context.fleet
        config = self.planner_config()
        now = int(now_s)
        work_s = math.ceil(work_wall_s * fleet.signal_source.speedup)
        deadline_s = int(job.deadline_s)
        hour = now // HOUR_S
        cached = self._plans.get(plan_key)
        if cached is None or cached[0] != hour:
            slots = np.arange(hour * HOUR_S, max(deadline_s, now + HOUR_S), HOUR_S, dtype=np.int64)
            try:
                forecast = forecast_signal(
                    self.context.trace, fleet.region(job.region), job.signal, now, slots, fleet.headroom
                )
            except ValueError as error:
                # No forecast of the job's signal here: the stress gate and the slack rule still apply.
                return plan_verdict(
                    None, now, work_s, deadline_s, config, f"no {job.signal} forecast ({error}); running"
                )
            release_s = now if cached is None else cached[1].release_s
            # A running job is not charged a resume for carrying on.
            running = job.state == "running" and cached is not None
            plan = plan_windows(
                release_s,
                deadline_s,
                work_s,
                slots,
                forecast,
                job.signal,
                now_s=now,
                running=running,
                config=config,
            )
            self._plans[plan_key] = (hour, plan)
        return plan_verdict(self._plans[plan_key][1], now, work_s, deadline_s, config)

    def plan_of(self, job_id: str) -> Plan | None:
        cached = self._plans.get(job_id)
        return None if cached is None else cached[1]

    def pause(self, job_id: str) -> bool:
        if job_id not in self.jobs:
            return False
        self.paused_jobs.add(job_id)
        return True

    def resume(self, job_id: str) -> bool:
        if job_id not in self.jobs:
            return False
        self.paused_jobs.discard(job_id)
        return True

    def statuses(self) -> list[dict[str, object]]:
        now_s = self.clock.now_s()
        speedup = self.context.fleet.signal_source.speedup
        return [
            job_status(progress, now_s, speedup, job_id in self.paused_jobs, self._meter(progress).effects)
            for job_id, progress in sorted(self.jobs.items())
        ]

    def count(self, region: str, state: str) -> int:
        """Jobs of the region in `state`; a paused count leaves out those an operator paused (not deferred by the
        grid, so not flexible load)."""
        jobs = [p for p in self.jobs.values() if p.region == region and p.state == state]
        if state == "paused":
            return sum(p.job_id not in self.paused_jobs for p in jobs)
        return len(jobs)
