"""Window planner: when a deferrable batch job runs before its deadline, and the gate that keeps it on time.

Plans from a forecast of one grid signal (policies/plan_forecast.py) with an exact optimisation
(policies/plan_search.py); the plan as data is policies/plan.py. Pure: values in, values out; no clock, no I/O,
no Ray. docs/planner.md explains the algorithm and the guarantee.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np
import numpy.typing as npt

from fleet.times import iso
from grid.trace import FloatArray, IntArray
from policies.batch_gate import PlanVerdict
from policies.plan import DEFAULT_PLANNER_CONFIG, HOUR_S, SIGNAL_UNITS, Plan, PlannerConfig, PlanSignal
from policies.plan_search import choose_slots


def _higher_is_better(signal: PlanSignal) -> bool:
    return signal is PlanSignal.HEADROOM


# --- planning -------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Grid:
    """The forecast on a slot grid from the slot holding `first_s` on; badness: lower is better, NaN filled."""

    origin_s: int
    slot_s: int
    badness: FloatArray

    def mean(self, intervals: list[tuple[int, int]] | tuple[tuple[int, int], ...]) -> float:
        """Time-weighted mean badness over the intervals."""
        total = 0.0
        seconds = 0
        for start, end in intervals:
            at = start
            while at < end:
                slot = (at - self.origin_s) // self.slot_s
                slot_end = min(end, self.origin_s + (slot + 1) * self.slot_s)
                total += float(self.badness[slot]) * (slot_end - at)
                seconds += slot_end - at
                at = slot_end
        return total / seconds if seconds else math.nan


def _validated_forecast(
    slot_times_s: npt.ArrayLike, slot_values: npt.ArrayLike, slot_s: int
) -> tuple[IntArray, FloatArray]:
    times = np.asarray(slot_times_s, dtype=np.int64).reshape(-1)
    values = np.asarray(slot_values, dtype=np.float64).reshape(-1)
    if times.shape != values.shape:
        raise ValueError(f"slot_times_s ({len(times)}) and slot_values ({len(values)}) differ in length")
    if slot_s <= 0:
        raise ValueError(f"slot_s must be positive, got {slot_s}")
    if len(times) > 1:
        steps = np.diff(times)
        if (steps <= 0).any():
            raise ValueError("slot_times_s must be strictly increasing")
        if (steps % slot_s != 0).any():
            raise ValueError(f"slot_times_s must lie on one grid of {slot_s} s slots")
    return times, values


def _grid(times: IntArray, values: FloatArray, signal: PlanSignal, first_s: int, end_s: int, slot_s: int) -> _Grid:
    """Forecast badness for every slot from the one holding first_s up to end_s; slots absent are NaN."""
    anchor = int(times[0]) if len(times) else first_s
    origin = anchor + ((first_s - anchor) // slot_s) * slot_s
    count = max(1, -(-(end_s - origin) // slot_s))
    grid_times = origin + np.arange(count, dtype=np.int64) * slot_s
    badness = np.full(count, np.nan, dtype=np.float64)
    if len(times):
        row = np.searchsorted(times, grid_times)
        clipped = np.minimum(row, len(times) - 1)
        hit = (row < len(times)) & (times[clipped] == grid_times)
        badness[hit] = values[clipped[hit]]
    badness[~np.isfinite(badness)] = np.nan  # +-inf is no forecast either
    if _higher_is_better(signal):
        badness = -badness
    return _Grid(origin, slot_s, badness)


def _reserve_s(remaining_s: int, config: PlannerConfig) -> int:
    """Slack held back from planning: (safety_factor - 1) x remaining work + margin, whole seconds."""
    # Rounded first so that 1.1 x 10800 is 1080 s, not 1081 after binary floating point.
    return math.ceil(round((config.safety_factor - 1.0) * remaining_s, 6)) + config.margin_s


def _slack_horizon_s(deadline_s: int, remaining_s: int, config: PlannerConfig) -> int:
    """Latest end for planned work such that the gate never has to force a run while the plan is followed."""
    return deadline_s - _reserve_s(remaining_s, config)


def _hours(seconds: float) -> str:
    return f"{seconds / HOUR_S:.2f} h"


def plan_windows(
    release_s: int,
    deadline_s: int,
    work_s: int,
    slot_times_s: npt.ArrayLike,
    slot_values: npt.ArrayLike,
    signal: PlanSignal | str,
    slot_s: int = HOUR_S,
    now_s: int | None = None,
    done_s: int = 0,
    *,
    running: bool = False,
    config: PlannerConfig = DEFAULT_PLANNER_CONFIG,
) -> Plan:
    """Plan when to run the job's remaining work (`work_s - done_s`) between max(now, release) and the deadline.

    `slot_values[i]` is the forecast of `signal` for [slot_times_s[i], + slot_s) as known at planning time; NaN
    (or a slot absent from the arrays) means no forecast and counts as the worst value forecast in the window,
    so the plan only goes there when nothing better fits. The plan minimises the forecast cost (carbon, price;
    for headroom it maximises), plus `resume_penalty` per extra interval, and ends by the slack horizon
    `deadline - (safety_factor - 1) x remaining - margin`, so the gate (`should_run`) never needs to force a run
    while the plan is followed. `running` says the job is running at `now`: continuing costs no resume.
    Call again at any time (the runner does, when a newer forecast is issued or after slippage): see `replan`.
    """
    signal = PlanSignal(signal)
    if work_s < 0 or done_s < 0:
        raise ValueError(f"work_s and done_s must be >= 0, got {work_s} and {done_s}")
    if deadline_s < release_s:
        raise ValueError(f"deadline ({iso(deadline_s)}) is before release ({iso(release_s)})")
    times, values = _validated_forecast(slot_times_s, slot_values, slot_s)
    start = release_s if now_s is None else max(release_s, now_s)
    remaining = max(0, work_s - done_s)
    horizon = _slack_horizon_s(deadline_s, remaining, config)
    grid = _grid(times, values, signal, start, max(deadline_s, start + remaining, start + 1), slot_s)

    # Missing forecasts count as the worst value forecast for the slots the job may use (else anywhere), so the
    # plan avoids them unless nothing better fits, and the expected figures are pessimistic there.
    first_slot = (start - grid.origin_s) // slot_s
    last_slot = max(first_slot, (max(deadline_s, start + remaining) - 1 - grid.origin_s) // slot_s)
    usable = grid.badness[first_slot : last_slot + 1]
    missing = int(np.isnan(usable).sum())
    known_values = usable[~np.isnan(usable)]
    if len(known_values) == 0:
        known_values = values[np.isfinite(values)] * (-1.0 if _higher_is_better(signal) else 1.0)
    has_forecast = len(known_values) > 0
    if has_forecast:
        grid = _Grid(grid.origin_s, slot_s, np.where(np.isnan(grid.badness), float(known_values.max()), grid.badness))
    sign = -1.0 if _higher_is_better(signal) else 1.0
    at_once = [(start, start + remaining)]

    def result(intervals: list[tuple[int, int]], feasible: bool, forced: bool, reason: str, penalty: float) -> Plan:
        known = has_forecast and bool(intervals)
        expected = grid.mean(intervals) if known else math.nan
        now_mean = grid.mean(at_once) if known else math.nan
        savings = now_mean - expected if known else None
        return Plan(
            signal=signal,
            release_s=release_s,
            deadline_s=deadline_s,
            planned_from_s=start,
            work_s=remaining,
            intervals=tuple(intervals),
            expected_signal=sign * expected if known else None,
            run_now_signal=sign * now_mean if known else None,
            savings=savings,
            savings_pct=100.0 * savings / abs(now_mean) if savings is not None and now_mean != 0 else None,
            feasible=feasible,
            forced=forced,
            reason=reason,
            resume_penalty=penalty,
            missing_forecast_slots=missing,
        )

    if remaining == 0:
        return result([], True, False, "no work left", 0.0)
    if remaining > deadline_s - start:
        late = remaining - (deadline_s - start)
        reason = (
            f"infeasible: {_hours(remaining)} of work but {_hours(max(0, deadline_s - start))} left before the "
            f"deadline; running at once, about {_hours(late)} late"
        )
        return result(at_once, False, False, reason, 0.0)
    if remaining > horizon - start:
        reason = (
            f"forced: no slack to wait ({_hours(deadline_s - start)} left for {_hours(remaining)} of work with safety "
            f"factor {config.safety_factor:g} and margin {config.margin_s} s); running at once regardless of the grid"
        )
        return result(at_once, True, True, reason, 0.0)
    if not has_forecast:
        return result(at_once, True, False, "no forecast for the window: running at once", 0.0)

    # The window's slots, clipped to [start, horizon); the first and last may be partial.
    last_slot = (horizon - 1 - grid.origin_s) // slot_s
    starts = [max(start, grid.origin_s + k * slot_s) for k in range(first_slot, last_slot + 1)]
    ends = [min(horizon, grid.origin_s + (k + 1) * slot_s) for k in range(first_slot, last_slot + 1)]
    if config.resume_penalty is not None:
        penalty = config.resume_penalty
    else:
        penalty = config.resume_overhead_h * float(np.median(np.abs(known_values)))
    # Ties go to the earlier slot (finishing sooner leaves more slack for slippage); the nudge is far below
    # any real difference in the signal.
    nudge = 1e-9 * max(1.0, float(np.abs(known_values).max()))
    rates = [float(grid.badness[first_slot + k]) + nudge * k for k in range(len(starts))]
    chosen = choose_slots(starts, ends, rates, remaining, penalty, running and start == now_s, slot_s)
    if chosen is None:  # cannot happen: the window is at least as long as the work
        raise RuntimeError("planner found no schedule for a feasible window")
    plan = result(chosen, True, False, "", penalty)
    unit = SIGNAL_UNITS[signal]
    if len(chosen) == 1 and chosen[0][0] == start:
        reason = f"running at once: no better window before the deadline (expected {plan.expected_signal:.4g} {unit})"
    else:
        reason = (
            f"waiting for better hours: {len(chosen)} interval(s), expected {plan.expected_signal:.4g} {unit} against "
            f"{plan.run_now_signal:.4g} running at once"
        )
    if plan.missing_forecast_slots:
        reason += f"; {plan.missing_forecast_slots} slot(s) without forecast counted as the worst value"
    return replace(plan, reason=reason)


def replan(
    plan: Plan,
    now_s: int,
    remaining_work_s: int,
    slot_times_s: npt.ArrayLike,
    slot_values: npt.ArrayLike,
    slot_s: int = HOUR_S,
    *,
    running: bool = False,
    config: PlannerConfig = DEFAULT_PLANNER_CONFIG,
) -> Plan:
    """The same job planned again from `now_s` with what is left of its work and a newer forecast."""
    return plan_windows(
        plan.release_s,
        plan.deadline_s,
        remaining_work_s,
        slot_times_s,
        slot_values,
        plan.signal,
        slot_s,
        now_s=now_s,
        running=running,
        config=config,
    )


# --- the gate -------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class GateDecision:
    """The gate's answer before a shard: run it now, or pause until `resume_at_s` and ask again."""

    run: bool
    reason: str
    resume_at_s: int | None


def slack_runs_out_at_s(deadline_s: int, remaining_work_s: int, config: PlannerConfig = DEFAULT_PLANNER_CONFIG) -> int:
    """From this moment on the job must run regardless of the grid: deadline - safety x work - margin."""
    # Exactly the planner's slack horizon minus the work, so a plan that is followed never trips it early.
    return deadline_s - remaining_work_s - _reserve_s(remaining_work_s, config)


def should_run(
    plan: Plan,
    now_s: int,
    remaining_work_s: int,
    deadline_s: int,
    config: PlannerConfig = DEFAULT_PLANNER_CONFIG,
) -> GateDecision:
    """Whether a batch runner may run its next shard now.

    Runs when `now` is inside a planned interval, when the plan could not wait, when the planned intervals are
    over but work remains (the estimate was short: replan to wait again), and always once slack has run out.
    Otherwise it pauses until the next planned start, but never past the moment slack runs out. With a runner
    that asks before each shard, wakes at most `margin_s` after `resume_at_s`, and whose shards take at most
    `safety_factor` times their estimate, a job with deadline - release >= safety_factor x work finishes by its
    deadline (and with shards within their estimate, any job with deadline - release >= work does):
    tests/unit/test_planner.py proves it for random plans, progress and delays; docs/planner.md argues it.
    """
    if remaining_work_s <= 0:
        return GateDecision(False, "done: no work left", None)
    slack_end = slack_runs_out_at_s(deadline_s, remaining_work_s, config)
    if now_s >= slack_end:
        return GateDecision(True, "slack exhausted: running regardless of the grid", None)
    if not plan.feasible or plan.forced:
        return GateDecision(True, plan.reason, None)
    for start, end in plan.intervals:
        if start <= now_s < end:
            return GateDecision(True, f"in a planned window until {iso(end)}", None)
        if start > now_s:
            if start <= slack_end:
                return GateDecision(False, f"paused until the planned window at {iso(start)}", start)
            return GateDecision(False, f"paused until slack runs out at {iso(slack_end)}", slack_end)
    return GateDecision(
        True, "behind plan: the planned windows are over but work remains; running (replan to wait)", None
    )


def plan_verdict(
    plan: Plan | None,
    now_s: int,
    remaining_work_s: int,
    deadline_s: int,
    config: PlannerConfig = DEFAULT_PLANNER_CONFIG,
    no_plan_reason: str = "no forecast: running",
) -> PlanVerdict:
    """What the batch gate is told of a job's plan now: `should_run`, and whether the run is forced (slack has run
    out, or the plan could not wait), so stress and the policy cannot pause it. A job with no plan (no forecast of
    its signal) runs, and the slack rule still forces it: without that, stress could pause it past its deadline."""
    if plan is None:
        return PlanVerdict(
            True, now_s >= slack_runs_out_at_s(deadline_s, remaining_work_s, config), no_plan_reason, None
        )
    decision = should_run(plan, now_s, remaining_work_s, deadline_s, config)
    forced = decision.run and (
        now_s >= slack_runs_out_at_s(deadline_s, remaining_work_s, config) or plan.forced or not plan.feasible
    )
    return PlanVerdict(decision.run, forced, decision.reason, decision.resume_at_s)
