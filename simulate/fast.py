"""Speed without a second rule: the live functions' inputs, computed once. A trace reader whose trailing demand
quantiles are precomputed for every row (the same quantile over the same window as grid.trace.Trace). (The
calibration remembers its own interpolated costs: policies.calibration.)"""

from __future__ import annotations

import bisect
import math

import numpy as np

from grid.trace import FloatArray, Observation, Trace


def _lerp(low: float, high: float, fraction: float) -> float:
    # numpy's "linear" quantile interpolation, written as numpy writes it, so results agree to the last bit.
    difference = high - low
    return high - difference * (1.0 - fraction) if fraction >= 0.5 else low + difference * fraction


def rolling_quantiles(times_s: np.ndarray, values: FloatArray, lookback_s: int, quantile: float) -> FloatArray:
    """For each row, the quantile of present values with time in (time - lookback_s, time]; NaN when none."""
    out = np.full(len(times_s), np.nan)
    window: list[float] = []
    tail = 0
    for row in range(len(times_s)):
        value = float(values[row])
        if not math.isnan(value):
            bisect.insort(window, value)
        while times_s[tail] <= times_s[row] - lookback_s:
            old = float(values[tail])
            if not math.isnan(old):
                del window[bisect.bisect_left(window, old)]
            tail += 1
        if window:
            position = quantile * (len(window) - 1)
            low = math.floor(position)
            high = min(low + 1, len(window) - 1)
            out[row] = _lerp(window[low], window[high], position - low)
    return out


class PrecomputedReader:
    """A SignalReader over a Trace: `latest` is the trace's; `trailing_quantile` is looked up, for query times on a
    row of the trace, from a table built once per (zone, column, window, quantile); other times ask the trace."""

    def __init__(self, trace: Trace) -> None:
        self.trace = trace
        self._tables: dict[tuple[str, str, int, float], FloatArray] = {}

    def latest(self, zone: str, column: str, at_s: int) -> Observation | None:
        return self.trace.latest(zone, column, at_s)

    def trailing_quantile(self, zone: str, column: str, at_s: int, lookback_s: int, quantile: float) -> float | None:
        series = self.trace.zones.get(zone)
        if series is None or column not in series.columns:
            return self.trace.trailing_quantile(zone, column, at_s, lookback_s, quantile)
        row = int(np.searchsorted(series.times_s, at_s, side="right")) - 1
        if row < 0 or int(series.times_s[row]) != at_s:
            return self.trace.trailing_quantile(zone, column, at_s, lookback_s, quantile)
        key = (zone, column, lookback_s, quantile)
        table = self._tables.get(key)
        if table is None:
            table = rolling_quantiles(series.times_s, series.columns[column], lookback_s, quantile)
            self._tables[key] = table
        value = float(table[row])
        return None if math.isnan(value) else value
