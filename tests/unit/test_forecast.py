"""Forecasters: seasonal lags, no peeking past the issue time, gap fallback, error measures, backtests."""

from __future__ import annotations

import math
from datetime import UTC, datetime

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fleet.times import iso
from grid.forecast import (
    FORECASTERS,
    BacktestResult,
    PublishedForecast,
    SeasonalNaive,
    backtest,
    get_forecaster,
    mae,
    mape,
)
from grid.trace import Trace, load_trace, packaged_trace, parse_trace

H = 3600
BASE = int(datetime(2022, 1, 1, tzinfo=UTC).timestamp())  # a Saturday midnight UTC


def make_trace(columns: dict[str, list[float | None]], zone: str = "Z", start_s: int = BASE) -> Trace:
    """An hourly one-zone trace from start_s; None is a missing cell."""
    names = list(columns)
    length = len(columns[names[0]])
    lines = ["time,zone," + ",".join(names)]
    for row in range(length):
        cells = ["" if columns[name][row] is None else repr(columns[name][row]) for name in names]
        lines.append(f"{iso(start_s + row * H)},{zone}," + ",".join(cells))
    return parse_trace(lines, source="synthetic")


def hours(*rows: int) -> np.ndarray:
    return BASE + np.asarray(rows, dtype=np.int64) * H


def row_index_trace(length: int) -> Trace:
    # Value = row number + 1: every hour is distinct, so the returned value names the row that was read.
    return make_trace({"demand_mw": [float(row + 1) for row in range(length)]})


# --- seasonal naive: which lag -------------------------------------------------------------------


def test_seasonal_naive_24h_uses_the_latest_known_day() -> None:
    trace = row_index_trace(96)
    issued = int(hours(50)[0])  # day 2, 02:00
    # Row 60 is 10 h after issue: one day back (36) is known. Row 74 is exactly 24 h later: row 50, the
    # issue hour itself, counts as known. Row 75 and row 80 need two days back (27, 32).
    result = SeasonalNaive(24).forecast(trace, "Z", "demand_mw", issued, hours(60, 74, 75, 80))
    np.testing.assert_array_equal(result, [36 + 1, 50 + 1, 27 + 1, 32 + 1])


def test_seasonal_naive_168h_uses_same_hour_of_a_past_week() -> None:
    trace = row_index_trace(24 * 21)
    issued = int(hours(24 * 14 + 18)[0])  # day 14, 18:00
    targets = hours(24 * 15 + 3, 24 * 15 + 20)
    result = SeasonalNaive(168).forecast(trace, "Z", "demand_mw", issued, targets)
    np.testing.assert_array_equal(result, [24 * 8 + 3 + 1, 24 * 8 + 20 + 1])


def test_target_at_or_before_issue_uses_one_period_back() -> None:
    trace = row_index_trace(72)
    result = SeasonalNaive(24).forecast(trace, "Z", "demand_mw", int(hours(60)[0]), hours(30, 60))
    np.testing.assert_array_equal(result, [6 + 1, 36 + 1])


def test_forecast_is_float64_aligned_with_targets() -> None:
    trace = row_index_trace(48)
    result = SeasonalNaive(24).forecast(trace, "Z", "demand_mw", int(hours(47)[0]), hours(48, 49, 50))
    assert result.dtype == np.float64
    assert result.shape == (3,)


# --- no peeking ----------------------------------------------------------------------------------


def test_seasonal_naive_never_reads_rows_after_issue() -> None:
    # Days 0 and 1 hold 100 at hour 20, day 2 holds 999 there. Issued at day 2 10:00, the forecast for
    # day 3 20:00 must use day 1 (100); a forecaster peeking at day 2 would answer 999.
    values: list[float | None] = [100.0] * 96
    values[48 + 20] = 999.0
    trace = make_trace({"demand_mw": values})
    result = SeasonalNaive(24).forecast(trace, "Z", "demand_mw", int(hours(58)[0]), hours(72 + 20))
    assert result[0] == 100.0


@settings(max_examples=60, deadline=None)
@given(
    data=st.lists(st.floats(1.0, 1e5, allow_nan=False) | st.none(), min_size=24 * 12, max_size=24 * 12),
    issue_row=st.integers(0, 24 * 12 - 1),
    offsets_h=st.lists(st.integers(-48, 24 * 9), min_size=1, max_size=20),
    period_h=st.sampled_from([1, 24, 168]),
)
def test_changing_the_future_never_changes_a_forecast(
    data: list[float | None], issue_row: int, offsets_h: list[int], period_h: int
) -> None:
    future_changed = [v if row <= issue_row else 7.0 for row, v in enumerate(data)]
    issued = int(hours(issue_row)[0])
    targets = hours(*(issue_row + offset for offset in offsets_h))
    forecaster = SeasonalNaive(period_h)
    original = forecaster.forecast(make_trace({"demand_mw": data}), "Z", "demand_mw", issued, targets)
    altered = forecaster.forecast(make_trace({"demand_mw": future_changed}), "Z", "demand_mw", issued, targets)
    np.testing.assert_array_equal(original, altered)


def test_published_forecast_ignores_actuals_and_unpublished_days() -> None:
    demand: list[float | None] = [1000.0] * 72
    published: list[float | None] = [1100.0] * 72
    trace = make_trace({"demand_mw": demand, "demand_forecast_mw": published})
    forecaster = PublishedForecast()
    issued = BASE + 18 * H  # day 0, 18:00 UTC: day 1 is published, day 2 is not yet
    targets = hours(24, 47, 48)
    result = forecaster.forecast(trace, "Z", "demand_mw", issued, targets)
    np.testing.assert_array_equal(result[:2], [1100.0, 1100.0])
    assert math.isnan(result[2])
    earlier = forecaster.forecast(trace, "Z", "demand_mw", issued - H, targets)
    assert np.isnan(earlier).all()

    # Actuals after the issue time play no part.
    altered = make_trace({"demand_mw": [5.0] * 72, "demand_forecast_mw": published})
    np.testing.assert_array_equal(forecaster.forecast(altered, "Z", "demand_mw", issued, targets), result)


# --- gaps and missing history ------------------------------------------------------------------------


def test_missing_value_falls_back_to_an_earlier_period() -> None:
    values: list[float | None] = [float(row + 1) for row in range(96)]
    values[48 + 5] = None  # day 2 05:00 missing
    values[24 + 5] = None  # day 1 05:00 missing too
    trace = make_trace({"demand_mw": values})
    result = SeasonalNaive(24).forecast(trace, "Z", "demand_mw", int(hours(70)[0]), hours(72 + 5))
    assert result[0] == 5 + 1  # day 0


def test_absent_row_falls_back_like_a_missing_value() -> None:
    # A trace with no row at all for day 1 05:00 (not just an empty cell).
    lines = ["time,zone,demand_mw"]
    lines += [f"{iso(BASE + row * H)},Z,{row + 1}" for row in range(48) if row != 24 + 5]
    trace = parse_trace(lines)
    result = SeasonalNaive(24).forecast(trace, "Z", "demand_mw", int(hours(47)[0]), hours(48 + 5))
    assert result[0] == 5 + 1


def test_fallback_is_bounded() -> None:
    values: list[float | None] = [None] * (24 * 6)
    values[5] = 42.0  # only day 0 05:00 is known
    trace = make_trace({"demand_mw": values})
    target = hours(24 * 5 + 5)
    issued = int(hours(24 * 5)[0])
    # Candidates with the default bound: days 4, 3, 2, 1: all missing.
    assert np.isnan(SeasonalNaive(24).forecast(trace, "Z", "demand_mw", issued, target)).all()
    wider = SeasonalNaive(24, max_lookback_periods=5)
    assert wider.forecast(trace, "Z", "demand_mw", issued, target)[0] == 42.0


def test_nan_when_nothing_is_known_yet() -> None:
    trace = row_index_trace(48)
    before_data = SeasonalNaive(24).forecast(trace, "Z", "demand_mw", BASE - 10 * H, hours(5, 30))
    assert np.isnan(before_data).all()
    empty_column = make_trace({"demand_mw": [1.0] * 48, "carbon_g_per_kwh": [None] * 48})
    result = SeasonalNaive(24).forecast(empty_column, "Z", "carbon_g_per_kwh", int(hours(40)[0]), hours(50))
    assert np.isnan(result).all()


def test_empty_target_list() -> None:
    result = SeasonalNaive(24).forecast(row_index_trace(24), "Z", "demand_mw", BASE, np.empty(0, dtype=np.int64))
    assert result.shape == (0,)


def test_unknown_zone_or_column_is_an_error() -> None:
    trace = row_index_trace(24)
    with pytest.raises(ValueError, match="no zone 'X'"):
        SeasonalNaive(24).forecast(trace, "X", "demand_mw", BASE, hours(30))
    with pytest.raises(ValueError, match="no column 'carbon_g_per_kwh'"):
        SeasonalNaive(24).forecast(trace, "Z", "carbon_g_per_kwh", BASE, hours(30))


@pytest.mark.parametrize("kwargs", [{"period_h": 0}, {"period_h": 24, "max_lookback_periods": 0}])
def test_seasonal_naive_rejects_bad_parameters(kwargs: dict[str, int]) -> None:
    with pytest.raises(ValueError, match="must be >= 1"):
        SeasonalNaive(**kwargs)


def test_published_forecast_needs_its_column() -> None:
    trace = row_index_trace(48)
    with pytest.raises(ValueError, match="needs the published forecast column 'demand_forecast_mw'"):
        PublishedForecast().forecast(trace, "Z", "demand_mw", BASE, hours(30))


def test_published_forecast_only_forecasts_demand() -> None:
    trace = make_trace({"demand_mw": [1.0] * 24, "demand_forecast_mw": [1.0] * 24, "carbon_g_per_kwh": [1.0] * 24})
    with pytest.raises(ValueError, match="not 'carbon_g_per_kwh'"):
        PublishedForecast().forecast(trace, "Z", "carbon_g_per_kwh", BASE, hours(3))


# --- error measures ------------------------------------------------------------------------------


def test_mape_math() -> None:
    assert mape([100.0, 200.0], [110.0, 180.0]) == pytest.approx(10.0)
    assert mape([100.0, 50.0], [150.0, 50.0]) == pytest.approx(25.0)


def test_mape_skips_zero_actuals_and_missing_pairs() -> None:
    actual = [100.0, 0.0, math.nan, 200.0, -50.0]
    predicted = [90.0, 5.0, 10.0, math.nan, -40.0]
    # Pairs kept: (100, 90) -> 10 %, (-50, -40) -> 20 %.
    assert mape(actual, predicted) == pytest.approx(15.0)


def test_mape_with_no_usable_pair_is_nan() -> None:
    assert math.isnan(mape([0.0, math.nan], [1.0, 1.0]))
    assert math.isnan(mape([], []))


def test_mae_math() -> None:
    assert mae([10.0, -10.0, 0.0, math.nan], [12.0, -5.0, 1.0, 3.0]) == pytest.approx((2 + 5 + 1) / 3)
    assert math.isnan(mae([math.nan], [1.0]))


def test_error_measures_reject_mismatched_shapes() -> None:
    with pytest.raises(ValueError, match="differ in shape"):
        mape([1.0, 2.0], [1.0])
    with pytest.raises(ValueError, match="differ in shape"):
        mae([1.0], [1.0, 2.0])


# --- registry ------------------------------------------------------------------------------------


def test_registry_names() -> None:
    assert set(FORECASTERS) == {"seasonal_naive_24h", "seasonal_naive_168h", "published_day_ahead"}
    for name, forecaster in FORECASTERS.items():
        assert forecaster.name == name
        assert get_forecaster(name) is forecaster


def test_unknown_forecaster_names_the_known_ones() -> None:
    with pytest.raises(ValueError, match=r"unknown forecaster 'arima'.*seasonal_naive_24h"):
        get_forecaster("arima")


# --- backtest ------------------------------------------------------------------------------------


def test_backtest_perfectly_daily_signal_has_zero_error() -> None:
    daily: list[float | None] = [float(100 + hour) for hour in range(24)]
    trace = make_trace({"demand_mw": daily * 10})
    start, end = BASE + 24 * 2 * H, BASE + 24 * 9 * H
    result = backtest(trace, "Z", "demand_mw", get_forecaster("seasonal_naive_24h"), start, end)
    assert isinstance(result, BacktestResult)
    assert (result.forecaster, result.zone, result.column) == ("seasonal_naive_24h", "Z", "demand_mw")
    assert result.n == 7 * 24
    assert result.mape_pct == 0.0
    assert result.mae == 0.0


def test_backtest_scores_the_day_ahead_window() -> None:
    # Demand grows 1 % a day; the forecast published 10 % high is off by 10 % everywhere.
    demand = [1000.0 * 1.01 ** (row // 24) for row in range(24 * 6)]
    published: list[float | None] = [value * 1.1 for value in demand]
    trace = make_trace({"demand_mw": list(demand), "demand_forecast_mw": published})
    start, end = BASE + 24 * 3 * H, BASE + 24 * 5 * H
    result = backtest(trace, "Z", "demand_mw", PublishedForecast(), start, end)
    assert result.n == 48
    assert result.mape_pct == pytest.approx(10.0)
    assert result.target_times_s[0] == start
    assert result.target_times_s[-1] == end - H
    # Issued at 18:00 the day before, the 24 h lag reaches the previous day for hours <= 18, else two days.
    naive = backtest(trace, "Z", "demand_mw", SeasonalNaive(24), start, end)
    hour_of_day = (naive.target_times_s // H) % 24
    expected_pct = np.where(hour_of_day <= 18, 100 * (1 - 1 / 1.01), 100 * (1 - 1 / 1.01**2))
    assert naive.mape_pct == pytest.approx(float(expected_pct.mean()))


def test_backtest_longer_horizon_scores_each_target_once_per_issue() -> None:
    trace = row_index_trace(24 * 8)
    result = backtest(trace, "Z", "demand_mw", SeasonalNaive(24), BASE + 24 * 4 * H, BASE + 24 * 6 * H, horizon_h=48)
    # Each of the 48 target hours is in two issues' windows.
    assert len(result.target_times_s) == 96


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"issue_hour_utc": 24}, "issue_hour_utc"), ({"horizon_h": 0}, "horizon_h"), ({"end_s": BASE}, "must be after")],
)
def test_backtest_rejects_bad_parameters(kwargs: dict[str, int], message: str) -> None:
    arguments = {"start_s": BASE, "end_s": BASE + 24 * H, **kwargs}
    with pytest.raises(ValueError, match=message):
        backtest(row_index_trace(48), "Z", "demand_mw", SeasonalNaive(24), **arguments)


# --- real packaged traces -------------------------------------------------------------------------


def _utc_s(year: int, month: int, day: int) -> int:
    return int(datetime(year, month, day, tzinfo=UTC).timestamp())


def test_seasonal_naive_on_real_ciso_2022_demand_is_sane() -> None:
    trace = load_trace(packaged_trace("grid_2022.csv.gz"))
    start, end = _utc_s(2022, 1, 1), _utc_s(2023, 1, 1)
    for name in ("seasonal_naive_24h", "seasonal_naive_168h"):
        result = backtest(trace, "CISO", "demand_mw", get_forecaster(name), start, end)
        assert result.n > 8000
        assert 1.0 < result.mape_pct < 30.0, (name, result)
    carbon = backtest(trace, "CISO", "carbon_g_per_kwh", get_forecaster("seasonal_naive_24h"), start, end)
    assert 1.0 < carbon.mape_pct < 50.0


def test_published_forecast_on_real_data_beats_seasonal_naive() -> None:
    trace = load_trace(packaged_trace("demand_forecast_2015_2019.csv.gz"))
    start, end = _utc_s(2016, 1, 1), _utc_s(2017, 1, 1)
    published = backtest(trace, "ERCO", "demand_mw", get_forecaster("published_day_ahead"), start, end)
    naive = backtest(trace, "ERCO", "demand_mw", get_forecaster("seasonal_naive_24h"), start, end)
    assert published.n > 8000
    assert 0.5 < published.mape_pct < 10.0
    assert published.mape_pct < naive.mape_pct < 30.0
