"""Trace files: load the long-CSV grid trace contract into per-zone arrays and answer point-in-time queries."""

from __future__ import annotations

import gzip
import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from importlib import resources
from pathlib import Path
from typing import Protocol, TextIO

import numpy as np
import numpy.typing as npt

from fleet.errors import TraceFormatError
from fleet.signals import SIGNAL_COLUMNS, value_problem
from fleet.times import iso

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

MISSING_TOKENS = frozenset({"", "EMPTY", "MISSING", "NA", "N/A", "NAN", "NULL", "NONE"})
"""Cell values that mean "no measurement" (compared upper-case). They become NaN, never zero."""

_GZIP_MAGIC = b"\x1f\x8b"
_MAX_BAD_VALUES_KEPT = 100


@dataclass(frozen=True)
class Observation:
    """A signal value and when it was measured (epoch seconds, UTC)."""

    value: float
    observed_at_s: int


class SignalReader(Protocol):
    """What a fleet snapshot reads its signals from: a loaded Trace, or the live SignalStore fed by the poller."""

    def latest(self, zone: str, column: str, at_s: int) -> Observation | None:
        """The most recent value of `column` in `zone` known at `at_s`, with when it was measured; None if none."""
        ...

    def trailing_quantile(self, zone: str, column: str, at_s: int, lookback_s: int, quantile: float) -> float | None:
        """Quantile of `column` over (at_s - lookback_s, at_s]; None when the window holds no value."""
        ...


@dataclass(frozen=True)
class BadValue:
    """A cell that parsed but cannot be a real measurement; it was read as missing."""

    line: int
    column: str
    text: str
    reason: str


@dataclass
class ZoneSeries:
    """One zone's hourly (or any cadence) signals, sorted by time."""

    times_s: IntArray
    columns: dict[str, FloatArray]
    # For each row, the index of the latest row at or before it whose value is present (-1: none yet);
    # lets `latest` skip gaps in O(1) instead of scanning back.
    _last_present: dict[str, IntArray] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        positions = np.arange(len(self.times_s), dtype=np.int64)
        for name, values in self.columns.items():
            present = np.where(np.isnan(values), -1, positions)
            self._last_present[name] = np.maximum.accumulate(present) if len(present) else present

    def latest(self, column: str, at_s: int) -> Observation | None:
        """The most recent present value of `column` at or before `at_s`; None if there is none."""
        values = self.columns.get(column)
        if values is None:
            return None
        row = int(np.searchsorted(self.times_s, at_s, side="right")) - 1
        if row < 0:
            return None
        source_row = int(self._last_present[column][row])
        if source_row < 0:
            return None
        return Observation(float(values[source_row]), int(self.times_s[source_row]))

    def window(self, column: str, start_s: int, end_s: int) -> tuple[IntArray, FloatArray]:
        """Times and values (NaN where missing) of rows with start_s <= time <= end_s."""
        values = self.columns.get(column)
        if values is None:
            return np.empty(0, dtype=np.int64), np.empty(0, dtype=np.float64)
        lo = int(np.searchsorted(self.times_s, start_s, side="left"))
        hi = int(np.searchsorted(self.times_s, end_s, side="right"))
        return self.times_s[lo:hi], values[lo:hi]


@dataclass
class Trace:
    """A loaded trace: zones, the columns the file carries, and the bad cells it read as missing."""

    source: str
    zones: dict[str, ZoneSeries]
    columns: tuple[str, ...]
    bad_values: tuple[BadValue, ...] = ()
    bad_value_count: int = 0
    _quantile_cache: dict[tuple[str, str, int, int, float], float] = field(default_factory=dict, repr=False)

    def latest(self, zone: str, column: str, at_s: int) -> Observation | None:
        series = self.zones.get(zone)
        return None if series is None else series.latest(column, at_s)

    def trailing_quantile(self, zone: str, column: str, at_s: int, lookback_s: int, quantile: float) -> float | None:
        """Quantile of `column` over (at_s - lookback_s, at_s]; None when the window holds no value."""
        series = self.zones.get(zone)
        if series is None:
            return None
        # Cache on the row index, not the timestamp: every query inside the same hour hits one entry.
        row = int(np.searchsorted(series.times_s, at_s, side="right")) - 1
        key = (zone, column, row, lookback_s, quantile)
        if key in self._quantile_cache:
            cached = self._quantile_cache[key]
            return None if math.isnan(cached) else cached
        _, values = series.window(column, at_s - lookback_s + 1, at_s)
        present = values[~np.isnan(values)]
        result = float(np.quantile(present, quantile)) if len(present) else math.nan
        self._quantile_cache[key] = result
        return None if math.isnan(result) else result

    def span_s(self) -> tuple[int, int]:
        """First and last timestamp over all zones (epoch seconds)."""
        starts = [int(s.times_s[0]) for s in self.zones.values() if len(s.times_s)]
        ends = [int(s.times_s[-1]) for s in self.zones.values() if len(s.times_s)]
        if not starts:
            raise ValueError(f"{self.source}: trace holds no rows")
        return min(starts), max(ends)


DEFAULT_TRACE = "grid_2022.csv.gz"
"""The packaged trace a fleet replays when its signal source names none (the 2022 heat wave is in it)."""


def packaged_trace(name: str = DEFAULT_TRACE) -> Path:
    """Path of a trace shipped in `grid/data/traces` (see grid/data/README.md)."""
    return Path(str(resources.files("grid").joinpath("data", "traces", name)))


def _open_text(path: Path) -> TextIO:
    # Sniff gzip by magic bytes so a compressed file works whatever its name says.
    with path.open("rb") as probe:
        magic = probe.read(2)
    # utf-8-sig drops a BOM; newline=None folds CRLF into LF.
    if magic == _GZIP_MAGIC:
        return gzip.open(path, "rt", encoding="utf-8-sig", newline=None)
    return path.open("r", encoding="utf-8-sig", newline=None)


def load_trace(path: str | Path) -> Trace:
    """Load a trace file (gzip or plain CSV). Raises TraceFormatError with the line and reason."""
    file = Path(path)
    try:
        with _open_text(file) as text:
            return parse_trace(text, source=str(file))
    except OSError as error:
        raise TraceFormatError(str(file), 0, f"cannot read: {error}") from None
    except UnicodeDecodeError as error:
        raise TraceFormatError(str(file), 0, f"not UTF-8 text: {error.reason}") from None


def _numbered_lines(lines: Iterable[str]) -> Iterator[tuple[int, str]]:
    for number, line in enumerate(lines, start=1):
        yield number, line.rstrip("\r\n")


class _TimeParser:
    """Parses ISO-8601 UTC stamps; caches them because every zone repeats the same hours."""

    def __init__(self, source: str) -> None:
        self._source = source
        self._cache: dict[str, int] = {}

    def __call__(self, text: str, line: int) -> int:
        cached = self._cache.get(text)
        if cached is not None:
            return cached
        try:
            moment = datetime.fromisoformat(text)
        except ValueError:
            raise TraceFormatError(self._source, line, f"time: not an ISO-8601 time: {text!r}") from None
        if moment.tzinfo is None:
            raise TraceFormatError(
                self._source, line, f"time: {text!r} has no UTC offset (write e.g. 2022-09-07T01:00:00Z)"
            )
        seconds = int(moment.timestamp())
        self._cache[text] = seconds
        return seconds


def parse_trace(lines: Iterable[str], source: str = "<trace>") -> Trace:
    """Parse trace text (an iterable of lines). See `load_trace`."""
    numbered = _numbered_lines(lines)
    header: list[str] | None = None
    header_line = 0
    for number, line in numbered:
        if line.startswith("#") or not line.strip():
            continue
        header = [name.strip() for name in line.split(",")]
        header_line = number
        break
    if header is None:
        raise TraceFormatError(source, 0, "no header line: expected 'time,zone,<columns>'")
    if header[:2] != ["time", "zone"]:
        raise TraceFormatError(source, header_line, f"header must start with 'time,zone', got {header[:2]}")
    columns = header[2:]
    for name in columns:
        if name not in SIGNAL_COLUMNS:
            raise TraceFormatError(
                source, header_line, f"unknown column {name!r}; expected some of {list(SIGNAL_COLUMNS)}"
            )
    if len(set(columns)) != len(columns):
        raise TraceFormatError(source, header_line, f"duplicate column in header {columns}")

    parse_time = _TimeParser(source)
    width = len(header)
    rows: dict[str, tuple[list[int], list[int], list[list[float]]]] = {}
    bad: list[BadValue] = []
    bad_count = 0
    for number, line in numbered:
        if not line.strip() or line.startswith("#"):
            continue
        cells = line.split(",")
        if len(cells) != width:
            raise TraceFormatError(source, number, f"expected {width} fields ({','.join(header)}), got {len(cells)}")
        at_s = parse_time(cells[0].strip(), number)
        zone = cells[1].strip()
        if not zone:
            raise TraceFormatError(source, number, "zone: empty")
        times, line_numbers, values = rows.setdefault(zone, ([], [], [[] for _ in columns]))
        times.append(at_s)
        line_numbers.append(number)
        for position, name in enumerate(columns):
            text = cells[position + 2].strip()
            try:
                value, problem = _parse_cell(name, text)
            except ValueError as error:
                raise TraceFormatError(source, number, f"{name}: {error}") from None
            if problem is not None:
                bad_count += 1
                if len(bad) < _MAX_BAD_VALUES_KEPT:
                    bad.append(BadValue(number, name, text, problem))
            values[position].append(value)

    zones: dict[str, ZoneSeries] = {}
    for zone, (times, line_numbers, values) in rows.items():
        order = np.argsort(np.asarray(times, dtype=np.int64), kind="stable")
        sorted_times = np.asarray(times, dtype=np.int64)[order]
        repeated = np.nonzero(np.diff(sorted_times) == 0)[0]
        if len(repeated):
            first, second = sorted((line_numbers[int(order[repeated[0]])], line_numbers[int(order[repeated[0] + 1])]))
            raise TraceFormatError(
                source,
                second,
                f"duplicate row for zone {zone!r} at {iso(int(sorted_times[repeated[0]]))} (first at line {first})",
            )
        zones[zone] = ZoneSeries(
            times_s=sorted_times,
            columns={name: np.asarray(values[i], dtype=np.float64)[order] for i, name in enumerate(columns)},
        )
    if not zones:
        raise TraceFormatError(source, header_line, "no data rows after the header")
    return Trace(source, zones, tuple(columns), tuple(bad), bad_count)


def _parse_cell(column: str, text: str) -> tuple[float, str | None]:
    """Value and, when the number cannot be a real measurement, why (it is then read as missing).

    Missing tokens are NaN with no problem. Text that is not a number at all, or a value off a fixed scale (a
    dr_level other than 0..3), raises ValueError: that is a broken file (shifted columns, an operator's typo), not a
    meter glitch. Which values can be real is the signal table's to say (fleet/signals.py).
    """
    if text.upper() in MISSING_TOKENS:
        return math.nan, None
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"not a number: {text!r}") from None
    problem = value_problem(column, value)
    if problem is None:
        return value, None
    reason, explanation = problem
    if reason == "out_of_range":
        raise ValueError(f"{explanation}, got {text!r}")
    if reason == "not_finite":
        return math.nan, f"not finite: {text!r}"
    if reason == "negative":
        return math.nan, f"negative {column}: {text}"
    return math.nan, f"{reason} {column}: {text}"
