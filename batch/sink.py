"""The read and write ends of a job's stream: a Ray Data datasource whose read tasks pass the grid gate one unit at
a time, and a datasink whose write tasks stage each unit's rows and commit the unit once all of them are written.

Both run on the cluster's workers; only unit indices, row counts and file names reach the driver.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import time
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from ray.actor import ActorHandle
from ray.data.block import Block, BlockAccessor, BlockMetadata
from ray.data.datasource import Datasink, Datasource, ReadTask

from batch.book import Admission, JobBook, Piece, PipelineError, check_rows
from batch.inputs import ROW_ID, read_unit
from batch.plan import InputPlan, Unit
from batch.store import STAGING, OutputStore
from policies.actors.client import ActorClient

ADMIT_WAIT_S = 1.0
"""Longest a read task's admission waits in the book before it asks again (a wake-up is normally sooner)."""
BOOK_CALL_TIMEOUT_S = 30.0
"""A book call is a few microseconds of work; this only bounds waiting behind a busy cluster."""


class BookActor(JobBook):
    """The job's book as a Ray actor (async: a read task waiting for room in the window waits in the actor, woken
    when a unit commits or the segment closes, instead of polling)."""

    def __init__(self) -> None:
        super().__init__()
        self._wakeups: list[asyncio.Event] = []

    def _wake(self) -> None:
        wakeups, self._wakeups = self._wakeups, []
        for event in wakeups:
            event.set()

    async def admit_when_room(self, segment: int, unit: int) -> Admission:
        """`admit`, with a WAIT waited out here: GO or SKIP (or WAIT after ADMIT_WAIT_S, to be asked again)."""
        answer = self.admit(segment, unit, time.time())
        if answer is not Admission.WAIT:
            return answer
        event = asyncio.Event()
        self._wakeups.append(event)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(event.wait(), ADMIT_WAIT_S)
        return self.admit(segment, unit, time.time())

    def mark_committed(self, unit: int) -> None:
        super().mark_committed(unit)
        self._wake()

    def close_segment(self, reason: str, now_s: float) -> None:
        super().close_segment(reason, now_s)
        self._wake()

    def take_redo(self) -> set[int]:
        redo = super().take_redo()
        self._wake()
        return redo


def book_client(handle: ActorHandle[BookActor]) -> ActorClient[BookActor]:
    return ActorClient("job-book", handle, timeout_s=BOOK_CALL_TIMEOUT_S)


@dataclass(frozen=True)
class _UnitRead:
    """One read task: its unit, admitted by the book before it is read, and its file's place in the plan (a plan cut
    down to that file travels with the task, not the whole plan)."""

    plan: InputPlan
    unit: Unit
    segment: int
    book: ActorHandle[BookActor]

    def __call__(self) -> Iterator[Block]:
        book = book_client(self.book)
        # The segment's window may be full: the book holds the call until a unit commits (or the segment closes).
        admit = BookActor.admit_when_room
        while (answer := book.call_sync_awaited(admit, self.segment, self.unit.index)) is Admission.WAIT:
            continue
        if answer is Admission.GO:
            yield read_unit(self.plan, self.unit)
        # SKIP: the segment closed (a pause or new knobs) and this unit runs in a later one, or it is committed.


class UnitSource(Datasource):
    """The job's remaining units, one read task each (a task's blocks reach the next stage only when it ends, so a
    unit per task keeps the stream moving), gated by the job's book."""

    def __init__(self, plan: InputPlan, units: list[Unit], segment: int, book: ActorHandle[BookActor]) -> None:
        self._plan = plan
        self._units = units
        self._segment = segment
        self._book = book

    def get_name(self) -> str:
        return "GridshiftUnits"

    def estimate_inmemory_data_size(self) -> int | None:
        return sum(self._unit_bytes(unit) for unit in self._units) or None

    def _unit_bytes(self, unit: Unit) -> int:
        size = self._plan.sizes[unit.file]
        if self._plan.format.value == "parquet":
            total = sum(u.rows for u in self._plan.units if u.file == unit.file) or 1
            return size * unit.rows // total
        return unit.end - unit.start

    def get_read_tasks(
        self, parallelism: int, per_task_row_limit: int | None = None, data_context: Any = None
    ) -> list[ReadTask]:
        del parallelism, per_task_row_limit, data_context  # one task per unit: the unit of gate and commit
        tasks = []
        for unit in self._units:
            own = InputPlan(
                self._plan.format,
                (self._plan.files[unit.file],),
                (self._plan.sizes[unit.file],),
                (unit,),
                (self._plan.headers[unit.file],),
            )
            local = Unit(unit.index, 0, unit.start, unit.end, unit.first_row, unit.rows)
            metadata = BlockMetadata(
                num_rows=unit.rows,
                size_bytes=self._unit_bytes(unit),
                input_files=(self._plan.files[unit.file],),
                exec_stats=None,
            )
            tasks.append(ReadTask(_UnitRead(own, local, self._segment, self._book), metadata))
        return tasks


def _encode(table: pa.Table, output_format: str) -> bytes:
    if output_format == "parquet":
        buffer = io.BytesIO()
        pq.write_table(table, buffer)
        return buffer.getvalue()
    # JSON lines through pandas, as Ray Data's own write_json does (arrays become lists).
    text: str = table.to_pandas().to_json(orient="records", lines=True)
    return text.encode("utf-8") if text.endswith("\n") or not text else (text + "\n").encode("utf-8")


class CommitSink(Datasink[list[int]]):
    """Stages each unit's rows of every block and commits the units it completes; returns the units it committed."""

    def __init__(
        self, output: str, output_format: str, run: str, plan: InputPlan, book: ActorHandle[BookActor]
    ) -> None:
        self._output = output
        self._format = output_format
        self._suffix = ".parquet" if output_format == "parquet" else ".jsonl"
        self._run = run
        self._first_rows = plan.starts
        self._unit_rows = np.fromiter((u.rows for u in plan.units), dtype=np.int64, count=len(plan.units))
        self._book = book

    def get_name(self) -> str:
        return "GridshiftCommit"

    def write(self, blocks: Iterable[Block], ctx: Any) -> list[int]:
        del ctx
        store = OutputStore(self._output)
        book = book_client(self._book)
        committed: list[int] = []
        for block in blocks:
            table = BlockAccessor.for_block(block).to_arrow()
            if table.num_rows == 0:
                continue
            if ROW_ID not in table.column_names:
                raise PipelineError(f"pipeline output rows must keep the input's {ROW_ID!r} column")
            row_ids = np.asarray(table.column(ROW_ID).to_numpy(zero_copy_only=False), dtype=np.int64)
            units = check_rows(row_ids, self._first_rows, self._unit_rows)
            order = np.argsort(row_ids, kind="stable")
            table, row_ids, units = table.take(pa.array(order)), row_ids[order], units[order]
            bounds = np.flatnonzero(np.diff(units)) + 1
            for start, end in zip(np.concatenate(([0], bounds)), np.concatenate((bounds, [len(units)])), strict=True):
                unit = int(units[start])
                committed += self._stage(
                    store, book, unit, table.slice(int(start), int(end - start)), row_ids[start:end]
                )
        return committed

    def _stage(
        self, store: OutputStore, book: ActorClient[BookActor], unit: int, rows: pa.Table, row_ids: np.ndarray[Any, Any]
    ) -> list[int]:
        staged = f"{STAGING}/{self._run}/u{unit:06d}-{uuid.uuid4().hex[:12]}{self._suffix}"
        store.write(staged, _encode(rows, self._format))
        verdict = book.call_sync(BookActor.add_piece, unit, row_ids, Piece(staged, len(row_ids), int(row_ids[0])))
        if verdict.drop:
            store.delete(staged)
            return []
        if verdict.commit is None:
            return []
        won = store.commit(unit, int(self._unit_rows[unit]), verdict.commit, self._run, self._suffix)
        if not won:
            # Another run (or an earlier try of this task) committed the unit first: finish its renames, drop ours.
            store.roll_forward(unit)
            for piece in verdict.commit:
                store.delete(piece.staged)
        book.call_sync(BookActor.mark_committed, unit)
        return [unit] if won else []
