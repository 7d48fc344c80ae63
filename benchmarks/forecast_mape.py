"""Benchmark: day-ahead forecast error (MAPE, MAE) of the router's forecasters on the packaged real traces.

Run: python -m benchmarks.forecast_mape [--json]
     python -m benchmarks.forecast_mape --smoke [--json]   # seconds: the last 4 weeks of each part (shape checked)

Protocol (grid.forecast.backtest): every day at 18:00 UTC a forecast is issued for the 24 hours of the
next UTC day, using only rows at or before the issue time (the published day-ahead forecast is the one
exception: it was made the day before, see grid.forecast.PublishedForecast). 18:00 UTC is late enough
that every US balancing authority here has published its day-ahead forecast, so all forecasters are
compared at the same issue time. Forecasters on one zone and column are scored on the same target hours
(those where every one of them and the actual are present), so their ratios are like for like.

Parts, side by side in one run:
  (a) grid_2022: every zone, 2022, demand_mw and carbon_g_per_kwh, seasonal naive 24 h vs 168 h.
  (b) demand_forecast_2015_2019: CISO, ERCO, PJM, the authority's published day-ahead demand forecast vs
      seasonal naive, with the ratio of each naive MAPE to the published one's.
  (c) prices_2023: price_usd_per_mwh, seasonal naive. Prices cross and approach zero (negative hours in
      CAISO and PJM), where a percentage error is undefined or explodes, so the headline measures are MAE
      in USD/MWh and WAPE (sum |error| / sum |actual|); MAPE is printed only to show how it misleads.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np

from grid.forecast import DAY_AHEAD_ISSUE_HOUR_UTC, BacktestResult, backtest, get_forecaster, mae, mape
from grid.trace import Trace, load_trace, packaged_trace

NAIVE = ("seasonal_naive_24h", "seasonal_naive_168h")
PUBLISHED = "published_day_ahead"
SMOKE_DAYS = 28  # --smoke scores the last four weeks of each part's window (earlier rows are still history)
DAY_S = 86_400


class BenchError(RuntimeError):
    """A run of the benchmark failed; the message says which."""


def utc_s(year: int, month: int, day: int) -> int:
    return int(datetime(year, month, day, tzinfo=UTC).timestamp())


@dataclass(frozen=True)
class Score:
    """One forecaster's error on the points shared by all forecasters of its row."""

    forecaster: str
    n: int
    mape_pct: float
    mae: float
    wape_pct: float


@dataclass(frozen=True)
class Row:
    part: str
    trace: str
    zone: str
    column: str
    start: str
    end: str
    mean_abs_actual: float
    scores: tuple[Score, ...]

    def score(self, forecaster: str) -> Score:
        return next(score for score in self.scores if score.forecaster == forecaster)


def _compare(
    part: str, trace: Trace, name: str, zone: str, column: str, forecasters: Sequence[str], start_s: int, end_s: int
) -> Row:
    results: list[BacktestResult] = [
        backtest(trace, zone, column, get_forecaster(forecaster), start_s, end_s) for forecaster in forecasters
    ]
    # Same issue days and horizon for every forecaster, so the target arrays line up element for element.
    common = np.isfinite(results[0].actual)
    for result in results:
        common &= np.isfinite(result.predicted)
    actual = results[0].actual[common]
    mean_abs = float(np.abs(actual).mean()) if len(actual) else math.nan
    scores = []
    for result in results:
        predicted = result.predicted[common]
        error = mae(actual, predicted)
        scores.append(
            Score(
                forecaster=result.forecaster,
                n=int(common.sum()),
                mape_pct=mape(actual, predicted),
                mae=error,
                wape_pct=100.0 * error / mean_abs if mean_abs > 0 else math.nan,
            )
        )
    return Row(
        part=part,
        trace=name,
        zone=zone,
        column=column,
        start=datetime.fromtimestamp(start_s, tz=UTC).date().isoformat(),
        end=datetime.fromtimestamp(end_s, tz=UTC).date().isoformat(),
        mean_abs_actual=mean_abs,
        scores=tuple(scores),
    )


def run(smoke: bool = False) -> list[Row]:
    rows: list[Row] = []

    def window(start_s: int, end_s: int) -> tuple[int, int]:
        return (max(start_s, end_s - SMOKE_DAYS * DAY_S), end_s) if smoke else (start_s, end_s)

    grid = load_trace(packaged_trace("grid_2022.csv.gz"))
    start, end = window(utc_s(2022, 1, 1), utc_s(2023, 1, 1))
    for column in ("demand_mw", "carbon_g_per_kwh"):
        for zone in grid.zones:
            rows.append(_compare("a", grid, "grid_2022", zone, column, NAIVE, start, end))

    published = load_trace(packaged_trace("demand_forecast_2015_2019.csv.gz"))
    # The file spans 2015-07-02 .. 2019-07-01; start a week in so the weekly lag has history. PJM's first
    # weeks carry no forecast (wrong values were blanked), which only lowers its n.
    start, end = window(utc_s(2015, 7, 9), utc_s(2019, 7, 2))
    for zone in ("CISO", "ERCO", "PJM"):
        rows.append(
            _compare("b", published, "demand_forecast_2015_2019", zone, "demand_mw", (PUBLISHED, *NAIVE), start, end)
        )

    prices = load_trace(packaged_trace("prices_2023.csv.gz"))
    # Prices start 2023-01-01; the first week is scored too, by the 24 h lag alone, then dropped by the
    # common-points rule because the weekly lag has nothing yet: start on 2023-01-08 for both.
    start, end = window(utc_s(2023, 1, 8), utc_s(2024, 1, 1))
    for zone in prices.zones:
        rows.append(_compare("c", prices, "prices_2023", zone, "price_usd_per_mwh", NAIVE, start, end))
    if smoke:
        check_shape(
            rows, SMOKE_DAYS, {"grid_2022": grid, "demand_forecast_2015_2019": published, "prices_2023": prices}
        )
    return rows


def check_shape(rows: Sequence[Row], days: int, traces: Mapping[str, Trace]) -> None:
    """What the smoke run holds itself to: every part's rows and forecasters, `days` scored, every figure finite
    and non-negative; n = 0 only where the trace has no value of the column for the zone at all."""
    expected = [("a", "grid_2022", z, c) for c in ("demand_mw", "carbon_g_per_kwh") for z in traces["grid_2022"].zones]
    expected += [("b", "demand_forecast_2015_2019", zone, "demand_mw") for zone in ("CISO", "ERCO", "PJM")]
    expected += [("c", "prices_2023", zone, "price_usd_per_mwh") for zone in traces["prices_2023"].zones]
    got = [(row.part, row.trace, row.zone, row.column) for row in rows]
    if got != expected:
        missing, extra = [key for key in expected if key not in got], [key for key in got if key not in expected]
        raise BenchError(f"rows out of shape: missing {missing}, unexpected {extra} (or duplicated or out of order)")
    for row in rows:
        name = f"({row.part}) {row.zone} {row.column}"
        span = (datetime.fromisoformat(row.end) - datetime.fromisoformat(row.start)).days
        forecasters = tuple(score.forecaster for score in row.scores)
        if span != days or forecasters != ((PUBLISHED, *NAIVE) if row.part == "b" else NAIVE):
            raise BenchError(f"{name}: {span} days scored by {forecasters}")
        has_data = bool(np.isfinite(traces[row.trace].zones[row.zone].columns[row.column]).any())
        low, high = (1, 24 * days) if has_data else (0, 0)  # no value in the whole trace: nothing to score
        if not all(low <= score.n <= high for score in row.scores) or len({score.n for score in row.scores}) != 1:
            raise BenchError(f"{name}: n = {[score.n for score in row.scores]}, expected one n in {low}..{high}")
        figures = [
            (f"{s.forecaster}.{key}", getattr(s, key)) for s in row.scores for key in ("mape_pct", "mae", "wape_pct")
        ]
        for key, value in [*figures, ("mean_abs_actual", row.mean_abs_actual)] if has_data else []:
            if not (math.isfinite(value) and value >= 0):
                raise BenchError(f"{name}: {key} = {value}")


def _fmt(value: float, digits: int = 1) -> str:
    return "n/a" if math.isnan(value) else f"{value:.{digits}f}"


def _ratio(numerator: float, denominator: float) -> str:
    if math.isnan(numerator) or math.isnan(denominator) or denominator == 0:
        return "n/a"
    return f"{numerator / denominator:.2f}"


def _span(rows: Sequence[Row], part: str, whole: tuple[str, str], label: str) -> str:
    """`label` when the part's rows cover `whole`, else their dates (a --smoke run)."""
    span = next(((row.start, row.end) for row in rows if row.part == part), whole)
    return label if span == whole else f"[{span[0]}, {span[1]})"


def render(rows: Sequence[Row], elapsed_s: float) -> str:
    lines = [
        f"Day-ahead forecast error: issued daily at {DAY_AHEAD_ISSUE_HOUR_UTC:02d}:00 UTC for the next UTC day "
        "(24 h); each row scores its forecasters on the same hours (n).",
        "",
        f"(a) grid_2022.csv.gz, {_span(rows, 'a', ('2022-01-01', '2023-01-01'), '2022')}: seasonal naive, MAPE %",
        f"{'zone':<8} {'column':<17} {'n':>5} {'naive24h':>9} {'naive168h':>10} {'168h/24h':>9}",
    ]
    for row in (r for r in rows if r.part == "a"):
        day, week = row.score(NAIVE[0]), row.score(NAIVE[1])
        lines.append(
            f"{row.zone:<8} {row.column:<17} {day.n:>5} {_fmt(day.mape_pct):>9} {_fmt(week.mape_pct):>10} "
            f"{_ratio(week.mape_pct, day.mape_pct):>9}"
        )
    b_rows = [r for r in rows if r.part == "b"]
    if b_rows:
        lines += [
            "",
            f"(b) demand_forecast_2015_2019.csv.gz, [{b_rows[0].start}, {b_rows[0].end}): demand_mw, MAPE %; "
            "ratio = naive MAPE / published MAPE",
            f"{'zone':<8} {'n':>6} {'published':>10} {'naive24h':>9} {'naive168h':>10} {'24h/pub':>8} {'168h/pub':>9}",
        ]
    for row in b_rows:
        pub, day, week = row.score(PUBLISHED), row.score(NAIVE[0]), row.score(NAIVE[1])
        lines.append(
            f"{row.zone:<8} {pub.n:>6} {_fmt(pub.mape_pct, 2):>10} {_fmt(day.mape_pct, 2):>9} "
            f"{_fmt(week.mape_pct, 2):>10} {_ratio(day.mape_pct, pub.mape_pct):>8} "
            f"{_ratio(week.mape_pct, pub.mape_pct):>9}"
        )
    c_rows = [r for r in rows if r.part == "c"]
    if c_rows:
        lines += [
            "",
            f"(c) prices_2023.csv.gz, [{c_rows[0].start}, {c_rows[0].end}): price_usd_per_mwh, seasonal naive; "
            "MAE in USD/MWh, WAPE = sum|err|/sum|actual| %, MAPE % (misleading near zero prices)",
            f"{'zone':<8} {'n':>5} {'mean|p|':>8} {'MAE24h':>7} {'MAE168h':>8} {'WAPE24h':>8} {'WAPE168h':>9} "
            f"{'MAPE24h':>8} {'MAPE168h':>9}",
        ]
    for row in c_rows:
        day, week = row.score(NAIVE[0]), row.score(NAIVE[1])
        lines.append(
            f"{row.zone:<8} {day.n:>5} {_fmt(row.mean_abs_actual):>8} {_fmt(day.mae):>7} {_fmt(week.mae):>8} "
            f"{_fmt(day.wape_pct):>8} {_fmt(week.wape_pct):>9} {_fmt(day.mape_pct):>8} {_fmt(week.mape_pct):>9}"
        )
    lines += ["", f"elapsed {elapsed_s:.1f} s"]
    return "\n".join(lines)


def _as_json(rows: Sequence[Row], elapsed_s: float, smoke: bool = False) -> str:
    def clean(value: float) -> float | None:
        return None if math.isnan(value) else round(value, 4)

    payload = {
        "smoke": smoke,
        "issue_hour_utc": DAY_AHEAD_ISSUE_HOUR_UTC,
        "horizon_h": 24,
        "elapsed_s": round(elapsed_s, 2),
        "rows": [
            {
                "part": row.part,
                "trace": row.trace,
                "zone": row.zone,
                "column": row.column,
                "start": row.start,
                "end": row.end,
                "mean_abs_actual": clean(row.mean_abs_actual),
                "scores": [
                    {
                        "forecaster": score.forecaster,
                        "n": score.n,
                        "mape_pct": clean(score.mape_pct),
                        "mae": clean(score.mae),
                        "wape_pct": clean(score.wape_pct),
                    }
                    for score in row.scores
                ],
            }
            for row in rows
        ],
    }
    return json.dumps(payload, indent=2)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--json", action="store_true", help="print the results as JSON instead of a table")
    parser.add_argument(
        "--smoke", action="store_true", help="4 weeks of each part, for CI: the output shape is checked"
    )
    args = parser.parse_args(argv)
    started = time.perf_counter()
    rows = run(args.smoke)
    elapsed = time.perf_counter() - started
    print(_as_json(rows, elapsed, args.smoke) if args.json else render(rows, elapsed))
    return 0


if __name__ == "__main__":
    sys.exit(main())
