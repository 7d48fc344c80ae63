"""The engine's batch and training jobs: each job's plan and gate every hour, by the live functions.

As policies.job_registry composes them: the job's window plan, made at its first gate (policies.planner.plan_windows
on the forecast policies.plan_forecast.forecast_signal makes), the plan's verdict with the slack rule
(policies.planner.plan_verdict), then the gate (policies.batch_gate.decide_gate) with the hour's stress and the
policy's batch permission. Nothing here decides; it feeds those functions and books what they answer.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final

import numpy as np

from fleet.config import FleetConfig
from fleet.regions import RegionConfig
from fleet.serving import Knobs
from grid.context import FleetContext
from grid.trace import FloatArray, IntArray
from policies.batch_gate import BatchKnobs, PlanVerdict, decide_gate, workers_for
from policies.ladder import RegionDecision
from policies.plan import DEFAULT_PLANNER_CONFIG, Plan, PlanSignal
from policies.plan_forecast import TRACE_COLUMN, forecast_signal
from policies.planner import plan_verdict, plan_windows
from simulate.jobs import HOUR_S, Job

JOB_SIGNAL: Final = PlanSignal.CARBON
"""The signal simulated jobs plan on (the default trace carries carbon; a job without a forecast runs, as live)."""


@dataclass
class JobState:
    job: Job
    remaining_s: int
    plan: Plan | None = None
    planned: bool = False


@dataclass
class GateHour:
    """One hour's gate over every region's jobs: job units running and held, per region (fleet order)."""

    running_units: FloatArray
    deferred_units: FloatArray
    finished: list[JobState] = field(default_factory=list)  # jobs whose work completed this hour


def actual_signal(context: FleetContext, region: str, slots: IntArray) -> FloatArray:
    """The trace's actual carbon at `slots` (NaN where it has none): what a perfect-foresight plan is made on."""
    config = context.fleet.region(region)
    series = context.trace.zones.get(config.zone_for("carbon_g_per_kwh"))
    values = np.full(len(slots), np.nan)
    if series is None or "carbon_g_per_kwh" not in series.columns:
        return values
    rows = np.searchsorted(series.times_s, slots)
    ok = rows < len(series.times_s)
    hit = ok.copy()
    hit[ok] = series.times_s[rows[ok]] == slots[ok]
    values[hit] = series.columns["carbon_g_per_kwh"][rows[hit]]
    return values


class JobGate:
    """The plan and the gate for every job of the fleet, hour by hour."""

    def __init__(
        self, context: FleetContext, fleet: FleetConfig, levers: frozenset[str], foresight: str, defaults: Knobs
    ) -> None:
        self.context, self.fleet = context, fleet
        self.levers, self.foresight, self.defaults = levers, foresight, defaults
        # This hour's forecast per zone, over the longest window a job asked for, or why there is none.
        self._forecast_hour = -1
        self._forecasts: dict[str, FloatArray | ValueError] = {}

    def _forecast(self, region: RegionConfig, now: int, slots: IntArray) -> FloatArray:
        """forecast_signal for a job planned at `now` over `slots` (hourly from the hour of `now`). Every job planned
        in a zone that hour shares one call: the forecaster predicts each slot on its own (grid.forecast), so the
        forecast over the longest window asked serves every shorter one."""
        if now != self._forecast_hour:
            self._forecast_hour, self._forecasts = now, {}
        zone = region.zone_for(TRACE_COLUMN[JOB_SIGNAL])
        cached = self._forecasts.get(zone)
        if isinstance(cached, ValueError):
            raise ValueError(str(cached))
        if cached is None or len(cached) < len(slots):
            try:
                cached = forecast_signal(self.context.trace, region, JOB_SIGNAL, now, slots, self.fleet.headroom)
            except ValueError as error:
                self._forecasts[zone] = error
                raise
            self._forecasts[zone] = cached
        return cached[: len(slots)]

    def verdict(self, state: JobState, now: int) -> PlanVerdict:
        """As policies.job_registry.plan_verdict: the job's plan, made at its first gate, and the slack rule."""
        job, config = state.job, DEFAULT_PLANNER_CONFIG
        if not state.planned:
            state.planned = True
            slots = np.arange(now // HOUR_S * HOUR_S, max(job.deadline_s, now + HOUR_S), HOUR_S, dtype=np.int64)
            region = self.fleet.region(job.region)
            try:
                if self.foresight == "perfect":
                    forecast = actual_signal(self.context, job.region, slots)
                    if np.isnan(forecast).all():
                        raise ValueError("no carbon in the trace for the window")
                else:
                    forecast = self._forecast(region, now, slots)
            except ValueError:
                state.plan = None
            else:
                state.plan = plan_windows(
                    now, job.deadline_s, state.remaining_s, slots, forecast, JOB_SIGNAL, now_s=now, config=config
                )
        return plan_verdict(state.plan, now, state.remaining_s, job.deadline_s, config)

    def runs(self, state: JobState, now: int, stress: int, decision: RegionDecision | None) -> bool:
        if "time" not in self.levers:
            return True
        batch = decision.batch if decision is not None and "magnitude" in self.levers else None
        pause = None if batch is None or batch.may_run else f"the policy paused batch at rung {decision.step}"  # type: ignore[union-attr]
        answer = decide_gate(
            manual_pause=False,
            verdict=self.verdict(state, now),
            stress_level=stress,
            knobs=BatchKnobs(
                batch_size=self.defaults.max_batch_size if batch is None else batch.batch_size,
                precision=self.defaults.precision_for("batch").value if batch is None else batch.precision.value,
                concurrency=workers_for(state.job.width_units, 1.0 if batch is None else batch.workers_fraction),
            ),
            now_s=float(now),
            speedup=1.0,
            policy_pause=pause,
        )
        return answer.run

    def hour(
        self,
        active: list[list[JobState]],
        at: int,
        stress: list[int],
        decisions: list[RegionDecision],
    ) -> GateHour:
        """Gate every active job of every region (fleet order) for the hour at `at`; a job that runs does an hour
        of work. Finished jobs leave `active` and are returned; the rest stay."""
        n = len(active)
        gate = GateHour(np.zeros(n), np.zeros(n))
        for i in range(n):
            still: list[JobState] = []
            for state in active[i]:
                if self.runs(state, at, stress[i], decisions[i]):
                    gate.running_units[i] += state.job.width_units
                    state.remaining_s -= HOUR_S
                else:
                    gate.deferred_units[i] += state.job.width_units
                if state.remaining_s > 0:
                    still.append(state)
                else:
                    gate.finished.append(state)
            active[i] = still
        return gate
