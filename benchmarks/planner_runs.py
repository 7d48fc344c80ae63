"""The planner benchmark's simulation: jobs drawn per region, run by each strategy against the actual hourly
signal, summarised per region (the protocol is in bench_planner's docstring)."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from benchmarks.forecast_mape import utc_s
from fleet.config import FleetConfig
from fleet.loaders import load_fleet
from fleet.regions import RegionConfig
from grid.forecast import Forecaster, SeasonalNaive
from grid.trace import Trace, load_trace, packaged_trace
from policies.plan import DEFAULT_PLANNER_CONFIG, SIGNAL_UNITS, Plan, PlannerConfig, PlanSignal
from policies.plan_forecast import forecast_signal
from policies.planner import plan_windows, should_run

HOUR_S = 3600
MINUTE_S = 60

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


@dataclass(frozen=True)
class Job:
    release_s: int
    deadline_s: int
    work_s: int


@dataclass(frozen=True)
class Case:
    """One table: a signal on a trace over a year."""

    signal: PlanSignal
    trace_name: str
    first_release_s: int
    last_deadline_s: int


CASES = (
    Case(PlanSignal.CARBON, "grid_2022.csv.gz", utc_s(2022, 1, 8), utc_s(2022, 12, 31)),
    Case(PlanSignal.PRICE, "prices_2023.csv.gz", utc_s(2023, 1, 8), utc_s(2023, 12, 31)),
)

MAX_WORK_H = 8
MAX_SLACK_H = 24
SMOKE_JOBS = 5


def draw_jobs(rng: np.random.Generator, count: int, case: Case) -> list[Job]:
    longest = (MAX_WORK_H + MAX_SLACK_H) * HOUR_S
    releases = rng.integers(case.first_release_s // MINUTE_S, (case.last_deadline_s - longest) // MINUTE_S, count)
    works = rng.integers(60, MAX_WORK_H * 60 + 1, count)
    slacks = rng.integers(0, MAX_SLACK_H * 60 + 1, count)
    return [
        Job(int(r) * MINUTE_S, (int(r) + int(w) + int(s)) * MINUTE_S, int(w) * MINUTE_S)
        for r, w, s in zip(releases, works, slacks, strict=True)
    ]


@dataclass(frozen=True)
class Actuals:
    """A zone's hourly actual values, gaps interpolated (for judging only), on a dense hourly grid."""

    origin_s: int
    values: FloatArray

    @classmethod
    def of(cls, trace: Trace, zone: str, column: str) -> Actuals:
        series = trace.zones[zone]
        times, raw = series.times_s, series.columns[column]
        present = np.isfinite(raw)
        dense_times = np.arange(int(times[0]), int(times[-1]) + HOUR_S, HOUR_S, dtype=np.int64)
        values = np.interp(dense_times, times[present], raw[present])
        return cls(int(times[0]), values.astype(np.float64))

    def at(self, hour_starts: IntArray) -> FloatArray:
        return np.asarray(self.values[(hour_starts - self.origin_s) // HOUR_S], dtype=np.float64)

    def total(self, runs: Sequence[tuple[int, int]]) -> float:
        """Sum of value x hours over the runs."""
        total = 0.0
        for start, end in runs:
            at = start
            while at < end:
                hour = (at - self.origin_s) // HOUR_S
                stop = min(end, self.origin_s + (hour + 1) * HOUR_S)
                total += float(self.values[hour]) * (stop - at) / HOUR_S
                at = stop
        return total


def _slots(now_s: int, deadline_s: int) -> IntArray:
    first = now_s // HOUR_S * HOUR_S
    return np.arange(first, max(deadline_s, now_s + 1), HOUR_S, dtype=np.int64)


@dataclass(frozen=True)
class SeasonalNaiveWithOffset:
    """Previous-day naive plus today's latest departure from it, fading by `decay_per_h` per hour ahead.

    y(t) = naive(t) + (y_last - naive(t_last)) x decay ** hours(t - t_last). The 24 h-differenced carbon series
    of the 2022 trace has lag-1 autocorrelation 0.8 (PJM) to 0.95 (BPAT), so a departure persists for hours.
    Experimental: it satisfies grid.forecast.Forecaster and is a candidate for grid/forecast.py.
    """

    decay_per_h: float = 0.9
    period_h: int = 24

    @property
    def name(self) -> str:
        return f"seasonal_naive_{self.period_h}h_offset"

    def forecast(self, trace: Trace, zone: str, column: str, issued_at_s: int, target_times_s: IntArray) -> FloatArray:
        naive = SeasonalNaive(self.period_h)
        targets = np.asarray(target_times_s, dtype=np.int64)
        base = naive.forecast(trace, zone, column, issued_at_s, targets)
        latest = trace.latest(zone, column, issued_at_s)
        if latest is None:
            return base
        reference = naive.forecast(trace, zone, column, issued_at_s, np.array([latest.observed_at_s], dtype=np.int64))
        if np.isnan(reference[0]):
            return base
        ahead_h = np.maximum(0, targets - latest.observed_at_s) / HOUR_S
        return np.asarray(base + (latest.value - reference[0]) * self.decay_per_h**ahead_h, dtype=np.float64)


@dataclass(frozen=True)
class Variant:
    """One way of running the planner: which forecast, and whether the runner replans every hour."""

    name: str
    forecaster: Forecaster
    replan: bool


VARIANTS = (
    Variant("once", SeasonalNaive(24), False),
    Variant("replan", SeasonalNaive(24), True),
    Variant("once+off", SeasonalNaiveWithOffset(), False),
    Variant("replan+off", SeasonalNaiveWithOffset(), True),
)
STRATEGIES = ("at_once", *(variant.name for variant in VARIANTS), "optimum")

Planner = Callable[[int, int, bool], Plan]


def execute(job: Job, plan_at: Planner, replan: bool, config: PlannerConfig) -> list[tuple[int, int]]:
    """Run the job as a batch runner does: ask the gate before each shard; shards take their estimated time."""
    now, remaining = job.release_s, job.work_s
    plan = plan_at(now, remaining, False)
    next_replan = (now // HOUR_S + 1) * HOUR_S if replan else math.inf
    runs: list[tuple[int, int]] = []
    for _ in range(10_000):
        if remaining <= 0:
            return runs
        if now >= next_replan:
            plan = plan_at(now, remaining, bool(runs) and runs[-1][1] == now)
            next_replan = (now // HOUR_S + 1) * HOUR_S
        decision = should_run(plan, now, remaining, job.deadline_s, config)
        if not decision.run:
            if decision.resume_at_s is None:
                raise RuntimeError(f"gate paused without a resume time: {decision}")
            now = int(min(decision.resume_at_s, next_replan))
            continue
        # One shard: to the end of the planned interval, the next replan, or the end of the work.
        stop = now + remaining
        for start, end in plan.intervals:
            if start <= now < end:
                stop = min(stop, end)
        stop = int(min(stop, next_replan))
        if runs and runs[-1][1] == now:
            runs[-1] = (runs[-1][0], stop)
        else:
            runs.append((now, stop))
        remaining -= stop - now
        now = stop
    raise RuntimeError(f"runner did not finish {job}")


@dataclass(frozen=True)
class Row:
    signal: str
    unit: str
    region: str
    zone: str
    jobs: int
    work_h: float
    mean: dict[str, float]  # work-weighted mean realised signal per strategy
    savings_pct: dict[str, float]  # against running at once
    captured: dict[str, float]  # share of the optimum's savings, ratio of sums
    captured_ci: dict[str, tuple[float, float]]  # 95 % bootstrap interval over jobs
    misses: dict[str, int]
    mean_intervals: dict[str, float]


BOOTSTRAP_ROUNDS = 1000


def _summarise(
    work_h: FloatArray, cost: dict[str, FloatArray]
) -> tuple[dict[str, float], dict[str, float], dict[str, float], dict[str, tuple[float, float]]]:
    saving = {name: cost["at_once"] - cost[name] for name in STRATEGIES}
    best = float(saving["optimum"].sum())
    mean = {name: float(cost[name].sum() / work_h.sum()) for name in STRATEGIES}
    pct = {name: 100.0 * float(saving[name].sum()) / abs(float(cost["at_once"].sum())) for name in STRATEGIES}
    captured = {name: float(saving[name].sum()) / best if best else math.nan for name in STRATEGIES}
    # Jobs resampled with replacement: how much the ratio moves with the draw of jobs (fixed seed: reproducible).
    rng = np.random.default_rng(0)
    picks = rng.integers(0, len(work_h), (BOOTSTRAP_ROUNDS, len(work_h)))
    best_draws = saving["optimum"][picks].sum(axis=1)
    ci: dict[str, tuple[float, float]] = {}
    for name in STRATEGIES:
        ratios = saving[name][picks].sum(axis=1) / np.where(best_draws == 0, np.nan, best_draws)
        low, high = np.nanpercentile(ratios, [2.5, 97.5]) if np.isfinite(ratios).any() else (math.nan, math.nan)
        ci[name] = (float(low), float(high))
    return mean, pct, captured, ci


def run_region(
    case: Case, trace: Trace, fleet: FleetConfig, region: RegionConfig, jobs: Sequence[Job], config: PlannerConfig
) -> Row:
    column = SIGNAL_COLUMN[case.signal]
    zone = region.zone_for(column)
    actual = Actuals.of(trace, zone, column)
    cost = {name: np.zeros(len(jobs), dtype=np.float64) for name in STRATEGIES}
    misses = dict.fromkeys(STRATEGIES, 0)
    intervals = dict.fromkeys(STRATEGIES, 0)

    def planner_for(job: Job, forecaster: Forecaster) -> Planner:
        def plan_at(now_s: int, remaining_s: int, running: bool) -> Plan:
            slots = _slots(now_s, job.deadline_s)
            values = forecast_signal(trace, region, case.signal, now_s, slots, fleet.headroom, forecaster=forecaster)
            return plan_windows(
                job.release_s,
                job.deadline_s,
                remaining_s,
                slots,
                values,
                case.signal,
                now_s=now_s,
                running=running,
                config=config,
            )

        return plan_at

    for index, job in enumerate(jobs):
        slots = _slots(job.release_s, job.deadline_s)
        # Perfect foresight: the same planner fed the actuals, run as planned.
        oracle = plan_windows(
            job.release_s, job.deadline_s, job.work_s, slots, actual.at(slots), case.signal, config=config
        )
        executed = {"at_once": [(job.release_s, job.release_s + job.work_s)], "optimum": list(oracle.intervals)}
        for variant in VARIANTS:
            executed[variant.name] = execute(job, planner_for(job, variant.forecaster), variant.replan, config)
        for name, runs in executed.items():
            if sum(end - start for start, end in runs) != job.work_s:
                raise RuntimeError(f"{name} ran {runs} for {job}")
            cost[name][index] = actual.total(runs)
            misses[name] += int(runs[-1][1] > job.deadline_s)
            intervals[name] += len(runs)

    work_h = np.array([job.work_s / HOUR_S for job in jobs], dtype=np.float64)
    mean, pct, captured, ci = _summarise(work_h, cost)
    return Row(
        signal=case.signal.value,
        unit=SIGNAL_UNITS[case.signal],
        region=region.name,
        zone=zone,
        jobs=len(jobs),
        work_h=float(work_h.sum()),
        mean=mean,
        savings_pct=pct,
        captured=captured,
        captured_ci=ci,
        misses=misses,
        mean_intervals={name: count / len(jobs) for name, count in intervals.items()},
    )


SIGNAL_COLUMN = {PlanSignal.CARBON: "carbon_g_per_kwh", PlanSignal.PRICE: "price_usd_per_mwh"}


def _has_signal(trace: Trace, zone: str, column: str) -> bool:
    series = trace.zones.get(zone)
    return column in trace.columns and series is not None and bool(np.isfinite(series.columns[column]).any())


def run(jobs_per_region: int, seed: int, config: PlannerConfig = DEFAULT_PLANNER_CONFIG) -> list[Row]:
    fleet = load_fleet()
    rows: list[Row] = []
    for case_index, case in enumerate(CASES):
        trace = load_trace(packaged_trace(case.trace_name))
        for region_index, region in enumerate(fleet.regions):
            if not _has_signal(trace, region.zone_for(SIGNAL_COLUMN[case.signal]), SIGNAL_COLUMN[case.signal]):
                continue
            # Each (case, region) draws its own jobs, reproducibly from the seed.
            rng = np.random.default_rng([seed, case_index, region_index])
            jobs = draw_jobs(rng, jobs_per_region, case)
            rows.append(run_region(case, trace, fleet, region, jobs, config))
    return rows
