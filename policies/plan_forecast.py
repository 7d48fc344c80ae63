"""The forecasts a window plan is made over, each from the trace alone as known at the planning moment.

One grid signal per slot (`forecast_signal`), or the headroom formula's whole assessment per slot, lazily
(`iter_assessments`).
Pure given a loaded trace. The planner itself is policies/planner.py.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import numpy as np
import numpy.typing as npt

from fleet.headroom import HeadroomConfig
from fleet.regions import RegionConfig
from fleet.times import iso
from grid.forecast import Forecaster, PublishedForecast, get_forecaster
from grid.headroom import Assessment, GridSignals, assess
from grid.trace import FloatArray, IntArray, Observation, SignalReader, Trace
from policies.plan import HOUR_S, PlanSignal

# The trace column each read signal comes from; headroom is not read but computed from the inputs.
TRACE_COLUMN: dict[PlanSignal, str] = {
    PlanSignal.CARBON: "carbon_g_per_kwh",
    PlanSignal.PRICE: "price_usd_per_mwh",
}


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
        column = TRACE_COLUMN[signal]
        return _column_forecast(trace, region.zone_for(column), column, known_at, targets, model, region.name)

    assessments = iter_assessments(
        trace, region, issued_at_s, targets, headroom_config, forecaster=model, data_lag_s=data_lag_s
    )
    return np.array([np.nan if a is None else a.grid_headroom for a in assessments], dtype=np.float64)


def iter_assessments(
    trace: Trace,
    region: RegionConfig,
    issued_at_s: int,
    slot_times_s: npt.ArrayLike,
    headroom_config: HeadroomConfig,
    *,
    forecaster: str | Forecaster = DEFAULT_FORECASTER,
    data_lag_s: int = DATA_LAG_S,
    peak_reader: SignalReader | None = None,
) -> Iterator[Assessment | None]:
    """The headroom formula's whole assessment (headroom and stress) at each slot, from forecast inputs only (see
    forecast_signal); None where nothing can be said. The inputs are forecast at once (ValueError when the trace
    has no input at all); each slot is assessed only when asked, so a caller that stops at the first calm slot pays
    for no more.
    `peak_reader`: where the reference peak (a trailing quantile of the trace) is read; the trace itself by default
    (a reader over the same trace answers the same number, precomputed: simulate.fast)."""
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
    carbon_column, price_column = TRACE_COLUMN[PlanSignal.CARBON], TRACE_COLUMN[PlanSignal.PRICE]
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
    peak = (trace if peak_reader is None else peak_reader).trailing_quantile(
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

    def assessments() -> Iterator[Assessment | None]:
        for index, target in enumerate(int(t) for t in targets):
            signals = GridSignals(
                at_s=target,
                demand_mw=at(demand, index, target),
                reference_peak_mw=peak,
                carbon_g_per_kwh=at(carbon, index, target),
                price_usd_per_mwh=at(price, index, target),
            )
            if signals.demand_mw is None and signals.carbon_g_per_kwh is None and signals.price_usd_per_mwh is None:
                yield None  # assess would answer the conservative default; the planner's own NaN rule is clearer
            else:
                yield assess(signals, headroom_config)

    return assessments()
