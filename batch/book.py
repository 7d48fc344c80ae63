"""The job's book (pure): which units may start (the grid gate inside the stream), which rows of each unit have been
written, when a unit is complete, and every way a pipeline can break the row contract.

Segments: the runner streams the remaining units in segments, each built with the knobs in force when it starts.
While a segment is open, each read task asks `admit` before reading its unit, and is told to go, to wait (the
segment already has its window of units in flight: reading is cheap, so without this bound every unit would be read
at once and queue ahead of the workers, out of reach of a pause), or to skip. Closing the segment (a pause, or new
knobs) makes every later `admit` answer skip, so no new input enters while the blocks in flight finish and commit.
Bitmaps track rows per unit: a unit commits once every one of its row ids has been written exactly once.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

import numpy as np
import numpy.typing as npt

from fleet.errors import GridshiftError


@dataclass(frozen=True)
class Piece:
    """A staged file holding some rows of one unit."""

    staged: str  # relative to the output folder
    rows: int
    first_row: int  # smallest row id in it: orders a unit's pieces deterministically


class Admission(StrEnum):
    """A read task's answer: read the unit now, ask again shortly, or leave it to a later segment."""

    GO = "go"
    WAIT = "wait"
    SKIP = "skip"


class PipelineError(GridshiftError):
    """The team's transform broke the contract: it must return each input row once, with its row_id."""


@dataclass
class _UnitRows:
    written: npt.NDArray[np.bool_]
    pieces: dict[tuple[int, int, int], Piece] = field(default_factory=dict)  # (first, last, count) -> piece
    redone: bool = False


@dataclass(frozen=True)
class PieceVerdict:
    """What the writer of a piece does next: commit the unit (its pieces are all here), nothing yet, or drop the
    piece (the unit is already committed, or is being redone)."""

    commit: tuple[Piece, ...] | None
    drop: bool = False


class JobBook:
    """One run's view of a job's units: admissions, written rows, commits."""

    def __init__(self) -> None:
        self.load(np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64), set())

    def load(self, first_rows: npt.NDArray[np.int64], unit_rows: npt.NDArray[np.int64], committed: set[int]) -> None:
        """Take the job's units (first row id and rows of each) and those already committed."""
        self.first_rows = first_rows
        self.unit_rows = unit_rows
        self.committed: set[int] = set(committed)
        self.segment = 0
        self.window = 1
        self.open = False
        self.close_reason = ""
        self.admitted: dict[int, set[int]] = {}  # segment -> units admitted
        self.redo: set[int] = set()  # units whose pieces were dropped: they run again in a later segment
        self._rows: dict[int, _UnitRows] = {}
        self.rows_committed = int(sum(int(unit_rows[u]) for u in committed))
        self.admit_times: dict[int, list[float]] = {}
        self.closed_at: dict[int, float] = {}

    # The gate ------------------------------------------------------------------------------------------------------

    def start_segment(self, segment: int, window: int) -> None:
        """Open `segment`, letting at most `window` of its units be in flight (admitted, not yet committed)."""
        self.segment, self.window, self.open, self.close_reason = segment, max(1, window), True, ""
        self.admitted.setdefault(segment, set())

    def close_segment(self, reason: str, now_s: float) -> None:
        if self.open:
            self.open, self.close_reason = False, reason
            self.closed_at[self.segment] = now_s

    def admit(self, segment: int, unit: int, now_s: float) -> Admission:
        """May the read task of `unit` in `segment` read it now: go, wait (ask again shortly), or skip (the segment
        closed, a newer one started, or the unit is committed)."""
        if segment != self.segment or not self.open or unit in self.committed:
            return Admission.SKIP
        admitted = self.admitted[segment]
        if unit not in admitted:
            if len(admitted - self.committed - self.redo) >= self.window:
                return Admission.WAIT
            admitted.add(unit)
            self.admit_times.setdefault(segment, []).append(now_s)
        return Admission.GO

    def in_flight(self) -> int:
        return len(self.admitted.get(self.segment, set()) - self.committed - self.redo)

    # Rows and commits ----------------------------------------------------------------------------------------------

    def add_piece(self, unit: int, row_ids: npt.NDArray[np.int64], piece: Piece) -> PieceVerdict:
        """Record a staged piece of `unit` holding `row_ids` (already checked to lie in the unit, once each)."""
        if unit in self.committed:
            return PieceVerdict(None, drop=True)
        first, rows = int(self.first_rows[unit]), int(self.unit_rows[unit])
        book = self._rows.setdefault(unit, _UnitRows(np.zeros(rows, dtype=np.bool_)))
        key = (int(row_ids.min()), int(row_ids.max()), len(row_ids))
        offsets = row_ids - first
        if key in book.pieces:
            # A retried task wrote the same rows again: the newer piece replaces the older.
            book.pieces[key] = piece
        elif book.written[offsets].any():
            twice = np.sort(row_ids[book.written[offsets]])[:5].tolist()
            if book.redone:
                raise PipelineError(f"pipeline returned row(s) {twice} of unit {unit} more than once")
            # Rows seen twice in differently cut pieces: most likely a retried task whose block was cut anew, so the
            # unit runs once more from scratch; a second time means the pipeline itself doubles rows.
            del self._rows[unit]
            self._rows[unit] = _UnitRows(np.zeros(rows, dtype=np.bool_), redone=True)
            self.redo.add(unit)
            return PieceVerdict(None, drop=True)
        else:
            book.written[offsets] = True
            book.pieces[key] = piece
        if unit in self.redo:
            return PieceVerdict(None, drop=True)
        if book.written.all():
            return PieceVerdict(tuple(book.pieces.values()))
        return PieceVerdict(None)

    def mark_committed(self, unit: int) -> None:
        if unit not in self.committed:
            self.committed.add(unit)
            self.rows_committed += int(self.unit_rows[unit])
        self._rows.pop(unit, None)
        self.redo.discard(unit)

    def timeline(self) -> dict[int, tuple[tuple[float, ...], float | None]]:
        """Per segment: when each unit was admitted, and when the segment closed (None: it ran out of units)."""
        return {s: (tuple(self.admit_times.get(s, [])), self.closed_at.get(s)) for s in sorted(self.admitted)}

    def rows_done(self) -> int:
        return self.rows_committed

    def committed_units(self) -> set[int]:
        return set(self.committed)

    def incomplete(self, segment: int) -> dict[int, list[int]]:
        """Units admitted in `segment` that never completed, with (up to five of) their missing row ids: after the
        segment's stream ended, those rows were dropped by the pipeline."""
        missing: dict[int, list[int]] = {}
        for unit in sorted(self.admitted.get(segment, set()) - self.committed - self.redo):
            book = self._rows.get(unit)
            written = book.written if book is not None else np.zeros(int(self.unit_rows[unit]), dtype=np.bool_)
            missing[unit] = (np.flatnonzero(~written)[:5] + int(self.first_rows[unit])).tolist()
        return missing

    def take_redo(self) -> set[int]:
        redo, self.redo = self.redo, set()
        for unit in redo:
            # Start the unit's rows afresh, remembering it was redone once: doubled rows again are the pipeline's.
            self._rows[unit] = _UnitRows(np.zeros(int(self.unit_rows[unit]), dtype=np.bool_), redone=True)
        return redo


def check_rows(
    row_ids: npt.NDArray[np.int64], first_rows: npt.NDArray[np.int64], unit_rows: npt.NDArray[np.int64]
) -> npt.NDArray[np.int64]:
    """The unit of every row id of an output block; PipelineError for ids no input row has, or given twice."""
    units = np.searchsorted(first_rows, row_ids, side="right").astype(np.int64) - 1
    invented = (units < 0) | (row_ids >= first_rows[np.maximum(units, 0)] + unit_rows[np.maximum(units, 0)])
    if invented.any():
        raise PipelineError(f"pipeline returned row ids no input row has: {np.sort(row_ids[invented])[:5].tolist()}")
    unique, counts = np.unique(row_ids, return_counts=True)
    if (counts > 1).any():
        raise PipelineError(f"pipeline returned row(s) {unique[counts > 1][:5].tolist()} more than once")
    return units
