"""Signal forecasts: predict a trace column from data available at issue time, and backtest them."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Protocol

import numpy as np
import numpy.typing as npt

from grid.trace import Trace, ZoneSeries

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

HOUR_S = 3600
DAY_S = 86400

DAY_AHEAD_ISSUE_HOUR_UTC = 18
"""Hour (UTC) at which the day-ahead backtest issues its daily forecast for the next UTC day.

18:00 UTC is after the day-ahead markets of the US balancing authorities in the packaged traces have
closed (PJM 10:30 ET, ERCOT 10:00 CT, CAISO 10:00 PT = 14:30..18:00 UTC), so each authority's own
day-ahead demand forecast for every hour of the next UTC day exists by then (see `PublishedForecast`),
and every forecaster is compared on the same issue time.
"""


class Forecaster(Protocol):
    """Predicts `column` of `zone` at `target_times_s` using only what was known at `issued_at_s`."""

    # A read-only property, so that frozen dataclasses (whose fields cannot be set) satisfy the protocol.
    @property
    def name(self) -> str: ...

    def forecast(self, trace: Trace, zone: str, column: str, issued_at_s: int, target_times_s: IntArray) -> FloatArray:
        """Float64 predictions aligned with `target_times_s`; NaN where the forecaster cannot say."""
        ...


def _zone_series(trace: Trace, zone: str, column: str) -> ZoneSeries:
    series = trace.zones.get(zone)
    if series is None:
        raise ValueError(f"{trace.source}: no zone {zone!r}; the trace has {sorted(trace.zones)}")
    if column not in trace.columns:
        raise ValueError(f"{trace.source}: no column {column!r}; the trace has {list(trace.columns)}")
    return series


def _values_at(series: ZoneSeries, column: str, times_s: IntArray) -> FloatArray:
    """Values of `column` at exactly `times_s`; NaN where the trace has no such row or the value is missing."""
    result = np.full(len(times_s), np.nan, dtype=np.float64)
    if len(series.times_s) == 0 or len(times_s) == 0:
        return result
    row = np.searchsorted(series.times_s, times_s, side="left")
    clipped = np.minimum(row, len(series.times_s) - 1)
    # Exact matches only: a seasonal lag means "the same hour", not "the nearest earlier row".
    hit = (row < len(series.times_s)) & (series.times_s[clipped] == times_s)
    result[hit] = series.columns[column][clipped[hit]]
    return result


@dataclass(frozen=True)
class SeasonalNaive:
    """The value one season ago: same hour of the latest fully observed day (24 h) or week (168 h).

    For target t the lag is the smallest k >= 1 with t - k * period <= issued_at, so no row after the
    issue time is read; if that value is missing it falls back to k + 1, ... up to `max_lookback_periods`
    candidates, then NaN.
    """

    period_h: int
    max_lookback_periods: int = 4

    def __post_init__(self) -> None:
        if self.period_h < 1:
            raise ValueError(f"period_h must be >= 1, got {self.period_h}")
        if self.max_lookback_periods < 1:
            raise ValueError(f"max_lookback_periods must be >= 1, got {self.max_lookback_periods}")

    @property
    def name(self) -> str:
        return f"seasonal_naive_{self.period_h}h"

    def forecast(self, trace: Trace, zone: str, column: str, issued_at_s: int, target_times_s: IntArray) -> FloatArray:
        series = _zone_series(trace, zone, column)
        targets = np.asarray(target_times_s, dtype=np.int64)
        period_s = self.period_h * HOUR_S
        # ceil((t - issued) / period) in integer arithmetic; floor division rounds toward -inf.
        first_k = np.maximum(1, -((issued_at_s - targets) // period_s))
        result = np.full(len(targets), np.nan, dtype=np.float64)
        for extra in range(self.max_lookback_periods):
            source_s = targets - (first_k + extra) * period_s
            candidate = _values_at(series, column, source_s)
            # Already implied by the choice of k; kept explicit because peeking is the one unforgivable bug.
            candidate[source_s > issued_at_s] = np.nan
            fill = np.isnan(result) & ~np.isnan(candidate)
            result[fill] = candidate[fill]
        return result


@dataclass(frozen=True)
class PublishedForecast:
    """The balancing authority's own day-ahead forecast of `target_column`, read from `column`.

    Reading the forecast column AT the target times is not peeking: each value is a forecast that the
    authority published the day before the target hour (EIA-930's "day-ahead demand forecast"), not a
    measurement of it. US authorities publish tomorrow's hourly forecast before their day-ahead market
    closes (10:00..10:30 local, at the latest about 18:00 UTC), and tomorrow in local time covers every
    hour of tomorrow in UTC that today's local day does not. So a value for UTC day d counts as known from
    `published_by_hour_utc` on day d - 1; targets further out (not yet published at issue time) are NaN.
    Caveat: EIA itself reposts the forecast only by 07:00 ET on the day it covers, so a planner fed by
    EIA rather than by the authority's own site would see it later than this.
    """

    column: str = "demand_forecast_mw"
    target_column: str = "demand_mw"
    published_by_hour_utc: int = DAY_AHEAD_ISSUE_HOUR_UTC

    def __post_init__(self) -> None:
        if not 0 <= self.published_by_hour_utc <= 23:
            raise ValueError(f"published_by_hour_utc must be 0..23, got {self.published_by_hour_utc}")

    @property
    def name(self) -> str:
        return "published_day_ahead"

    def forecast(self, trace: Trace, zone: str, column: str, issued_at_s: int, target_times_s: IntArray) -> FloatArray:
        if column != self.target_column:
            raise ValueError(f"{self.name} forecasts {self.target_column!r} (from {self.column!r}), not {column!r}")
        if self.column not in trace.columns:
            raise ValueError(
                f"{trace.source}: {self.name} needs the published forecast column {self.column!r}, which "
                f"this trace lacks (it has {list(trace.columns)}); use a seasonal-naive forecaster instead"
            )
        series = _zone_series(trace, zone, self.column)
        targets = np.asarray(target_times_s, dtype=np.int64)
        result = _values_at(series, self.column, targets)
        published_at_s = (targets // DAY_S - 1) * DAY_S + self.published_by_hour_utc * HOUR_S
        result[published_at_s > issued_at_s] = np.nan
        return result


FORECASTERS: Mapping[str, Forecaster] = MappingProxyType(
    {forecaster.name: forecaster for forecaster in (SeasonalNaive(24), SeasonalNaive(168), PublishedForecast())}
)
"""Forecasters by name, for config and CLI."""


def get_forecaster(name: str) -> Forecaster:
    forecaster = FORECASTERS.get(name)
    if forecaster is None:
        raise ValueError(f"unknown forecaster {name!r}; known: {sorted(FORECASTERS)}")
    return forecaster


def _paired(actual: npt.ArrayLike, predicted: npt.ArrayLike) -> tuple[FloatArray, FloatArray]:
    actual_values = np.asarray(actual, dtype=np.float64)
    predicted_values = np.asarray(predicted, dtype=np.float64)
    if actual_values.shape != predicted_values.shape:
        raise ValueError(f"actual {actual_values.shape} and predicted {predicted_values.shape} differ in shape")
    both = np.isfinite(actual_values) & np.isfinite(predicted_values)
    return actual_values[both], predicted_values[both]


def mape(actual: npt.ArrayLike, predicted: npt.ArrayLike) -> float:
    """Mean absolute percentage error, %, over pairs where both are present and actual != 0; NaN if none."""
    actual_values, predicted_values = _paired(actual, predicted)
    nonzero = actual_values != 0
    if not nonzero.any():
        return math.nan
    errors = np.abs((predicted_values[nonzero] - actual_values[nonzero]) / actual_values[nonzero])
    return float(100.0 * errors.mean())


def mae(actual: npt.ArrayLike, predicted: npt.ArrayLike) -> float:
    """Mean absolute error, in the column's unit, over pairs where both are present; NaN if none."""
    actual_values, predicted_values = _paired(actual, predicted)
    if len(actual_values) == 0:
        return math.nan
    return float(np.abs(predicted_values - actual_values).mean())


@dataclass(frozen=True)
class BacktestResult:
    """Error of one forecaster on one zone and column; n counts target hours with actual and forecast."""

    forecaster: str
    zone: str
    column: str
    n: int
    mape_pct: float
    mae: float
    # Every evaluated (issue, target) pair, so callers can compare forecasters on the same points.
    target_times_s: IntArray = field(repr=False, compare=False)
    actual: FloatArray = field(repr=False, compare=False)
    predicted: FloatArray = field(repr=False, compare=False)


def backtest(
    trace: Trace,
    zone: str,
    column: str,
    forecaster: Forecaster,
    start_s: int,
    end_s: int,
    issue_hour_utc: int = DAY_AHEAD_ISSUE_HOUR_UTC,
    horizon_h: int = 24,
) -> BacktestResult:
    """Day-ahead protocol: each day at `issue_hour_utc` forecast the `horizon_h` hours from the next
    midnight UTC; score the targets in [start_s, end_s) against the trace's actuals."""
    if not 0 <= issue_hour_utc <= 23:
        raise ValueError(f"issue_hour_utc must be 0..23, got {issue_hour_utc}")
    if horizon_h < 1:
        raise ValueError(f"horizon_h must be >= 1, got {horizon_h}")
    if end_s <= start_s:
        raise ValueError(f"end_s ({end_s}) must be after start_s ({start_s})")
    series = _zone_series(trace, zone, column)
    offsets_s = np.arange(horizon_h, dtype=np.int64) * HOUR_S
    # First issue day: the one whose window (from the next midnight, horizon_h long) still reaches start_s.
    first_day = start_s // DAY_S - 1 - (horizon_h - 1) // 24
    last_day = (end_s - 1) // DAY_S - 1
    times: list[IntArray] = []
    predictions: list[FloatArray] = []
    for day in range(first_day, last_day + 1):
        issued_at_s = day * DAY_S + issue_hour_utc * HOUR_S
        targets = (day + 1) * DAY_S + offsets_s
        targets = targets[(targets >= start_s) & (targets < end_s)]
        if len(targets) == 0:
            continue
        times.append(targets)
        predictions.append(np.asarray(forecaster.forecast(trace, zone, column, issued_at_s, targets), dtype=np.float64))
    target_times = np.concatenate(times) if times else np.empty(0, dtype=np.int64)
    predicted = np.concatenate(predictions) if predictions else np.empty(0, dtype=np.float64)
    actual = _values_at(series, column, target_times)
    return BacktestResult(
        forecaster=forecaster.name,
        zone=zone,
        column=column,
        n=int((np.isfinite(actual) & np.isfinite(predicted)).sum()),
        mape_pct=mape(actual, predicted),
        mae=mae(actual, predicted),
        target_times_s=target_times,
        actual=actual,
        predicted=predicted,
    )
