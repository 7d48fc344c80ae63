"""The live signal store: the last good value per zone and column, with when it was measured, read exactly as a
Trace is (`SignalReader`), and each source's health as a value object the control state carries.

A value is accepted only if it can be real (grid.readings.check_reading): finite, in its column's range, not from
the future, not older than `max_reading_age_s`, and not older than the value already held. Anything else is
rejected and counted under its reason; the held value stays, and grid/headroom.py decays it toward the
conservative headroom as it ages.
Thread-safe: the poller writes from its own thread while the control plane reads.
"""

from __future__ import annotations

import math
import threading
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from fleet.config import FleetConfig
from fleet.errors import SignalSourceError
from fleet.sources import LiveSourceConfig
from grid.context import FleetContext, load_context
from grid.readings import ForecastSeries, SourceBatch, check_reading
from grid.signal_health import DEGRADED, DOWN, UNKNOWN, UP, ForecastSummary, HeldValue, SignalsStatus, SourceHealth
from grid.trace import Observation, Trace

_LIVE_DEFAULTS = LiveSourceConfig.model_fields


@dataclass
class _SourceRecord:
    provider: str
    required: bool
    polls: int = 0
    state: str = UNKNOWN
    last_poll_s: float | None = None
    last_success_s: float | None = None
    last_error_s: float | None = None
    last_error: str | None = None
    consecutive_failures: int = 0
    rejected: dict[str, int] = field(default_factory=dict)
    last_rejection: str | None = None
    values: dict[tuple[str, str], HeldValue] = field(default_factory=dict)
    forecasts: dict[tuple[str, str], ForecastSummary] = field(default_factory=dict)


class SignalStore:
    """Last good values of every live source, and their health. Satisfies grid.trace.SignalReader."""

    def __init__(
        self,
        history: Trace | None = None,
        *,
        max_reading_age_s: float = _LIVE_DEFAULTS["max_reading_age_s"].default,
        max_clock_skew_s: float = _LIVE_DEFAULTS["max_clock_skew_s"].default,
        retained_points_per_series: int = _LIVE_DEFAULTS["retained_points_per_series"].default,
    ) -> None:
        self.history = history
        self.max_reading_age_s = max_reading_age_s
        self.max_clock_skew_s = max_clock_skew_s
        self._retained_points = retained_points_per_series
        self._lock = threading.Lock()
        self._held: dict[tuple[str, str], HeldValue] = {}
        self._series: dict[tuple[str, str], deque[tuple[int, float]]] = {}
        self._forecasts: dict[tuple[str, str], ForecastSeries] = {}
        self._sources: dict[str, _SourceRecord] = {}
        self._quantiles: dict[tuple[object, ...], float] = {}
        self._revision = 0

    @classmethod
    def for_config(cls, config: LiveSourceConfig, history: Trace | None) -> SignalStore:
        return cls(
            history,
            max_reading_age_s=config.max_reading_age_s,
            max_clock_skew_s=config.max_clock_skew_s,
            retained_points_per_series=config.retained_points_per_series,
        )

    @property
    def revision(self) -> int:
        return self._revision

    def register(self, name: str, provider: str, required: bool) -> None:
        """Make a source known before its first poll, so its health reads `unknown` rather than nothing."""
        with self._lock:
            self._sources.setdefault(name, _SourceRecord(provider, required))

    # Writes ---------------------------------------------------------------------------------------------

    def offer(self, source: str, batch: SourceBatch, now_s: float) -> int:
        """Take one poll's answer; returns how many values were accepted (new or revised)."""
        with self._lock:
            record = self._sources.setdefault(source, _SourceRecord("unknown", False))
            record.polls += 1
            record.last_poll_s = now_s
            accepted = usable = 0
            for rejection in batch.rejections:
                self._count(record, rejection.reason, f"{rejection.zone} {rejection.column}: {rejection.detail}")
            for reading in batch.readings:
                key = (reading.zone, reading.column)
                verdict, detail = check_reading(
                    reading, now_s, self._held.get(key), self.max_reading_age_s, self.max_clock_skew_s
                )
                if verdict not in ("accept", "unchanged"):
                    self._count(record, verdict, detail)
                    continue
                usable += 1
                value = HeldValue(reading.zone, reading.column, reading.value, reading.observed_at_s, source)
                record.values[key] = value
                if verdict == "accept":
                    accepted += 1
                    self._keep(value)
            for forecast in batch.forecasts:
                self._forecasts[(forecast.zone, forecast.column)] = forecast
                if forecast.times_s:
                    record.forecasts[(forecast.zone, forecast.column)] = ForecastSummary(
                        forecast.zone,
                        forecast.column,
                        forecast.issued_at_s,
                        len(forecast.times_s),
                        forecast.times_s[0],
                        forecast.times_s[-1],
                    )
            if usable:
                record.state = DEGRADED if batch.failures or batch.rejections or usable < len(batch.readings) else UP
                record.last_success_s = now_s
                record.consecutive_failures = 0
                if batch.failures:
                    record.last_error, record.last_error_s = batch.failures[0], now_s
            else:
                reasons = sorted({r.reason for r in batch.rejections} | set(batch.failures[:1]))
                self._failed(record, f"no_data: no usable value ({', '.join(reasons) or 'empty answer'})", now_s)
            self._revision += 1
            return accepted

    def fail(self, source: str, error: SignalSourceError, now_s: float) -> None:
        """Record a poll that got nothing (timeout, HTTP error, garbage ...): held values stay as they are."""
        with self._lock:
            record = self._sources.setdefault(source, _SourceRecord("unknown", False))
            record.polls += 1
            record.last_poll_s = now_s
            self._failed(record, f"{error.kind}: {error.detail}", now_s)
            self._revision += 1

    def _failed(self, record: _SourceRecord, message: str, now_s: float) -> None:
        record.state = DOWN
        record.consecutive_failures += 1
        record.last_error, record.last_error_s = message, now_s

    def _count(self, record: _SourceRecord, reason: str, detail: str) -> None:
        record.rejected[reason] = record.rejected.get(reason, 0) + 1
        record.last_rejection = f"{reason}: {detail}"

    def _keep(self, value: HeldValue) -> None:
        key = (value.zone, value.column)
        held = self._held.get(key)
        # Several sources may feed one column: the newest measurement wins.
        if held is None or value.observed_at_s >= held.observed_at_s:
            self._held[key] = value
        series = self._series.setdefault(key, deque(maxlen=self._retained_points))
        if series and series[-1][0] == value.observed_at_s:
            series[-1] = (value.observed_at_s, value.value)  # a revision of the same hour replaces it
        elif not series or series[-1][0] < value.observed_at_s:
            series.append((value.observed_at_s, value.value))

    # Reads (grid.trace.SignalReader) ----------------------------------------------------------------

    def latest(self, zone: str, column: str, at_s: int) -> Observation | None:
        with self._lock:
            held = self._held.get((zone, column))
        if held is None or held.observed_at_s > at_s + self.max_clock_skew_s:
            return None
        return Observation(held.value, held.observed_at_s)

    def trailing_quantile(self, zone: str, column: str, at_s: int, lookback_s: int, quantile: float) -> float | None:
        """Over (at_s - lookback_s, at_s]: the history trace's values up to its end (standing in for the trailing
        window when it ends earlier), and the live values accepted after the trace's end."""
        with self._lock:
            live = list(self._series.get((zone, column), ()))
        history_end = self._history_end(zone)
        key = (zone, column, lookback_s, quantile, at_s // 3600, len(live), live[-1] if live else None)
        cached = self._quantiles.get(key)
        if cached is not None:
            return None if math.isnan(cached) else cached
        parts: list[np.ndarray[Any, np.dtype[np.float64]]] = []
        if self.history is not None and history_end is not None:
            end = min(at_s, history_end)
            _, values = self.history.zones[zone].window(column, end - lookback_s + 1, end)
            parts.append(values[~np.isnan(values)])
        after = history_end if history_end is not None else -math.inf
        recent = [v for t, v in live if at_s - lookback_s < t <= at_s and t > after]
        parts.append(np.asarray(recent, dtype=np.float64))
        present = np.concatenate(parts)
        result = float(np.quantile(present, quantile)) if len(present) else math.nan
        if len(self._quantiles) > 4096:  # one entry per zone, column and hour: a bound, not a tuning knob
            self._quantiles.clear()
        self._quantiles[key] = result
        return None if math.isnan(result) else result

    def _history_end(self, zone: str) -> int | None:
        if self.history is None:
            return None
        series = self.history.zones.get(zone)
        if series is None or not len(series.times_s):
            return None
        return int(series.times_s[-1])

    def forecast(self, zone: str, column: str) -> ForecastSeries | None:
        """The latest forecast a source gave for this zone and column (not yet read by the planner)."""
        with self._lock:
            return self._forecasts.get((zone, column))

    def status(self, at_s: float) -> SignalsStatus:
        with self._lock:
            sources = tuple(
                SourceHealth(
                    name=name,
                    provider=record.provider,
                    required=record.required,
                    state=record.state,
                    polls=record.polls,
                    last_poll_s=record.last_poll_s,
                    last_success_s=record.last_success_s,
                    last_error_s=record.last_error_s,
                    last_error=record.last_error,
                    consecutive_failures=record.consecutive_failures,
                    rejected=tuple(sorted(record.rejected.items())),
                    last_rejection=record.last_rejection,
                    values=tuple(record.values[key] for key in sorted(record.values)),
                    forecasts=tuple(record.forecasts[key] for key in sorted(record.forecasts)),
                )
                for name, record in sorted(self._sources.items())
            )
            held = tuple(self._held[key] for key in sorted(self._held))
            return SignalsStatus(at_s, self._revision, sources, held)


def load_live_context(
    fleet: FleetConfig, trace_path: str | Path | None = None
) -> tuple[FleetContext, SignalStore | None]:
    """`load_context`, with an empty signal store attached when the fleet is live; returns the context and the
    store (None for a trace fleet), which the fleet's poller fills (grid.sources.poller)."""
    stores: list[SignalStore] = []

    def attach(config: LiveSourceConfig, history: Trace) -> SignalStore:
        stores.append(SignalStore.for_config(config, history))
        return stores[0]

    context = load_context(fleet, trace_path, live_signals=attach)
    return context, (stores[0] if stores else None)
