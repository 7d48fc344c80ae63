"""Readers for the raw EIA-930 demand, forecast, fuel-mix carbon and price files of the shared data."""

from __future__ import annotations

import gzip
import math
import re
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from os import PathLike
from pathlib import Path
from typing import Final

import numpy as np
import numpy.typing as npt

from fleet.errors import TraceFormatError

__all__ = [
    "CARBON_MAX_G_PER_KWH",
    "FORECAST_RATIO_MAX",
    "FORECAST_RATIO_MIN",
    "GLOBAL_OUTLIER_FACTOR",
    "MISSING_TOKENS",
    "SPIKE_FACTOR",
    "RawSeries",
    "forecast_blanked_lines",
    "read_demand",
    "read_demand_with_forecast",
    "read_fuelmix_carbon",
    "read_price",
]

StrPath = str | PathLike[str]

# Tokens the upstream files use for "no value". They become NaN and are listed in
# missing_lines; anything else that is not a number is a structural error, because a
# silently-accepted typo would be indistinguishable from a real gap.
MISSING_TOKENS: Final[frozenset[str]] = frozenset({"", "EMPTY", "MISSING", "NA", "NaN", "nan"})

# Demand at or above this multiple of the file's median is rejected. This is step 1 of the
# screening that produced the cleaned files themselves (Ruggles et al. 2020, "global demand
# filter", 10x the median): it removes values such as PJM's 2,147,480,000 MW on
# 2021-10-19 (an int32-overflow sentinel) without touching any real peak (the highest real
# peak in these files is below 3x the median).
GLOBAL_OUTLIER_FACTOR: Final[float] = 10.0

# A demand value more than this factor above both neighbouring hours, or below both by the
# same factor, is a single-hour reporting glitch: a balancing authority's load does not jump
# by half and come back within two hours (e.g. AZPS 4,169 -> 9,331 -> 4,403 MW on
# 2021-07-14, which would otherwise set AZPS's yearly peak). In the well-behaved files no
# hour differs from both neighbours by more than 1.1x (BPAT: 1.2x), the 2022 California heat
# wave included.
SPIKE_FACTOR: Final[float] = 1.5

# A balancing authority's average intensity cannot exceed that of its dirtiest plant, and
# even lignite stays near 1,100-1,200 gCO2/kWh; 2,000 leaves a wide margin.
CARBON_MAX_G_PER_KWH: Final[float] = 2000.0

# A day-ahead forecast off by more than a factor of two from the (cleaned) demand of the
# same hour is not a forecast error but a different quantity. In the 2015-2019 files real
# forecasts stay within 0.83..1.43 of demand, while PJM's first values of July 2015 sit at
# 0.32..0.42 (whatever they forecast, it is not PJM's load), so the band separates the two
# cleanly.
FORECAST_RATIO_MIN: Final[float] = 0.5
FORECAST_RATIO_MAX: Final[float] = 2.0

_RAW_DEMAND_HEADER: Final = ("date_time", "demand (MW)")
_CLEANED_DEMAND_HEADER: Final = ("date_time", "raw demand (MW)", "category", "cleaned demand (MW)")
_FORECAST_HEADER: Final = (
    "date_time",
    "raw demand (MW)",
    "category",
    "cleaned demand (MW)",
    "forecast demand (MW)",
)
_FUELMIX_HEADER: Final = ("timestamp", "WND", "SUN", "WAT", "OIL", "NG", "COL", "NUC", "OTH", "avg_CI")
_PRICE_HEADER: Final = ("Datetime (UTC)", "Datetime (Local)", "Price (USD/MWh)")

# The cleaned-demand files label every hour; only this label means "measured and not flagged".
_OKAY: Final = "OKAY"

_GZIP_MAGIC: Final = b"\x1f\x8b"
# Strict on purpose: Python's float() also accepts "1_000", " 12 " and "nan", which would
# let malformed cells through.
_NUMBER: Final = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?|[+-]?(?:inf|infinity)", re.IGNORECASE)
_STAMP: Final = re.compile(r"(\d{4})-(\d{2})-(\d{2})[ T](\d{2}):(\d{2}):(\d{2})(Z|[+-]\d{2}:\d{2})?")


@dataclass(frozen=True, eq=False)
class RawSeries:
    """One hourly series read from a raw file; NaN marks a missing or rejected value, never 0."""

    times: npt.NDArray[np.int64]
    """Epoch seconds, UTC, strictly increasing."""
    values: npt.NDArray[np.float64]
    """Same length as times; NaN where the file had no usable value."""
    source: str
    """The file the series was read from."""
    missing_lines: tuple[int, ...]
    """1-based file line numbers whose value was missing or rejected, ascending."""
    unit: str
    """Unit of values, e.g. "MW"."""

    def __post_init__(self) -> None:
        # Copies made read-only so that "frozen" holds for the arrays too, without
        # changing the flags of arrays the caller still owns.
        times = np.array(self.times, copy=True)
        values = np.array(self.values, copy=True)
        if times.dtype != np.int64 or values.dtype != np.float64:
            raise TypeError(f"RawSeries needs int64 times, float64 values: got {times.dtype}, {values.dtype}")
        if times.ndim != 1 or times.shape != values.shape:
            raise ValueError(f"RawSeries needs 1-D times and values of one length: {times.shape}, {values.shape}")
        if times.size > 1 and not bool(np.all(np.diff(times) > 0)):
            raise ValueError("RawSeries times must be strictly increasing")
        if int(np.count_nonzero(np.isnan(values))) != len(self.missing_lines):
            raise ValueError("RawSeries needs exactly one missing line per NaN value")
        times.setflags(write=False)
        values.setflags(write=False)
        object.__setattr__(self, "times", times)
        object.__setattr__(self, "values", values)
        object.__setattr__(self, "missing_lines", tuple(self.missing_lines))


def read_demand(path: StrPath) -> RawSeries:
    """Read a ``*_raw_demand`` file or a ``*_cleaned_demand`` file into hourly demand in MW.

    Of a cleaned file only the raw column is used, and only where the category is ``OKAY``:
    the cleaned column is partly imputed, and traces carry measured values only.
    Non-positive demand, demand at or above ``GLOBAL_OUTLIER_FACTOR`` times the file's
    median and isolated single-hour spikes or dips (``SPIKE_FACTOR``) are rejected (NaN,
    listed in missing_lines).
    """
    source, lines = _read_lines(path)
    cleaned = lines[0] == ",".join(_CLEANED_DEMAND_HEADER)
    # Anything that is not the cleaned layout must be the raw one; _rows reports a mismatch.
    expected = _CLEANED_DEMAND_HEADER if cleaned else _RAW_DEMAND_HEADER
    builder = _SeriesBuilder(source)
    for lineno, fields in _rows(source, lines, expected):
        value = _parse_value(source, lineno, expected[1], fields[1])
        if cleaned and fields[2] != _OKAY:
            value = None
        builder.add(lineno, fields[0], value)
    values = builder.values()
    _reject_implausible_demand(values)
    return builder.series(values, "MW")


def read_demand_with_forecast(path: StrPath) -> tuple[RawSeries, RawSeries]:
    """Read a 2015-2019 balancing-authority file into (demand, day-ahead forecast), both MW.

    Demand follows the rules of ``read_demand`` for cleaned files. A forecast is rejected when
    it is not positive or when forecast / cleaned demand of the same hour falls outside
    ``FORECAST_RATIO_MIN``..``FORECAST_RATIO_MAX``; ``forecast_blanked_lines`` lists the
    lines that this ratio rule blanked.
    """
    demand, forecast, _ = _read_forecast_file(path)
    return demand, forecast


def forecast_blanked_lines(path: StrPath) -> tuple[int, ...]:
    """Lines of a 2015-2019 file whose forecast was a number but failed the ratio rule."""
    return _read_forecast_file(path)[2]


def read_fuelmix_carbon(path: StrPath) -> RawSeries:
    """Read the average carbon intensity (``avg_CI``, gCO2/kWh) of a ``*_NG_avgCI_2022`` file."""
    source, lines = _read_lines(path)
    builder = _SeriesBuilder(source)
    for lineno, fields in _rows(source, lines, _FUELMIX_HEADER):
        # The generation columns are not used, but parsing them catches shifted or garbled
        # rows that would otherwise yield a plausible-looking but wrong avg_CI.
        for column, token in zip(_FUELMIX_HEADER[1:-1], fields[1:-1], strict=True):
            _parse_value(source, lineno, column, token)
        builder.add(lineno, fields[0], _parse_value(source, lineno, _FUELMIX_HEADER[-1], fields[-1]))
    values = builder.values()
    with np.errstate(invalid="ignore"):
        values[~np.isfinite(values) | (values < 0.0) | (values > CARBON_MAX_G_PER_KWH)] = np.nan
    return builder.series(values, "gCO2/kWh")


def read_price(path: StrPath) -> RawSeries:
    """Read an hourly wholesale price file (USD/MWh); negative prices are real and kept."""
    source, lines = _read_lines(path)
    builder = _SeriesBuilder(source)
    for lineno, fields in _rows(source, lines, _PRICE_HEADER):
        utc = _parse_time(source, lineno, fields[0])
        # The local column is redundant; checking that it names the same instant catches
        # files whose UTC column was written in local time.
        local = _parse_time(source, lineno, fields[1])
        if local != utc:
            raise TraceFormatError(source, lineno, f"local {fields[1]!r} is not the instant {fields[0]!r}")
        builder.add(lineno, fields[0], _parse_value(source, lineno, _PRICE_HEADER[2], fields[2]), utc)
    values = builder.values()
    # Any finite price is possible (negative prices occur with surplus renewables).
    values[~np.isfinite(values)] = np.nan
    return builder.series(values, "USD/MWh")


# --------------------------------------------------------------------------------------
# internals


class _SeriesBuilder:
    """Collects (line, time, value) rows and enforces strictly increasing timestamps."""

    def __init__(self, source: str) -> None:
        self.source = source
        self._times: list[int] = []
        self._values: list[float] = []
        self._lines: list[int] = []

    def add(self, lineno: int, stamp: str, value: float | None, time: int | None = None) -> None:
        t = _parse_time(self.source, lineno, stamp) if time is None else time
        if self._times and t <= self._times[-1]:
            previous = self._lines[-1]
            if t == self._times[-1]:
                reason = f"duplicate timestamp {stamp!r} (also on line {previous})"
            else:
                reason = f"timestamp {stamp!r} is earlier than the one on line {previous}"
            raise TraceFormatError(self.source, lineno, reason)
        self._times.append(t)
        self._values.append(math.nan if value is None else value)
        self._lines.append(lineno)

    def lines(self) -> npt.NDArray[np.int64]:
        return np.array(self._lines, dtype=np.int64)

    def values(self) -> npt.NDArray[np.float64]:
        return np.array(self._values, dtype=np.float64)

    def series(self, values: npt.NDArray[np.float64], unit: str) -> RawSeries:
        missing = tuple(int(x) for x in self.lines()[np.isnan(values)])
        return RawSeries(
            times=np.array(self._times, dtype=np.int64),
            values=values,
            source=self.source,
            missing_lines=missing,
            unit=unit,
        )


def _read_forecast_file(path: StrPath) -> tuple[RawSeries, RawSeries, tuple[int, ...]]:
    source, lines = _read_lines(path)
    demand_rows = _SeriesBuilder(source)
    forecast_rows = _SeriesBuilder(source)
    reference: list[float] = []
    for lineno, fields in _rows(source, lines, _FORECAST_HEADER):
        time = _parse_time(source, lineno, fields[0])
        demand = _parse_value(source, lineno, _FORECAST_HEADER[1], fields[1])
        if fields[2] != _OKAY:
            demand = None
        cleaned = _parse_value(source, lineno, _FORECAST_HEADER[3], fields[3])
        forecast = _parse_value(source, lineno, _FORECAST_HEADER[4], fields[4])
        demand_rows.add(lineno, fields[0], demand, time)
        forecast_rows.add(lineno, fields[0], forecast, time)
        reference.append(math.nan if cleaned is None else cleaned)

    demand_values = demand_rows.values()
    _reject_implausible_demand(demand_values)

    forecast_values = forecast_rows.values()
    with np.errstate(invalid="ignore"):
        forecast_values[~np.isfinite(forecast_values) | (forecast_values <= 0.0)] = np.nan
    # The cleaned column is the reference because it exists for every hour (imputed where
    # the raw value is missing or flagged), so every forecast can be judged. Where it is
    # absent too, the forecast is kept: there is nothing to judge it against.
    ref = np.array(reference, dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        ratio = forecast_values / ref
        judged = np.isfinite(ratio) & (ref > 0.0)
        blank = judged & ((ratio < FORECAST_RATIO_MIN) | (ratio > FORECAST_RATIO_MAX))
    forecast_values[blank] = np.nan
    blanked = tuple(int(x) for x in forecast_rows.lines()[blank])
    return demand_rows.series(demand_values, "MW"), forecast_rows.series(forecast_values, "MW"), blanked


def _reject_implausible_demand(values: npt.NDArray[np.float64]) -> None:
    """Set non-positive, non-finite, global-outlier and single-hour-spike demand to NaN, in place."""
    with np.errstate(invalid="ignore"):
        # A whole balancing authority never draws zero or negative power: such values are
        # reporting failures (NYIS reports 0 MW in 2024, AZPS -21,897 MW in 2023).
        values[~np.isfinite(values) | (values <= 0.0)] = np.nan
        if np.all(np.isnan(values)):
            return
        median = float(np.nanmedian(values))
        values[values >= GLOBAL_OUTLIER_FACTOR * median] = np.nan
        # Judged against both neighbours as they stand after the rules above, and only where
        # both exist: next to a gap there is no second witness.
        before = np.concatenate(([np.nan], values[:-1]))
        after = np.concatenate((values[1:], [np.nan]))
        spike = (values > SPIKE_FACTOR * np.fmax(before, after)) | (values * SPIKE_FACTOR < np.fmin(before, after))
        values[spike & np.isfinite(before) & np.isfinite(after)] = np.nan


def _read_lines(path: StrPath) -> tuple[str, list[str]]:
    """Return (source, lines): decompressed if gzip, BOM and CR removed, final newline dropped."""
    source = str(path)
    raw = Path(path).read_bytes()
    # Detected by content rather than by name: a renamed or re-compressed file still reads.
    if raw[:2] == _GZIP_MAGIC:
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError, zlib.error) as exc:
            raise TraceFormatError(source, 1, f"corrupt gzip stream: {exc}") from exc
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        raise TraceFormatError(source, line, f"not valid UTF-8: {exc.reason}") from exc
    text = text.removeprefix("\ufeff")
    lines = text.split("\n")
    if lines[-1] == "":
        lines.pop()
    # The demand files use CRLF; only the line terminator is stripped, so a stray CR
    # inside a line still fails parsing instead of being silently hidden.
    lines = [line.removesuffix("\r") for line in lines]
    if not lines:
        raise TraceFormatError(source, 1, "empty file: no header")
    return source, lines


def _rows(source: str, lines: Sequence[str], header: tuple[str, ...]) -> Iterator[tuple[int, list[str]]]:
    """Check the header, then yield (1-based line number, fields) of each data row."""
    if lines[0] != ",".join(header):
        raise TraceFormatError(source, 1, f"unexpected header {lines[0]!r}, expected {','.join(header)!r}")
    for lineno, line in enumerate(lines[1:], start=2):
        fields = line.split(",")
        if len(fields) != len(header):
            raise TraceFormatError(source, lineno, f"expected {len(header)} fields, got {len(fields)}")
        yield lineno, fields


def _parse_value(source: str, lineno: int, column: str, token: str) -> float | None:
    """Return the number in token, or None for a known missing token."""
    if token in MISSING_TOKENS:
        return None
    if _NUMBER.fullmatch(token) is None:
        raise TraceFormatError(source, lineno, f"not a number in column {column!r}: {token!r}")
    return float(token)


def _parse_time(source: str, lineno: int, token: str) -> int:
    """Parse ``YYYY-MM-DD HH:MM:SS[Z|+HH:MM]`` to epoch seconds; no offset means UTC."""
    match = _STAMP.fullmatch(token)
    if match is None:
        raise TraceFormatError(source, lineno, f"bad timestamp {token!r}")
    year, month, day, hour, minute, second = (int(match.group(i)) for i in range(1, 7))
    try:
        instant = datetime(year, month, day, hour, minute, second, tzinfo=UTC)
    except ValueError as exc:
        raise TraceFormatError(source, lineno, f"bad timestamp {token!r}: {exc}") from exc
    seconds = int(instant.timestamp())
    offset = match.group(7)
    if offset is not None and offset != "Z":
        off_hours, off_minutes = int(offset[1:3]), int(offset[4:6])
        if off_hours > 23 or off_minutes > 59:
            raise TraceFormatError(source, lineno, f"bad timestamp {token!r}: offset out of range")
        sign = 1 if offset[0] == "+" else -1
        seconds -= sign * (off_hours * 3600 + off_minutes * 60)
    return seconds
