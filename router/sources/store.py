"""The live signal store: the last good value per zone and column, with when it was measured, read exactly as a
Trace is (`SignalReader`), and each source's health as a value object the control state carries.

A value is accepted only if it can be real: finite, in its column's range, not from the future, not older than
`max_reading_age_s`, and not older than the value already held. Anything else is rejected and counted under its
reason; the held value stays, and router/headroom.py decays it toward the conservative headroom as it ages.
Thread-safe: the poller writes from its own thread while the control plane reads.
"""

from __future__ import annotations

import math
import threading
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from router.eia930 import CARBON_MAX_G_PER_KWH
from router.errors import SignalSourceError
from router.sources.config import LiveSourceConfig
from router.sources.readings import COLUMN_UNITS, ForecastSeries, Reading, SourceBatch
from router.trace import Observation, Trace, iso

_LIVE_DEFAULTS = LiveSourceConfig.model_fields

NON_NEGATIVE = frozenset(
    {"demand_mw", "demand_forecast_mw", "carbon_g_per_kwh", "net_generation_mw", "moer_percentile"}
)
"""Columns that cannot be below zero (a price can: negative wholesale prices are real)."""

PLAUSIBLE_MAX: Mapping[str, float] = {
    # The lower-48 US peak is about 0.75 TW: a balancing authority above 1 TW is a unit slip (kW read as MW).
    "demand_mw": 1e6,
    "demand_forecast_mw": 1e6,
    "net_generation_mw": 1e6,
    "carbon_g_per_kwh": CARBON_MAX_G_PER_KWH,
    "moer_percentile": 100.0,
}
"""Upper bounds beyond which a value cannot be a real measurement in its column's unit."""

UP, DEGRADED, DOWN, UNKNOWN = "up", "degraded", "down", "unknown"


@dataclass(frozen=True)
class HeldValue:
    """The value the store answers for one zone and column, and which source gave it."""

    zone: str
    column: str
    value: float
    observed_at_s: int
    source: str


@dataclass(frozen=True)
class ForecastSummary:
    """The shape of a forecast a source gave: how many points, and the span they cover."""

    zone: str
    column: str
    issued_at_s: int
    points: int
    first_s: int
    last_s: int


@dataclass(frozen=True)
class SourceHealth:
    """One source as of its last poll. `state`: up (all usable), degraded (values, but some calls failed or some
    values were rejected), down (nothing usable), unknown (never polled)."""

    name: str
    provider: str
    required: bool
    state: str
    polls: int
    last_poll_s: float | None
    last_success_s: float | None
    last_error_s: float | None
    last_error: str | None
    consecutive_failures: int
    rejected: tuple[tuple[str, int], ...]  # (reason, count) since start, sorted by reason
    last_rejection: str | None
    values: tuple[HeldValue, ...]  # the last value this source gave per zone and column
    forecasts: tuple[ForecastSummary, ...]

    @property
    def up(self) -> bool:
        return self.state in (UP, DEGRADED)

    @property
    def rejected_total(self) -> int:
        return sum(count for _, count in self.rejected)


@dataclass(frozen=True)
class SignalsStatus:
    """Every source's health and every held value, at `at_s` (control clock); `revision` grows on any change."""

    at_s: float
    revision: int
    sources: tuple[SourceHealth, ...]
    held: tuple[HeldValue, ...]


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


def check_reading(
    reading: Reading, now_s: float, held: HeldValue | None, max_age_s: float, max_skew_s: float
) -> tuple[str, str]:
    """('accept' | 'unchanged' | a rejection reason, detail) for one reading against what the store holds."""
    value, column = reading.value, reading.column
    where = f"{reading.zone} {column} = {value!r}"
    if column not in COLUMN_UNITS:
        return "unknown_column", f"{where}: no such column"
    if not math.isfinite(value):
        return "not_finite", f"{where}: not a finite number"
    if column in NON_NEGATIVE and value < 0:
        return "negative", f"{where}: cannot be negative"
    if column == "dr_level" and value not in (0.0, 1.0, 2.0, 3.0):
        return "out_of_range", f"{where}: a DR level is 0, 1, 2 or 3"
    ceiling = PLAUSIBLE_MAX.get(column)
    if ceiling is not None and value > ceiling:
        return "implausible", f"{where}: above {ceiling:g} {COLUMN_UNITS[column]} (a unit slip?)"
    age_s = now_s - reading.observed_at_s
    if age_s < -max_skew_s:
        return "future", f"{where}: stamped {iso(reading.observed_at_s)}, {-age_s:.0f} s after now"
    if age_s > max_age_s:
        return "stale", f"{where}: stamped {iso(reading.observed_at_s)}, {age_s:.0f} s old"
    if held is not None:
        if reading.observed_at_s < held.observed_at_s:
            return "older_than_held", f"{where}: stamped before the held value ({iso(held.observed_at_s)})"
        if reading.observed_at_s == held.observed_at_s and value == held.value:
            return "unchanged", where
    return "accept", where


class SignalStore:
    """Last good values of every live source, and their health. Satisfies router.trace.SignalReader."""

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

    # Reads (router.trace.SignalReader) ----------------------------------------------------------------

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


def _age(at_s: float, moment: float | None) -> float | None:
    return None if moment is None else round(at_s - moment, 1)


def _value_dict(value: HeldValue, at_s: float) -> dict[str, Any]:
    return {
        "zone": value.zone,
        "column": value.column,
        "value": value.value,
        "unit": COLUMN_UNITS.get(value.column, "?"),
        "observed_at": iso(value.observed_at_s),
        "age_s": _age(at_s, value.observed_at_s),
        "source": value.source,
    }


def health_to_dict(health: SourceHealth, at_s: float) -> dict[str, Any]:
    """Stable JSON form of one source's health (ages in seconds at `at_s`; no credential can be in it)."""
    return {
        "name": health.name,
        "provider": health.provider,
        "required": health.required,
        "state": health.state,
        "up": health.up,
        "polls": health.polls,
        "last_poll": None if health.last_poll_s is None else iso(health.last_poll_s),
        "last_success": None if health.last_success_s is None else iso(health.last_success_s),
        "last_success_age_s": _age(at_s, health.last_success_s),
        "last_error": health.last_error,
        "last_error_at": None if health.last_error_s is None else iso(health.last_error_s),
        "consecutive_failures": health.consecutive_failures,
        "rejected": dict(health.rejected),
        "rejected_total": health.rejected_total,
        "last_rejection": health.last_rejection,
        "values": [_value_dict(value, at_s) for value in health.values],
        "forecasts": [
            {
                "zone": f.zone,
                "column": f.column,
                "issued_at": iso(f.issued_at_s),
                "points": f.points,
                "from": iso(f.first_s),
                "to": iso(f.last_s),
            }
            for f in health.forecasts
        ],
    }


def status_to_dict(status: SignalsStatus) -> dict[str, Any]:
    """Stable JSON form of the store's status: sources' health and the held value of every zone and column."""
    return {
        "at": iso(status.at_s),
        "revision": status.revision,
        "sources": [health_to_dict(health, status.at_s) for health in status.sources],
        "held": [_value_dict(value, status.at_s) for value in status.held],
    }


def required_down(sources: Iterable[SourceHealth]) -> list[str]:
    """Names of required sources whose last poll got nothing usable (or that were never polled)."""
    return [health.name for health in sources if health.required and not health.up]
