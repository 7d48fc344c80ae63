"""Window planner: cleanest hours, contiguity, infeasible and forced jobs, missing forecasts, the deadline gate."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fleet.headroom import HeadroomConfig
from fleet.regions import RegionConfig
from fleet.times import iso
from grid.headroom import GridSignals, assess
from grid.trace import Observation, Trace, parse_trace
from policies.plan import PLAN_SCHEMA, Plan, PlannerConfig, PlanSignal, plan_to_dict
from policies.plan_forecast import forecast_signal
from policies.planner import GateDecision, plan_windows, replan, should_run, slack_runs_out_at_s

H = 3600
BASE = int(datetime(2022, 6, 1, tzinfo=UTC).timestamp())
EXACT = PlannerConfig(safety_factor=1.0, margin_s=0, resume_penalty=0.0)
"""No reserve and no resume penalty: the plan is the plain cheapest placement of the work."""


def hours(count: int, start_s: int = 0) -> np.ndarray:
    return start_s + np.arange(count, dtype=np.int64) * H


def plan(
    values: Sequence[float],
    work_s: int,
    deadline_s: int,
    *,
    signal: PlanSignal | str = PlanSignal.CARBON,
    config: PlannerConfig = EXACT,
    release_s: int = 0,
    done_s: int = 0,
) -> Plan:
    """A plan on an hourly forecast starting at time 0."""
    return plan_windows(
        release_s, deadline_s, work_s, hours(len(values)), list(values), signal, done_s=done_s, config=config
    )


# --- choosing hours ---------------------------------------------------------------------------------------


def test_picks_the_cleanest_hours() -> None:
    result = plan([500, 400, 100, 120, 450, 480], 2 * H, 6 * H)
    assert result.intervals == ((2 * H, 4 * H),)
    assert result.expected_signal == pytest.approx(110)
    assert result.run_now_signal == pytest.approx(450)
    assert result.savings == pytest.approx(340)
    assert result.savings_pct == pytest.approx(100 * 340 / 450)
    assert result.feasible
    assert not result.forced


def test_cleanest_hours_need_not_be_adjacent_when_the_gain_is_large() -> None:
    result = plan([100, 500, 500, 110], 2 * H, 4 * H, config=PlannerConfig(safety_factor=1.0, margin_s=0))
    assert result.intervals == ((0, H), (3 * H, 4 * H))


def test_stays_contiguous_when_the_gain_is_small() -> None:
    alternating = [300.0, 290.0] * 5
    split = plan(alternating, 3 * H, 10 * H)
    assert len(split.intervals) == 3  # without a resume penalty every cheaper hour is taken
    default = plan(alternating, 3 * H, 10 * H, config=PlannerConfig(safety_factor=1.0, margin_s=0))
    assert len(default.intervals) == 1  # 10 g/kWh per hour does not pay for a ~30 g/kWh-h resume
    assert default.planned_s == 3 * H
    assert default.resume_penalty == pytest.approx(0.1 * 295)


def test_explicit_resume_penalty_is_used() -> None:
    result = plan([100, 500, 100], 2 * H, 3 * H, config=PlannerConfig(safety_factor=1, margin_s=0, resume_penalty=1e6))
    assert len(result.intervals) == 1
    assert result.resume_penalty == 1e6


def test_ties_go_to_the_earliest_hours() -> None:
    result = plan([200.0] * 8, 3 * H, 8 * H)
    assert result.intervals == ((0, 3 * H),)
    assert result.reason.startswith("running at once")


def test_partial_hours_at_both_ends_of_the_window() -> None:
    # Release at 00:30, deadline at 05:45, 90 min of work; hour 3 is the cleanest, hour 2 next.
    values = [400, 400, 150, 100, 400, 400]
    config = PlannerConfig(safety_factor=1.0, margin_s=0)
    result = plan(values, 90 * 60, 5 * H + 45 * 60, release_s=30 * 60, config=config)
    assert result.planned_s == 90 * 60
    assert result.intervals == ((2 * H + 30 * 60, 4 * H),)
    assert result.expected_signal == pytest.approx((150 * 30 + 100 * 60) / 90)


def test_work_in_a_partial_last_hour_stays_before_the_deadline() -> None:
    # Deadline 2:30: the clean hour is only half usable; the other 10 min go to the earliest dirty hour, or,
    # with the default resume penalty, right before it so the job runs in one piece.
    split = plan([400, 400, 100], 40 * 60, 2 * H + 30 * 60)
    assert split.intervals == ((0, 600), (2 * H, 2 * H + 1800))
    whole = plan([400, 400, 100], 40 * 60, 2 * H + 30 * 60, config=PlannerConfig(safety_factor=1.0, margin_s=0))
    assert whole.intervals == ((2 * H - 600, 2 * H + 1800),)


def test_headroom_is_maximised() -> None:
    result = plan([0.2, 0.9, 0.8, 0.1], 2 * H, 4 * H, signal=PlanSignal.HEADROOM)
    assert result.intervals == ((H, 3 * H),)
    assert result.expected_signal == pytest.approx(0.85)
    assert result.run_now_signal == pytest.approx(0.55)
    assert result.savings == pytest.approx(0.30)  # positive: more headroom than running at once


def test_price_plans_on_negative_prices() -> None:
    result = plan([40, -5, 30, 60], H, 4 * H, signal="price")
    assert result.signal is PlanSignal.PRICE
    assert result.intervals == ((H, 2 * H),)
    assert result.savings == pytest.approx(45)


# --- infeasible, forced, done ---------------------------------------------------------------------------


def test_infeasible_job_runs_at_once_and_says_so() -> None:
    result = plan([100, 200, 300, 400, 500, 600], 5 * H, 3 * H)
    assert not result.feasible
    assert not result.forced
    assert result.intervals == ((0, 5 * H),)
    assert "infeasible" in result.reason
    assert "2.00 h late" in result.reason
    assert should_run(result, 0, 5 * H, 3 * H).run


def test_job_without_slack_is_forced_to_run_at_once() -> None:
    # Fits before the deadline, but not with the 10 % safety reserve: it cannot wait at all.
    config = PlannerConfig()
    result = plan([900, 100, 100, 100], 3 * H, 3 * H + 900, config=config)
    assert result.feasible
    assert result.forced
    assert result.intervals == ((0, 3 * H),)
    assert "regardless of the grid" in result.reason
    decision = should_run(result, 0, 3 * H, 3 * H + 900, config)
    assert decision == GateDecision(True, "slack exhausted: running regardless of the grid", None)


def test_no_work_left_plans_nothing() -> None:
    result = plan([100, 200], 2 * H, 2 * H, done_s=2 * H)
    assert result.intervals == ()
    assert result.work_s == 0
    assert result.reason == "no work left"
    assert not should_run(result, 0, 0, 2 * H).run


def test_plan_respects_the_slack_reserve() -> None:
    config = PlannerConfig(safety_factor=1.5, margin_s=600, resume_penalty=0)
    result = plan([500] * 6 + [100, 100, 50, 50], 2 * H, 10 * H, config=config)
    # Reserve = 0.5 x 2 h + 10 min: the plan ends by 8:50, so following it never trips the gate's slack rule,
    # even though the cleanest hour is 9:00.
    assert result.finish_s == 10 * H - 4200
    assert result.planned_s == 2 * H
    assert slack_runs_out_at_s(10 * H, 2 * H, config) == result.finish_s - 2 * H


# --- missing forecasts ----------------------------------------------------------------------------------


def test_missing_forecast_counts_as_the_worst_value() -> None:
    nan = math.nan
    result = plan([300, nan, nan, 250, 260], 2 * H, 5 * H)
    assert result.intervals == ((3 * H, 5 * H),)
    assert result.missing_forecast_slots == 2
    assert "without forecast" in result.reason


def test_missing_forecast_is_used_only_when_needed_and_priced_pessimistically() -> None:
    nan = math.nan
    result = plan([300, nan, 200], 3 * H, 3 * H)
    assert result.intervals == ((0, 3 * H),)
    assert result.expected_signal == pytest.approx((300 + 300 + 200) / 3)  # the gap counts as the worst, 300


def test_slots_absent_from_the_forecast_are_missing_too() -> None:
    times = np.array([0, 3 * H], dtype=np.int64)  # hours 1 and 2 have no row at all
    result = plan_windows(0, 4 * H, H, times, [500.0, 100.0], PlanSignal.CARBON, config=EXACT)
    assert result.intervals == ((3 * H, 4 * H),)
    assert result.missing_forecast_slots == 2


def test_no_forecast_at_all_runs_at_once() -> None:
    result = plan([math.nan] * 4, H, 4 * H)
    assert result.intervals == ((0, H),)
    assert result.expected_signal is None
    assert result.savings is None
    assert "no forecast" in result.reason


# --- replanning -------------------------------------------------------------------------------------------


def test_replan_from_now_with_the_work_left() -> None:
    first = plan([300, 100, 100, 300, 50, 50], 3 * H, 6 * H)
    again = replan(first, 2 * H, 2 * H, hours(6), [300, 100, 100, 300, 50, 50], config=EXACT)
    assert again.planned_from_s == 2 * H
    assert again.work_s == 2 * H
    assert again.intervals == ((4 * H, 6 * H),)
    assert again.release_s == first.release_s
    assert again.deadline_s == first.deadline_s


def test_a_running_job_continues_without_paying_a_resume() -> None:
    values = [200.0, 190.0, 200.0, 200.0]
    config = PlannerConfig(safety_factor=1.0, margin_s=0, resume_penalty=50)
    paused = plan_windows(0, 4 * H, H, hours(4), values, "carbon", now_s=0, config=config)
    running = plan_windows(0, 4 * H, H, hours(4), values, "carbon", now_s=0, running=True, config=config)
    assert paused.intervals == ((H, 2 * H),)  # both pay one start: the cheaper hour wins
    assert running.intervals == ((0, H),)  # continuing is free, pausing then resuming costs 50


# --- the gate ---------------------------------------------------------------------------------------------


def test_gate_pauses_until_the_next_window_then_runs() -> None:
    result = plan([500, 500, 100, 100, 500], 2 * H, 5 * H)
    paused = should_run(result, 0, 2 * H, 5 * H, EXACT)
    assert paused == GateDecision(False, f"paused until the planned window at {iso(2 * H)}", 2 * H)
    running = should_run(result, 2 * H + 60, 2 * H - 60, 5 * H, EXACT)
    assert running.run
    assert running.reason.startswith("in a planned window")


def test_gate_runs_regardless_of_the_grid_when_slack_is_exhausted() -> None:
    config = PlannerConfig(safety_factor=1.1, margin_s=600)
    result = plan([500] * 8 + [100] * 2, H, 10 * H, config=config)
    assert result.intervals == ((8 * H, 9 * H),)
    # The estimate grew: 3 h still to do at 6:00. Slack runs out at 10:00 - 3 h - (0.3 h + 10 min) = 6:32, well
    # before the planned window, so the gate pauses only until then, and then runs in the dirty hours.
    assert slack_runs_out_at_s(10 * H, 3 * H, config) == 6 * H + 32 * 60
    waiting = should_run(result, 6 * H, 3 * H, 10 * H, config)
    assert waiting == GateDecision(False, f"paused until slack runs out at {iso(6 * H + 32 * 60)}", 6 * H + 32 * 60)
    forced = should_run(result, 6 * H + 32 * 60, 3 * H, 10 * H, config)
    assert forced == GateDecision(True, "slack exhausted: running regardless of the grid", None)


def test_gate_never_sleeps_past_the_moment_slack_runs_out() -> None:
    config = PlannerConfig(safety_factor=1.0, margin_s=300)
    result = plan([500, 500, 500, 100], H, 4 * H, config=config)
    # Behind the estimate: 2.5 h still to do at 0:00, so slack runs out at 1:25, before the planned 3:00.
    decision = should_run(result, 0, 2 * H + 1800, 4 * H, config)
    assert not decision.run
    assert decision.resume_at_s == slack_runs_out_at_s(4 * H, 2 * H + 1800, config) == H + 1500


def test_gate_runs_when_the_plan_is_over_but_work_remains() -> None:
    result = plan([100, 500, 500, 500], H, 4 * H)
    decision = should_run(result, H, 600, 4 * H, EXACT)
    assert decision.run
    assert decision.reason.startswith("behind plan")


# --- JSON ---------------------------------------------------------------------------------------------------


def test_plan_to_dict_is_the_cli_contract() -> None:
    result = plan_windows(BASE, BASE + 6 * H, 2 * H, hours(6, BASE), [500, 400, 100, 120, 450, 480], "carbon")
    body = plan_to_dict(result)
    assert body["schema"] == PLAN_SCHEMA
    assert body["intervals"] == [{"start": "2022-06-01T02:00:00Z", "end": "2022-06-01T04:00:00Z"}]
    assert body["unit"] == "gCO2/kWh"
    assert body["expected_signal"] == 110.0
    assert body["run_now_signal"] == 450.0
    assert body["savings"] == 340.0
    assert body["savings_pct"] == 75.56
    assert body["feasible"] is True
    assert body["forced"] is False
    assert set(body) >= {"release", "deadline", "finish", "reason", "work_s", "resume_penalty"}
    json.dumps(body)  # serialisable as is


def test_plan_to_dict_of_a_plan_without_forecast_has_nulls() -> None:
    body = plan_to_dict(plan([math.nan, math.nan], H, 2 * H))
    assert body["expected_signal"] is None
    assert body["savings"] is None
    assert body["savings_pct"] is None


# --- input checks -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("times", "values", "message"),
    [
        ([0, H], [1.0], "differ in length"),
        ([H, 0], [1.0, 2.0], "strictly increasing"),
        ([0, 1800], [1.0, 2.0], "one grid"),
    ],
)
def test_bad_forecast_arrays_are_rejected(times: list[int], values: list[float], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        plan_windows(0, 4 * H, H, times, values, "carbon")


def test_bad_jobs_are_rejected() -> None:
    with pytest.raises(ValueError, match="before release"):
        plan_windows(H, 0, H, hours(2), [1.0, 2.0], "carbon")
    with pytest.raises(ValueError, match=">= 0"):
        plan_windows(0, H, -1, hours(2), [1.0, 2.0], "carbon")
    with pytest.raises(ValueError, match="not a valid PlanSignal"):
        plan_windows(0, H, H, hours(2), [1.0, 2.0], "sunshine")


# --- forecast_signal --------------------------------------------------------------------------------------


def make_trace(columns: dict[str, list[float | None]], zone: str = "Z", start_s: int = BASE) -> Trace:
    names = list(columns)
    lines = ["time,zone," + ",".join(names)]
    for row in range(len(columns[names[0]])):
        cells = ["" if columns[name][row] is None else repr(columns[name][row]) for name in names]
        lines.append(f"{iso(start_s + row * H)},{zone}," + ",".join(cells))
    return parse_trace(lines, source="synthetic")


def region(zone: str = "Z", **signal_zones: str) -> RegionConfig:
    return RegionConfig(
        name="r1",
        zone=zone,
        signal_zones=signal_zones,
        latitude=0.0,
        longitude=0.0,
        capacity_replicas=1,
        capacity_kw=1000.0,
    )


def test_carbon_forecast_is_yesterdays_value_from_complete_hours() -> None:
    carbon: list[float | None] = [float(100 + row) for row in range(72)]
    trace = make_trace({"carbon_g_per_kwh": carbon})
    issued = BASE + 50 * H  # rows up to hour 49 are complete
    targets = hours(3, BASE + 60 * H)
    forecast = forecast_signal(trace, region(), "carbon", issued, targets, HeadroomConfig())
    np.testing.assert_array_equal(forecast, [136.0, 137.0, 138.0])
    # Hour 73 is exactly 24 h after the last complete hour (49): known. Hour 74 needs two days back.
    edge = forecast_signal(trace, region(), "carbon", issued, hours(2, BASE + 73 * H), HeadroomConfig())
    np.testing.assert_array_equal(edge, [149.0, 126.0])


def test_forecast_uses_only_data_known_at_issue_time() -> None:
    values: list[float | None] = [float(100 + (row * 37) % 50) for row in range(96)]
    issued = BASE + 60 * H
    changed = list(values)
    for row in range(60, 96):  # every row not complete at issue time (the 59:00 row is complete at 60:00)
        changed[row] = 999.0
    targets = hours(30, BASE + 60 * H)
    first = forecast_signal(
        make_trace({"carbon_g_per_kwh": values}), region(), "carbon", issued, targets, HeadroomConfig()
    )
    second = forecast_signal(
        make_trace({"carbon_g_per_kwh": changed}), region(), "carbon", issued, targets, HeadroomConfig()
    )
    np.testing.assert_array_equal(first, second)


def test_price_forecast_reads_the_regions_price_zone() -> None:
    lines = ["time,zone,price_usd_per_mwh"]
    for row in range(48):
        lines.append(f"{iso(BASE + row * H)},A,{float(row)}")
        lines.append(f"{iso(BASE + row * H)},B,{float(1000 + row)}")
    trace = parse_trace(lines, source="synthetic")
    forecast = forecast_signal(
        trace, region("A", price_usd_per_mwh="B"), "price", BASE + 40 * H, hours(1, BASE + 41 * H), HeadroomConfig()
    )
    np.testing.assert_array_equal(forecast, [1017.0])


def test_missing_column_is_a_clear_error() -> None:
    trace = make_trace({"carbon_g_per_kwh": [1.0] * 30})
    with pytest.raises(ValueError, match="no 'price_usd_per_mwh' column"):
        forecast_signal(trace, region(), "price", BASE + 26 * H, hours(2, BASE + 26 * H), HeadroomConfig())
    with pytest.raises(ValueError, match="zone 'Y'"):
        forecast_signal(trace, region("Y"), "carbon", BASE + 26 * H, hours(2, BASE + 26 * H), HeadroomConfig())


def test_headroom_forecast_applies_the_headroom_formula_to_forecast_inputs() -> None:
    demand: list[float | None] = [float(600 + 400 * (row % 24 >= 12)) for row in range(72)]
    carbon: list[float | None] = [float(300 - 100 * (row % 24 >= 12)) for row in range(72)]
    trace = make_trace({"demand_mw": demand, "carbon_g_per_kwh": carbon})
    config = HeadroomConfig()
    issued = BASE + 48 * H
    targets = hours(24, BASE + 48 * H)
    forecast = forecast_signal(trace, region(), "headroom", issued, targets, config)
    peak = trace.trailing_quantile("Z", "demand_mw", issued - H, int(config.peak_lookback_days * 86400), 0.995)
    expected = assess(
        GridSignals(
            at_s=int(targets[3]),
            demand_mw=Observation(600.0, int(targets[3])),
            reference_peak_mw=peak,
            carbon_g_per_kwh=Observation(300.0, int(targets[3])),
        ),
        config,
    ).grid_headroom
    assert forecast[3] == pytest.approx(expected)
    assert forecast[3] > forecast[15]  # busy afternoons have less headroom despite cleaner power
    with pytest.raises(ValueError, match="no demand, carbon or price"):
        forecast_signal(make_trace({"dr_level": [0.0] * 30}), region(), "headroom", issued, targets, config)


# --- properties ---------------------------------------------------------------------------------------------

values_strategy = st.one_of(st.floats(0, 1000, allow_nan=False), st.just(math.nan))


@st.composite
def jobs(draw: st.DrawFn) -> tuple[list[float], int, int, int, int, PlannerConfig, PlanSignal]:
    count = draw(st.integers(1, 36))
    values = draw(st.lists(values_strategy, min_size=count, max_size=count))
    release = draw(st.integers(0, 2 * H))
    work = draw(st.integers(0, 12 * H))
    deadline = release + draw(st.integers(0, 30 * H))
    now = release + draw(st.integers(0, 3 * H))
    config = PlannerConfig(
        safety_factor=draw(st.floats(1.0, 1.5)),
        margin_s=draw(st.integers(0, 1800)),
        resume_overhead_h=draw(st.sampled_from([0.0, 0.1, 1.0])),
    )
    return values, release, deadline, work, now, config, draw(st.sampled_from(list(PlanSignal)))


@settings(max_examples=200, deadline=None)
@given(jobs())
def test_plans_are_well_formed(job: tuple[list[float], int, int, int, int, PlannerConfig, PlanSignal]) -> None:
    values, release, deadline, work, now, config, signal = job
    result = plan_windows(release, deadline, work, hours(len(values)), values, signal, now_s=now, config=config)
    start = max(release, now)
    remaining = work
    assert result.planned_s == remaining  # every plan schedules exactly the work left
    previous_end = -1
    for begin, end in result.intervals:
        assert start <= begin < end
        assert begin > previous_end  # sorted, disjoint and merged
        previous_end = end
    if result.feasible:
        assert all(end <= deadline for _, end in result.intervals)  # never plans past the deadline
    else:
        assert remaining > deadline - start
        assert result.intervals == ((start, start + remaining),)
    if result.savings is not None:
        # Never worse than running at once by the forecast's own measure (the nudge toward earlier hours aside).
        assert result.savings >= -1e-6 * max(1.0, abs(result.run_now_signal or 0.0))


def _reference_cost(
    rates: list[float], start: int, end: int, work: int, penalty: float, running: bool, quantum: int
) -> float:
    """Cheapest cost + penalty x starts over schedules on a `quantum` grid: an independent DP per quantum."""
    need = work // quantum
    cost: dict[tuple[int, int], float] = {(0, 1 if running else 0): 0.0}
    for at in range(start, end, quantum):
        rate = rates[at // H] * quantum / H
        step: dict[tuple[int, int], float] = {}
        for (done, was_running), value in cost.items():
            step[(done, 0)] = min(step.get((done, 0), math.inf), value)
            if done < need:
                key = (done + 1, 1)
                step[key] = min(step.get(key, math.inf), value + rate + (0.0 if was_running else penalty))
        cost = step
    return min(cost.get((need, 0), math.inf), cost.get((need, 1), math.inf))


@settings(max_examples=200, deadline=None)
@given(
    rates=st.lists(st.integers(0, 8).map(lambda step: 100.0 + 25 * step), min_size=1, max_size=9),
    quarters=st.tuples(st.integers(0, 3), st.integers(0, 3), st.integers(1, 36)),
    penalty=st.sampled_from([0.0, 5.0, 30.0, 200.0]),
    running=st.booleans(),
)
def test_the_plan_is_optimal(rates: list[float], quarters: tuple[int, int, int], penalty: float, running: bool) -> None:
    # With every boundary on a 15 min grid, the continuous optimum lies on that grid too, so a DP over quarters is
    # an independent reference for the exact cost.
    quantum = 900
    start = quarters[0] * quantum
    deadline = len(rates) * H - quarters[1] * quantum
    work = min(quarters[2] * quantum, max(0, deadline - start))
    if work == 0:
        return
    config = PlannerConfig(safety_factor=1.0, margin_s=0, resume_penalty=penalty)
    result = plan_windows(
        start, deadline, work, hours(len(rates)), rates, "carbon", now_s=start, running=running, config=config
    )
    starts = len(result.intervals) - (1 if running and result.intervals[0][0] == start else 0)
    cost = sum(rates[at // H] * quantum / H for begin, end in result.intervals for at in range(begin, end, quantum))
    reference = _reference_cost(rates, start, deadline, work, penalty, running, quantum)
    assert cost + penalty * starts == pytest.approx(reference, abs=1e-6)


@settings(max_examples=500, deadline=None)
@given(data=st.data())
def test_a_feasible_deadline_is_never_missed_because_of_pausing(data: st.DataObject) -> None:
    """The runner obeys the gate, wakes up to margin_s late, and each shard takes at most its estimate (or, for a
    job with deadline - release >= safety x work, at most safety x its estimate). The plan it follows is the
    planner's, replanned at random moments, or arbitrary intervals (a stale or wrong plan): the gate alone carries
    the guarantee."""
    signal = data.draw(st.sampled_from(list(PlanSignal)), label="signal")
    config = PlannerConfig(
        safety_factor=data.draw(st.floats(1.0, 1.5), label="safety"),
        margin_s=data.draw(st.integers(0, 1800), label="margin"),
        resume_overhead_h=data.draw(st.sampled_from([0.0, 0.1, 1.0]), label="overhead"),
    )
    release = data.draw(st.integers(0, 2 * H), label="release")
    work = data.draw(st.integers(1, 10 * H), label="work")
    slow_shards = data.draw(st.booleans(), label="shards may run safety x slower")
    needed = math.ceil(config.safety_factor * work) if slow_shards else work
    deadline = release + needed + data.draw(st.integers(0, 24 * H), label="slack")
    count = data.draw(st.integers(1, 36), label="slots")
    values = data.draw(st.lists(values_strategy, min_size=count, max_size=count), label="forecast")
    times = hours(count)
    arbitrary = data.draw(st.booleans(), label="arbitrary plan")
    if arbitrary:
        cuts = sorted(data.draw(st.sets(st.integers(release, deadline + 2 * H), max_size=12), label="cuts"))
        intervals = tuple(zip(cuts[::2], cuts[1::2], strict=False))
        current = replace(plan_windows(release, deadline, work, times, values, signal), intervals=intervals)
    else:
        current = plan_windows(release, deadline, work, times, values, signal, config=config)
    assert current.feasible

    now, remaining, running = release, work, False
    for _ in range(2000):
        if remaining == 0:
            break
        if not arbitrary and data.draw(st.integers(0, 4), label="replan?") == 0:
            current = plan_windows(
                release, deadline, work, times, values, signal, now_s=now, done_s=work - remaining,
                running=running, config=config,
            )  # fmt: skip
        decision = should_run(current, now, remaining, deadline, config)
        if decision.run:
            estimate = data.draw(st.integers(min(remaining, 60), remaining), label="shard estimate")
            limit = math.floor(estimate * config.safety_factor) if slow_shards else estimate
            # The slowest allowed shard and the latest allowed wake-up are the dangerous cases: draw them often.
            now += data.draw(st.one_of(st.just(limit), st.integers(0, limit)), label="shard took")
            remaining -= estimate
            running = True
        else:
            assert decision.resume_at_s is not None
            assert decision.resume_at_s > now
            late = data.draw(st.one_of(st.just(config.margin_s), st.integers(0, config.margin_s)), label="woke late by")
            now = decision.resume_at_s + late
            running = False
    assert remaining == 0, "the runner did not finish"
    assert now <= deadline
