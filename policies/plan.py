"""A job's window plan as data: the signal it plans on, the planner's tunables, the plan and its stable JSON.

Pure: values only. The planner that makes a Plan is policies/planner.py (docs/planner.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from fleet.times import iso

HOUR_S = 3600
PLAN_SCHEMA = "gridshift.batch_plan/v1"


class PlanSignal(StrEnum):
    """The grid signal a job plans on, as the job declares it."""

    CARBON = "carbon"  # average carbon intensity, gCO2/kWh: lower is better
    PRICE = "price"  # wholesale price, USD/MWh: lower is better
    HEADROOM = "headroom"  # grid headroom 0..1 (docs/headroom.md): higher is better


SIGNAL_UNITS: dict[PlanSignal, str] = {
    PlanSignal.CARBON: "gCO2/kWh",
    PlanSignal.PRICE: "USD/MWh",
    PlanSignal.HEADROOM: "headroom (0..1)",
}


class PlannerConfig(BaseModel):
    """Tunables of the window planner and of the gate a batch runner asks before each shard."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    safety_factor: float = Field(
        1.1,
        ge=1.0,
        le=10.0,
        description="Remaining work is multiplied by this when judging slack: the slowdown of shards against "
        "their estimate that the deadline guarantee tolerates.",
    )
    margin_s: int = Field(
        600,
        ge=0,
        description="Slack always kept in reserve, s: how late a paused runner may wake up (after the time the "
        "gate gave it) without putting the deadline at risk.",
    )
    resume_overhead_h: float = Field(
        0.1,
        ge=0.0,
        le=24.0,
        description="What one more resume (start-up of a paused job) is assumed to cost, as hours of running at "
        "the window's median signal level; sets the resume penalty unless resume_penalty is given.",
    )
    resume_penalty: float | None = Field(
        None,
        ge=0.0,
        description="Cost of one more resume in signal units x hours (e.g. gCO2/kWh x h); null: derived from "
        "resume_overhead_h. 0 lets the plan split into as many pieces as the forecast rewards.",
    )


DEFAULT_PLANNER_CONFIG = PlannerConfig()


@dataclass(frozen=True)
class Plan:
    """When a job should run: merged run intervals (epoch s, [start, end)) and what the forecast expects of them.

    `expected_signal` and `run_now_signal` are work-weighted means of the forecast (in `SIGNAL_UNITS`) over the
    planned run and over running at once from `planned_from_s`; `savings` is how much better the plan is
    (positive: less carbon or price, more headroom), in the same unit, and `savings_pct` relative to running at
    once. They are None where there was no forecast at all. Slots without a forecast count as the worst value
    forecast in the window, so the figures are pessimistic there.
    """

    signal: PlanSignal
    release_s: int
    deadline_s: int
    planned_from_s: int  # the moment the plan starts from: max(now, release)
    work_s: int  # remaining work the plan schedules, s
    intervals: tuple[tuple[int, int], ...]
    expected_signal: float | None
    run_now_signal: float | None
    savings: float | None
    savings_pct: float | None
    feasible: bool  # False: the remaining work does not fit before the deadline at all
    forced: bool  # True: feasible, but there is no slack to wait; runs at once regardless of the grid
    reason: str
    resume_penalty: float  # signal units x hours, as used
    missing_forecast_slots: int  # slots of the window that had no forecast value

    @property
    def finish_s(self) -> int:
        """When the planned run ends (the planned_from time when there is no work left)."""
        return self.intervals[-1][1] if self.intervals else self.planned_from_s

    @property
    def planned_s(self) -> int:
        return sum(end - start for start, end in self.intervals)


def _rounded(value: float | None, digits: int = 4) -> float | None:
    return None if value is None else round(value, digits)


def plan_to_dict(plan: Plan) -> dict[str, Any]:
    """Stable JSON form of a plan (`gridshift batch plan --json`, schema gridshift.batch_plan/v1)."""
    return {
        "schema": PLAN_SCHEMA,
        "signal": plan.signal.value,
        "unit": SIGNAL_UNITS[plan.signal],
        "release": iso(plan.release_s),
        "deadline": iso(plan.deadline_s),
        "planned_from": iso(plan.planned_from_s),
        "work_s": plan.work_s,
        "intervals": [{"start": iso(start), "end": iso(end)} for start, end in plan.intervals],
        "finish": iso(plan.finish_s),
        "expected_signal": _rounded(plan.expected_signal),
        "run_now_signal": _rounded(plan.run_now_signal),
        "savings": _rounded(plan.savings),
        "savings_pct": _rounded(plan.savings_pct, 2),
        "feasible": plan.feasible,
        "forced": plan.forced,
        "reason": plan.reason,
        "resume_penalty": _rounded(plan.resume_penalty),
        "missing_forecast_slots": plan.missing_forecast_slots,
    }
