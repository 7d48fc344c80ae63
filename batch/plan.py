"""Input planning (pure): cut each input file into units, the job's unit of gating and commit, with stable row ids.

A unit is a byte range of a line-based file (text, JSON lines, CSV) or a run of Parquet row groups. Row ids are
global and consecutive, in file order then row order, so the same input always gives the same units and ids, and
a unit's ids are the range [first_row, first_row + rows). Planning reads each line-based file once, to number its
rows; a rerun reads the plan back from the output folder and never plans (or reads committed input) again.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import numpy as np
import numpy.typing as npt

NEWLINE = 10
_WHITESPACE = np.array([ord(c) for c in " \t\r\n\f\v"], dtype=np.uint8)


class InputFormat(StrEnum):
    """How rows are read from a file (column `text`; one JSON object a line; CSV with a header; Parquet)."""

    TEXT = "text"
    JSONL = "jsonl"
    CSV = "csv"
    PARQUET = "parquet"


SUFFIXES: dict[str, InputFormat] = {
    ".txt": InputFormat.TEXT,
    ".text": InputFormat.TEXT,
    ".jsonl": InputFormat.JSONL,
    ".ndjson": InputFormat.JSONL,
    ".json": InputFormat.JSONL,
    ".csv": InputFormat.CSV,
    ".parquet": InputFormat.PARQUET,
    ".pq": InputFormat.PARQUET,
}
"""File suffix (after any compression suffix is refused) -> format, when the job does not name one."""


def format_for(path: str) -> InputFormat | None:
    """The format a file's suffix implies; None when the suffix is unknown."""
    name = path.rsplit("/", 1)[-1].lower()
    suffix = name[name.rfind(".") :] if "." in name else ""
    return SUFFIXES.get(suffix)


@dataclass(frozen=True)
class Unit:
    """One unit of work: rows [first_row, first_row + rows) of the job, read from `file` (an index into the plan's
    files) at bytes [start, end) for line-based formats, or row groups [start, end) for Parquet."""

    index: int
    file: int
    start: int
    end: int
    first_row: int
    rows: int


@dataclass(frozen=True)
class InputPlan:
    """Every unit of a job's input. `header` is a CSV file's header line per file (None for other formats)."""

    format: InputFormat
    files: tuple[str, ...]
    sizes: tuple[int, ...]
    units: tuple[Unit, ...]
    headers: tuple[str | None, ...]

    @property
    def rows(self) -> int:
        return sum(unit.rows for unit in self.units)

    @property
    def starts(self) -> npt.NDArray[np.int64]:
        """Each unit's first row id, ascending: `searchsorted` maps a row id to its unit."""
        return np.fromiter((unit.first_row for unit in self.units), dtype=np.int64, count=len(self.units))

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": self.format.value,
            "files": list(self.files),
            "sizes": list(self.sizes),
            "headers": list(self.headers),
            "units": [[u.index, u.file, u.start, u.end, u.first_row, u.rows] for u in self.units],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> InputPlan:
        return cls(
            format=InputFormat(data["format"]),
            files=tuple(str(f) for f in data["files"]),
            sizes=tuple(int(s) for s in data["sizes"]),
            units=tuple(Unit(*(int(v) for v in row)) for row in data["units"]),
            headers=tuple(None if h is None else str(h) for h in data["headers"]),
        )


@dataclass(frozen=True)
class FileCut:
    """One file's cut: its row-bearing byte ranges (or row-group ranges) and their row counts, before numbering."""

    ranges: tuple[tuple[int, int, int], ...]  # (start, end, rows)
    header: str | None = None


def row_mask(
    data: npt.NDArray[np.uint8], starts: npt.NDArray[np.int64], ends: npt.NDArray[np.int64], kind: InputFormat
) -> npt.NDArray[np.bool_]:
    """Which lines [starts[i], ends[i]) (newline excluded) are rows: every line of a text file; JSON lines and CSV
    skip blank lines (whitespace only for JSON, empty for CSV, as pyarrow's readers do)."""
    if kind is InputFormat.TEXT:
        return np.ones(len(starts), dtype=np.bool_)
    if kind is InputFormat.CSV:
        # An empty line, or one holding only the carriage return of a CRLF ending.
        lengths = ends - starts
        cr_only = (lengths == 1) & (data[np.maximum(ends - 1, 0)] == ord("\r"))
        rows: npt.NDArray[np.bool_] = (lengths > 0) & ~cr_only
        return rows
    solid = np.flatnonzero(~np.isin(data, _WHITESPACE)).astype(np.int64)
    if not len(solid):
        return np.zeros(len(starts), dtype=np.bool_)
    # A line is a row when some non-whitespace byte falls inside it.
    first_solid = np.searchsorted(solid, starts, side="left")
    inside: npt.NDArray[np.bool_] = (first_solid < len(solid)) & (solid[np.minimum(first_solid, len(solid) - 1)] < ends)
    return inside


def cut_lines(chunks: Iterable[bytes], kind: InputFormat, block_rows: int) -> FileCut:
    """Cut a line-based file, read as consecutive chunks, into byte ranges of `block_rows` rows each (the last may
    hold fewer). A CSV file's first non-empty line is its header, kept apart. Lines are separated by \\n; a last
    line without one still counts."""
    if block_rows <= 0:
        raise ValueError("block_rows must be positive")
    ranges: list[tuple[int, int, int]] = []
    header: str | None = None
    range_start: int | None = None
    range_rows = 0

    def take(
        data: npt.NDArray[np.uint8],
        base: int,
        starts: npt.NDArray[np.int64],
        ends: npt.NDArray[np.int64],
        after: npt.NDArray[np.int64],
    ) -> None:
        # `starts`/`ends` bound each line's content (relative to `data`, which begins at file offset `base`);
        # `after` is the offset just past its terminator, where the next line begins.
        nonlocal header, range_start, range_rows
        for position in np.flatnonzero(row_mask(data, starts, ends, kind)):
            if kind is InputFormat.CSV and header is None:
                header = bytes(data[int(starts[position]) : int(ends[position])]).decode("utf-8").rstrip("\r")
                continue
            if range_start is None:
                range_start = base + int(starts[position])
            range_rows += 1
            if range_rows == block_rows:
                ranges.append((range_start, base + int(after[position]), range_rows))
                range_start, range_rows = None, 0

    carry = b""
    carry_start = 0
    for chunk in chunks:
        if not chunk:
            continue
        buffer = carry + chunk
        data = np.frombuffer(buffer, dtype=np.uint8)
        newlines = np.flatnonzero(data == NEWLINE).astype(np.int64)
        if not len(newlines):
            carry = buffer
            continue
        starts = np.concatenate((np.zeros(1, dtype=np.int64), newlines[:-1] + 1))
        take(data, carry_start, starts, newlines, newlines + 1)
        cut = int(newlines[-1]) + 1
        carry, carry_start = buffer[cut:], carry_start + cut
    end_of_file = carry_start + len(carry)
    if carry:
        last = np.array([len(carry)], dtype=np.int64)
        take(np.frombuffer(carry, dtype=np.uint8), carry_start, np.zeros(1, dtype=np.int64), last, last)
    if range_start is not None:
        ranges.append((range_start, end_of_file, range_rows))
    return FileCut(tuple(ranges), header)


def cut_row_groups(row_group_rows: Sequence[int], block_rows: int) -> FileCut:
    """Parquet: consecutive row groups joined until a unit holds at least `block_rows` rows (a row group is never
    split: it is the smallest piece Parquet reads)."""
    ranges: list[tuple[int, int, int]] = []
    start, rows = 0, 0
    for index, count in enumerate(row_group_rows):
        rows += count
        if rows >= block_rows:
            ranges.append((start, index + 1, rows))
            start, rows = index + 1, 0
    if start < len(row_group_rows) and rows > 0:
        ranges.append((start, len(row_group_rows), rows))
    return FileCut(tuple(ranges))


FINE_ROWS = 256
"""Files are first cut this fine, then cuts are joined into units of the job's size (chosen once the rows are known).
Fine enough that a joined unit lands within a quarter of the smallest automatic size: at 1,024 a job of 20,000 rows
asking for 1,250-row units got 2,048-row ones, half as many units as planned, and a model pipeline's last unit left
one of its two actors idle for up to ten seconds."""
AUTO_UNITS_PER_WORKER = 8
AUTO_MIN_ROWS, AUTO_MAX_ROWS = 1024, 16_384


def auto_block_rows(rows: int, workers: int) -> int:
    """Rows per unit when the job names none: about eight units per worker, so the stream stays parallel and a pause
    waits for little, within [1,024, 16,384]: a unit costs the engine a few milliseconds whatever its size, and a
    unit of a heavy pipeline (a model) should still finish in seconds."""
    per_unit = -(-rows // max(1, AUTO_UNITS_PER_WORKER * workers))
    return max(AUTO_MIN_ROWS, min(AUTO_MAX_ROWS, per_unit))


TAPER_UNITS_PER_WORKER = 2
"""Near its end an automatically sized job's units shrink to the rows left over this many units per worker..."""
TAPER_MIN_SHARE = 4
"""...down to a quarter of the job's unit size: every unit costs the engine a few milliseconds and two files, which a
trivial pipeline feels, and a quarter-unit tail already keeps a model pipeline's idle worker to seconds."""


def join_units(cuts: Sequence[FileCut], block_rows: int, taper_workers: int | None = None) -> list[FileCut]:
    """Join each file's consecutive fine cuts into ranges of at least `block_rows` rows (a file's last may hold
    fewer); the ranges are contiguous in the file, so a joined range reads the same rows as its parts.

    With `taper_workers`, units shrink toward the end of the job (guided self-scheduling): a unit closes once it holds
    the rows still left over TAPER_UNITS_PER_WORKER units per worker, when that is under `block_rows` (and no
    fewer than a TAPER_MIN_SHARE-th of it). Workers then
    run out of input together: with units of equal size, the last one can leave every other worker idle for a whole
    unit's time, seconds of a model pipeline."""
    remaining = sum(rows for cut in cuts for _, _, rows in cut.ranges)
    spread = None if taper_workers is None else TAPER_UNITS_PER_WORKER * max(1, taper_workers)
    floor = max(1, block_rows // TAPER_MIN_SHARE)
    joined_files: list[FileCut] = []
    for cut in cuts:
        joined: list[tuple[int, int, int]] = []
        start, end, rows = -1, -1, 0
        for part_start, part_end, part_rows in cut.ranges:
            if rows == 0:
                start = part_start
            end, rows = part_end, rows + part_rows
            target = block_rows if spread is None else min(block_rows, max(floor, -(-remaining // spread)))
            if rows >= target:
                joined.append((start, end, rows))
                remaining -= rows
                rows = 0
        if rows:
            joined.append((start, end, rows))
            remaining -= rows
        joined_files.append(FileCut(tuple(joined), cut.header))
    return joined_files


def number_units(kind: InputFormat, files: Sequence[str], sizes: Sequence[int], cuts: Sequence[FileCut]) -> InputPlan:
    """Give every range a unit index and its first row id, in file order."""
    units: list[Unit] = []
    first_row = 0
    for file_index, cut in enumerate(cuts):
        for start, end, rows in cut.ranges:
            units.append(Unit(len(units), file_index, start, end, first_row, rows))
            first_row += rows
    return InputPlan(kind, tuple(files), tuple(sizes), tuple(units), tuple(cut.header for cut in cuts))


def plan_summary(plan: InputPlan) -> dict[str, Any]:
    """What status shows of a plan: its size, not its units."""
    return {"format": plan.format.value, "files": len(plan.files), "units": len(plan.units), "rows": plan.rows}
