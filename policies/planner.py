"""Window planner: choose when a deferrable batch job runs before its deadline, from a forecast of one grid signal.

Pure: values in, values out; no clock, no I/O, no Ray. docs/planner.md explains the algorithm and the guarantee.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Any

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, ConfigDict, Field

from fleet.headroom import HeadroomConfig
from fleet.regions import RegionConfig
from fleet.times import iso
from grid.forecast import Forecaster, PublishedForecast, get_forecaster
from grid.headroom import Assessment, GridSignals, assess
from grid.trace import Observation, Trace

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

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

_TRACE_COLUMN: dict[PlanSignal, str] = {
    PlanSignal.CARBON: "carbon_g_per_kwh",
    PlanSignal.PRICE: "price_usd_per_mwh",
}


def _higher_is_better(signal: PlanSignal) -> bool:
    return signal is PlanSignal.HEADROOM


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


@dataclass(frozen=True)
class GateDecision:
    """The gate's answer before a shard: run it now, or pause until `resume_at_s` and ask again."""

    run: bool
    reason: str
    resume_at_s: int | None


# --- the optimisation ---------------------------------------------------------------------------------------

_OFF, _FULL, _LEFT, _RIGHT = 0, 1, 2, 3


def _choose_slots(
    starts: list[int],
    ends: list[int],
    rates: list[float],
    work_s: int,
    penalty: float,
    running: bool,
    slot_s: int,
) -> list[tuple[int, int]] | None:
    """Minimum of sum(rate x hours run) + penalty x (runs started) over ways to run exactly `work_s` seconds.

    Exact for this problem: some optimum fills every slot it uses except at most one (shifting time between two
    partly used slots is linear in the amount, so one of them can always be emptied or filled without a loss and
    without a new interval), so slots are off, full, or the one partial slot, whose run sits at the start of
    the slot (continuing the previous slot's run) or at its end (leading into the next). Only the first and
    last slots of a window can be shorter than `slot_s`; which of them are full is enumerated, which fixes how
    many standard slots are full and how long the partial run is. A DP over slots then tracks (standard slots
    filled so far, running at the slot's end, partial used). O(slots x work/slot_s), a few ms for days.
    """
    n = len(starts)
    capacity = [end - start for start, end in zip(starts, ends, strict=True)]
    odd = [k for k in range(n) if capacity[k] != slot_s]
    standard = [k not in odd for k in range(n)]
    standard_after = [0] * (n + 1)  # standard slots from k to the end
    for k in range(n - 1, -1, -1):
        standard_after[k] = standard_after[k + 1] + (1 if standard[k] else 0)
    best: tuple[float, list[int], int] | None = None
    for mask in range(1 << len(odd)):
        full_odd = {odd[bit] for bit in range(len(odd)) if mask >> bit & 1}
        rest = work_s - sum(capacity[k] for k in full_odd)
        if rest < 0:
            continue
        full_standard, partial_s = divmod(rest, slot_s)
        if full_standard > standard_after[0]:
            continue
        found = _dp(capacity, rates, standard, standard_after, full_odd, full_standard, partial_s, penalty, running)
        if found is not None and (best is None or found[0] < best[0]):
            best = (found[0], found[1], partial_s)
    if best is None:
        return None
    _, actions, partial_s = best
    pieces: list[tuple[int, int]] = []
    for k, action in enumerate(actions):
        if action == _FULL:
            pieces.append((starts[k], ends[k]))
        elif action == _LEFT:
            pieces.append((starts[k], starts[k] + partial_s))
        elif action == _RIGHT:
            pieces.append((ends[k] - partial_s, ends[k]))
    return _merge(pieces)


def _dp(
    capacity: list[int],
    rates: list[float],
    standard: list[bool],
    standard_after: list[int],
    full_odd: set[int],
    full_standard: int,
    partial_s: int,
    penalty: float,
    running: bool,
) -> tuple[float, list[int]] | None:
    """One enumerated case of `_choose_slots`: minimum cost and the action per slot, or None if impossible."""
    n = len(capacity)
    inf = math.inf
    width = full_standard + 1
    # State index: 2 x running-at-slot-end + partial-used; each holds the cost per count of full standard slots.
    cost = [[inf] * width for _ in range(4)]
    cost[2 if running else 0][0] = 0.0
    choices: list[list[list[int]]] = []
    seen_standard = 0
    for k in range(n):
        hours = capacity[k] / HOUR_S
        run_cost = rates[k] * hours
        part_cost = rates[k] * partial_s / HOUR_S
        must_fill = k in full_odd
        can_part = 0 < partial_s <= capacity[k] and not must_fill
        step = 1 if standard[k] else 0
        new = [[inf] * width for _ in range(4)]
        choice = [[-1] * width for _ in range(4)]
        # Counts that can still reach the target: no more than the standard slots seen, no fewer than needed.
        low = max(0, full_standard - standard_after[k])
        high = min(full_standard, seen_standard)
        for state in range(4):
            was_running, used = state >> 1, state & 1
            start_cost = 0.0 if was_running else penalty
            row = cost[state]
            for count in range(low, high + 1):
                base = row[count]
                if base == inf:
                    continue
                if must_fill:
                    target = 2 + used
                    value = base + run_cost + start_cost
                    if value < new[target][count]:
                        new[target][count] = value
                        choice[target][count] = state * 4 + _FULL
                    continue
                target = used
                if base < new[target][count]:
                    new[target][count] = base
                    choice[target][count] = state * 4 + _OFF
                if step and count < full_standard:
                    target = 2 + used
                    value = base + run_cost + start_cost
                    if value < new[target][count + 1]:
                        new[target][count + 1] = value
                        choice[target][count + 1] = state * 4 + _FULL
                if can_part and not used:
                    value = base + part_cost + start_cost  # runs from the slot's start, then stops
                    if value < new[1][count]:
                        new[1][count] = value
                        choice[1][count] = state * 4 + _LEFT
                    value = base + part_cost + penalty  # starts mid-slot, runs into the next slot
                    if value < new[3][count]:
                        new[3][count] = value
                        choice[3][count] = state * 4 + _RIGHT
        cost = new
        choices.append(choice)
        seen_standard += step
    used_final = 1 if partial_s > 0 else 0
    finals = [(cost[2 * r + used_final][full_standard], 2 * r + used_final) for r in (0, 1)]
    total, state = min(finals)
    if total == inf:
        return None
    actions = [_OFF] * n
    count = full_standard
    for k in range(n - 1, -1, -1):
        code = choices[k][state][count]
        actions[k] = code % 4
        if actions[k] == _FULL and standard[k]:
            count -= 1
        state = code // 4
    return total, actions


def _merge(pieces: list[tuple[int, int]]) -> list[tuple[int, int]]:
    merged: list[tuple[int, int]] = []
    for start, end in sorted(pieces):
        if end <= start:
            continue
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(end, merged[-1][1]))
        else:
            merged.append((start, end))
    return merged


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
    chosen = _choose_slots(starts, ends, rates, remaining, penalty, running and start == now_s, slot_s)
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


# --- the forecast -------------------------------------------------------------------------------------------

DEFAULT_FORECASTER = "seasonal_naive_24h"
"""Previous-day naive: the better seasonal-naive forecaster on every zone and column (BENCHMARKS.md)."""

DATA_LAG_S = HOUR_S
"""How long after its timestamp a trace row is complete: rows are hour starts, so the hour ending now is the
latest known. `forecast_signal` issues the forecaster this much before the planning moment."""


def _column_forecast(
    trace: Trace, zone: str, column: str, issued_at_s: int, targets: IntArray, forecaster: Forecaster, region: str
) -> FloatArray:
    if column not in trace.columns:
        raise ValueError(
            f"{trace.source}: no {column!r} column, so region {region!r} has no {column} forecast "
            f"(the trace has {list(trace.columns)})"
        )
    if zone not in trace.zones:
        raise ValueError(f"{trace.source}: region {region!r} reads {column!r} from zone {zone!r}, which it lacks")
    if trace.latest(zone, column, issued_at_s) is None:
        raise ValueError(f"{trace.source}: zone {zone!r} has no {column!r} value at or before {iso(issued_at_s)}")
    return np.asarray(forecaster.forecast(trace, zone, column, issued_at_s, targets), dtype=np.float64)


def _optional_column_forecast(
    trace: Trace, zone: str, column: str, issued_at_s: int, targets: IntArray, forecaster: Forecaster, region: str
) -> FloatArray | None:
    if column not in trace.columns or zone not in trace.zones or trace.latest(zone, column, issued_at_s) is None:
        return None
    return _column_forecast(trace, zone, column, issued_at_s, targets, forecaster, region)


def forecast_signal(
    trace: Trace,
    region: RegionConfig,
    signal: PlanSignal | str,
    issued_at_s: int,
    slot_times_s: npt.ArrayLike,
    headroom_config: HeadroomConfig,
    *,
    forecaster: str | Forecaster = DEFAULT_FORECASTER,
    data_lag_s: int = DATA_LAG_S,
) -> FloatArray:
    """Forecast of `signal` for the region at `slot_times_s`, made at `issued_at_s` from the trace alone.

    Carbon and price: `forecaster` (a name in grid.forecast.FORECASTERS or a Forecaster; previous-day naive by
    default) on the column of the region's zone for it.
    Headroom: the one headroom formula (grid.headroom.assess) applied to forecast inputs: demand (the
    authority's published day-ahead forecast where the trace has one, else `forecaster`), carbon and price where
    the trace has them, and the reference peak as known at issue time, each stamped at its target hour (so fresh).
    The forecast component (demand against the day-ahead forecast) measures surprise, which no forecast can
    foresee, so it is left out. Only rows complete `data_lag_s` before `issued_at_s` are used. NaN where nothing
    can be said. ValueError when the trace lacks the column (or, for headroom, every input) the signal needs.
    """
    signal = PlanSignal(signal)
    model = get_forecaster(forecaster) if isinstance(forecaster, str) else forecaster
    targets = np.asarray(slot_times_s, dtype=np.int64).reshape(-1)
    known_at = issued_at_s - data_lag_s
    if signal is not PlanSignal.HEADROOM:
        column = _TRACE_COLUMN[signal]
        return _column_forecast(trace, region.zone_for(column), column, known_at, targets, model, region.name)

    assessments = forecast_assessments(
        trace, region, issued_at_s, targets, headroom_config, forecaster=model, data_lag_s=data_lag_s
    )
    return np.array([np.nan if a is None else a.grid_headroom for a in assessments], dtype=np.float64)


def forecast_assessments(
    trace: Trace,
    region: RegionConfig,
    issued_at_s: int,
    slot_times_s: npt.ArrayLike,
    headroom_config: HeadroomConfig,
    *,
    forecaster: str | Forecaster = DEFAULT_FORECASTER,
    data_lag_s: int = DATA_LAG_S,
) -> list[Assessment | None]:
    """The headroom formula's whole assessment (headroom and stress) at each slot, from forecast inputs only (see
    forecast_signal); None where nothing can be said. ValueError when the trace has no input at all."""
    model = get_forecaster(forecaster) if isinstance(forecaster, str) else forecaster
    targets = np.asarray(slot_times_s, dtype=np.int64).reshape(-1)
    known_at = issued_at_s - data_lag_s
    demand_zone = region.zone_for("demand_mw")
    demand = _optional_column_forecast(trace, demand_zone, "demand_mw", known_at, targets, model, region.name)
    forecast_zone = region.zone_for("demand_forecast_mw")
    if demand is not None and "demand_forecast_mw" in trace.columns and forecast_zone in trace.zones:
        # The authority's own day-ahead forecast is about twice as accurate as naive (BENCHMARKS.md); naive fills
        # the hours it has not published yet.
        published = PublishedForecast().forecast(trace, forecast_zone, "demand_mw", known_at, targets)
        demand = np.where(np.isnan(published), demand, published)
    carbon_column, price_column = _TRACE_COLUMN[PlanSignal.CARBON], _TRACE_COLUMN[PlanSignal.PRICE]
    carbon = _optional_column_forecast(
        trace, region.zone_for(carbon_column), carbon_column, known_at, targets, model, region.name
    )
    price = _optional_column_forecast(
        trace, region.zone_for(price_column), price_column, known_at, targets, model, region.name
    )
    if demand is None and carbon is None and price is None:
        raise ValueError(
            f"{trace.source}: no demand, carbon or price for region {region.name!r} at {iso(known_at)}, so no "
            "headroom forecast"
        )
    peak = trace.trailing_quantile(
        demand_zone,
        "demand_mw",
        known_at,
        int(headroom_config.peak_lookback_days * 86_400),
        headroom_config.peak_quantile,
    )

    def at(values: FloatArray | None, index: int, target: int) -> Observation | None:
        if values is None or math.isnan(values[index]):
            return None
        return Observation(float(values[index]), target)

    result: list[Assessment | None] = [None] * len(targets)
    for index, target in enumerate(int(t) for t in targets):
        signals = GridSignals(
            at_s=target,
            demand_mw=at(demand, index, target),
            reference_peak_mw=peak,
            carbon_g_per_kwh=at(carbon, index, target),
            price_usd_per_mwh=at(price, index, target),
        )
        if signals.demand_mw is None and signals.carbon_g_per_kwh is None and signals.price_usd_per_mwh is None:
            continue  # assess would answer the conservative default; the planner's own NaN rule is clearer
        result[index] = assess(signals, headroom_config)
    return result


# --- JSON -------------------------------------------------------------------------------------------------------


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
