"""Benchmark: realised carbon and price of the window planner against running at once and perfect foresight.

Run: python -m benchmarks.bench_planner [--jobs N] [--seed S] [--json]
     python -m benchmarks.bench_planner --smoke [--json]   # seconds: 5 jobs per region (the output shape is checked)

Protocol. For every region of the default fleet whose zone has the signal (carbon: grid_2022, 2022; price:
prices_2023, 2023), N jobs (default 300 per region) with a release time uniform over the year (to the minute,
leaving a week of history and the window inside the trace), remaining work uniform in 1..8 h and slack uniform in
0..24 h (both to the minute), deadline = release + work + slack. Strategies, judged on the ACTUAL hourly values
(the trace's own, with its few gaps interpolated for judging only), each job side by side:

  at once     run from the release until done;
  planner     plan at the release with the forecast issued then (previous-day naive, rows complete an hour
              after their timestamp), then run as the batch runner does: ask `should_run` before each shard;
  + replan    the same runner, re-planning every hour with the forecast issued that hour (what the runner does
              as newer forecasts are issued);
  optimum     the same planner fed the actuals instead of the forecast (perfect foresight), same settings.

Savings are in signal x hours (e.g. grams per kW of load), summed over jobs; "captured" is the planner's sum
of savings over the optimum's (a ratio of sums). A deadline miss is a finish after the deadline (must be 0).
Intervals counts the separate runs each job was split into (each is a resume).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from collections.abc import Sequence

from benchmarks.planner_runs import (
    CASES,
    MAX_SLACK_H,
    MAX_WORK_H,
    SIGNAL_COLUMN,
    SMOKE_JOBS,
    STRATEGIES,
    VARIANTS,
    Row,
    run,
)
from fleet.loaders import load_fleet
from policies.plan import DEFAULT_PLANNER_CONFIG, PlannerConfig, PlanSignal


def _fmt(value: float, digits: int = 1) -> str:
    return "n/a" if math.isnan(value) else f"{value:.{digits}f}"


def _pct(value: float) -> str:
    return "n/a" if math.isnan(value) else f"{100 * value:.0f}"


def render(rows: Sequence[Row], elapsed_s: float, config: PlannerConfig) -> str:
    penalty = "auto" if config.resume_penalty is None else f"{config.resume_penalty:g}"
    lines = [
        f"Window planner judged on actuals: jobs of 1..{MAX_WORK_H} h with 0..{MAX_SLACK_H} h slack. Forecast issued "
        "at the release (once) or every hour (replan): previous-day naive, or it plus its latest error fading 0.9/h "
        "(+off). optimum: the same planner fed the actuals.",
        f"Settings: safety factor {config.safety_factor:g}, margin {config.margin_s} s, resume overhead "
        f"{config.resume_overhead_h:g} h (penalty {penalty}).",
    ]
    planners = [variant.name for variant in VARIANTS]
    for signal in dict.fromkeys(row.signal for row in rows):
        table = [row for row in rows if row.signal == signal]
        lines += [
            "",
            f"{signal}: work-weighted mean realised {table[0].unit} (saving against at once, %)",
            f"{'region':<10} {'zone':<8} {'jobs':>4} {'at once':>8} "
            + " ".join(f"{name:>15}" for name in (*planners, "optimum")),
        ]
        for row in table:
            cells = [f"{_fmt(row.mean[name])} ({_fmt(row.savings_pct[name])})" for name in (*planners, "optimum")]
            lines.append(
                f"{row.region:<10} {row.zone:<8} {row.jobs:>4} {_fmt(row.mean['at_once']):>8} "
                + " ".join(f"{cell:>15}" for cell in cells)
            )
        lines += [
            "",
            f"{signal}: share of the optimum's saving captured, % [95 % bootstrap interval over jobs]; deadline "
            "misses (all strategies); mean intervals per job",
            f"{'region':<10} {'zone':<8} " + " ".join(f"{name:>14}" for name in planners) + f" {'misses':>6} "
            f"{'intervals ' + '/'.join(planners) + '/optimum':>40}",
        ]
        for row in table:
            cells = [
                f"{_pct(row.captured[name])} [{_pct(row.captured_ci[name][0])}-{_pct(row.captured_ci[name][1])}]"
                for name in planners
            ]
            intervals = "/".join(f"{row.mean_intervals[name]:.2f}" for name in (*planners, "optimum"))
            lines.append(
                f"{row.region:<10} {row.zone:<8} "
                + " ".join(f"{cell:>14}" for cell in cells)
                + f" {sum(row.misses.values()):>6} {intervals:>40}"
            )
    lines += ["", f"elapsed {elapsed_s:.1f} s"]
    return "\n".join(lines)


def _as_json(rows: Sequence[Row], elapsed_s: float, jobs: int, seed: int, config: PlannerConfig, smoke: bool) -> str:
    def clean(value: float) -> float | None:
        return None if math.isnan(value) else round(value, 4)

    payload = {
        "smoke": smoke,
        "jobs_per_region": jobs,
        "seed": seed,
        "config": config.model_dump(),
        "variants": [
            {
                "name": variant.name,
                "forecaster": variant.forecaster.name,
                "replan_every_h": 1 if variant.replan else None,
            }
            for variant in VARIANTS
        ],
        "elapsed_s": round(elapsed_s, 2),
        "rows": [
            {
                "signal": row.signal,
                "unit": row.unit,
                "region": row.region,
                "zone": row.zone,
                "jobs": row.jobs,
                "work_h": round(row.work_h, 2),
                "mean": {name: clean(value) for name, value in row.mean.items()},
                "savings_pct": {name: clean(value) for name, value in row.savings_pct.items()},
                "captured": {name: clean(value) for name, value in row.captured.items()},
                "captured_ci95": {name: [clean(low), clean(high)] for name, (low, high) in row.captured_ci.items()},
                "misses": row.misses,
                "mean_intervals": {name: round(value, 3) for name, value in row.mean_intervals.items()},
            }
            for row in rows
        ],
    }
    return json.dumps(payload, indent=2)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--jobs", type=int, default=300, help="jobs per region and signal (default 300)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("--json", action="store_true", help="print the results as JSON instead of a table")
    parser.add_argument("--smoke", action="store_true", help="toy sizes, for CI: the output shape is checked")
    args = parser.parse_args(argv)
    if args.jobs < 1:
        parser.error("--jobs must be at least 1")
    config, jobs = DEFAULT_PLANNER_CONFIG, SMOKE_JOBS if args.smoke else args.jobs
    started = time.perf_counter()
    rows = run(jobs, args.seed, config)
    elapsed = time.perf_counter() - started
    if args.smoke:
        check_shape(rows, jobs)
    print(_as_json(rows, elapsed, jobs, args.seed, config, args.smoke) if args.json else render(rows, elapsed, config))
    return 0


def check_shape(rows: Sequence[Row], jobs: int) -> None:
    """What the smoke run holds itself to (no result target): per signal, fleet regions in order (carbon: all) with
    their signal's zone, `jobs` each; every strategy's figures present and finite; captured NaN only with no saving."""
    for case in CASES:
        got = [(row.region, row.zone, row.jobs) for row in rows if row.signal == case.signal.value]
        fleet = [(region.name, region.zone_for(SIGNAL_COLUMN[case.signal]), jobs) for region in load_fleet().regions]
        wanted = fleet if case.signal is PlanSignal.CARBON else [entry for entry in fleet if entry in got]
        if not got or got != wanted:
            raise SystemExit(f"bench_planner --smoke: {case.signal.value} rows {got}, expected (a subset of) {fleet}")
    for row in rows:
        figures = [row.work_h, *row.mean.values(), *row.savings_pct.values(), *row.mean_intervals.values()]
        per_strategy = (row.mean, row.savings_pct, row.captured, row.captured_ci, row.misses, row.mean_intervals)
        captured = list(row.captured.values())
        shaped = all(list(figure) == list(STRATEGIES) for figure in per_strategy) and all(map(math.isfinite, figures))
        counted = min(row.mean_intervals.values()) >= 1 and all(0 <= miss <= jobs for miss in row.misses.values())
        ratios = all(map(math.isnan, captured)) or (row.captured["optimum"] == 1 and all(map(math.isfinite, captured)))
        failed = [what for what, ok in (("keys/finite", shaped), ("counts", counted), ("captured", ratios)) if not ok]
        if failed:
            raise SystemExit(f"bench_planner --smoke: {row.signal} {row.region}: {', '.join(failed)} wrong in {row}")


if __name__ == "__main__":
    sys.exit(main())
