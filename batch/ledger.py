"""Exactly-once output: deterministic shard files written through a temp file and an atomic rename, and a ledger.

The commit point of a shard is the rename of its part file to its deterministic name: before it the shard
left no visible output, after it the output is complete. The ledger (`_ledger.jsonl`) records committed
shards for status and audit; a crash between the rename and the ledger line is repaired on the next start
from the part files themselves. A rerun after any crash therefore skips exactly the committed shards, and a
shard that is run twice writes the same name twice, so no row can appear twice.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fleet.errors import GridshiftError

LEDGER_NAME = "_ledger.jsonl"
MANIFEST_NAME = "_job.json"
_PART_PREFIX = "part-"
_PART_SUFFIX = ".jsonl"


class OutputError(GridshiftError):
    """The output folder cannot be used: unwritable, or holding another job's output."""


def part_name(shard: int) -> str:
    return f"{_PART_PREFIX}{shard:06d}{_PART_SUFFIX}"


def _fsync_dir(path: Path) -> None:
    # The rename is only durable once the directory entry is on disk.
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@dataclass(frozen=True)
class LedgerEntry:
    shard: int
    rows: int
    sha256: str


class ShardLedger:
    """The output folder of one job: part files, the ledger, and the job's manifest."""

    def __init__(self, output_dir: Path, manifest: Mapping[str, Any]) -> None:
        self.output_dir = output_dir
        self._manifest = dict(manifest)
        self._open()

    def _open(self) -> None:
        try:
            self.output_dir.mkdir(parents=True, exist_ok=True)
            probe = self.output_dir / f".write-probe-{os.getpid()}"
            probe.write_bytes(b"")
            probe.unlink()
        except OSError as error:
            raise OutputError(f"output {self.output_dir}: not writable: {error.strerror or error}") from None
        manifest_path = self.output_dir / MANIFEST_NAME
        if manifest_path.exists():
            existing = json.loads(manifest_path.read_text())
            if existing != self._manifest:
                raise OutputError(
                    f"output {self.output_dir} holds another job's output (its {MANIFEST_NAME} differs: "
                    f"input, shard size or pipeline changed); use a new output folder"
                )
        else:
            self._atomic_write(manifest_path, json.dumps(self._manifest, sort_keys=True, indent=1).encode())
        # Temp files of a crashed writer are garbage: nothing was committed from them.
        for stale in self.output_dir.glob(".*.tmp*"):
            stale.unlink(missing_ok=True)
        self._repair_ledger()

    def _atomic_write(self, target: Path, data: bytes) -> None:
        temp = target.with_name(f".{target.name}.tmp{os.getpid()}")
        with temp.open("wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp, target)
        _fsync_dir(target.parent)

    def committed(self) -> set[int]:
        """Shards whose part file exists: the rename is the commit point."""
        shards = set()
        for path in self.output_dir.glob(f"{_PART_PREFIX}*{_PART_SUFFIX}"):
            number = path.name[len(_PART_PREFIX) : -len(_PART_SUFFIX)]
            if number.isdigit():
                shards.add(int(number))
        return shards

    def ledger(self) -> dict[int, LedgerEntry]:
        path = self.output_dir / LEDGER_NAME
        entries: dict[int, LedgerEntry] = {}
        if not path.exists():
            return entries
        for line in path.read_text().splitlines():
            if not line.strip():
                continue
            try:
                item = json.loads(line)
                entries[int(item["shard"])] = LedgerEntry(int(item["shard"]), int(item["rows"]), str(item["sha256"]))
            except (ValueError, KeyError, TypeError):
                continue  # a torn last line from a crash mid-append: the part file still tells the truth
        return entries

    def _append_ledger(self, entry: LedgerEntry) -> None:
        line = json.dumps({"shard": entry.shard, "rows": entry.rows, "sha256": entry.sha256}) + "\n"
        path = self.output_dir / LEDGER_NAME
        with path.open("a+b") as handle:
            # A crash mid-append leaves a torn last line without its newline: end it first, so the new
            # entry is not glued to it and lost with it.
            if handle.tell() > 0:
                handle.seek(-1, os.SEEK_END)
                if handle.read(1) != b"\n":
                    handle.write(b"\n")
            handle.write(line.encode())
            handle.flush()
            os.fsync(handle.fileno())

    def _repair_ledger(self) -> None:
        recorded = self.ledger()
        for shard in sorted(self.committed() - set(recorded)):
            data = (self.output_dir / part_name(shard)).read_bytes()
            rows = data.count(b"\n")
            self._append_ledger(LedgerEntry(shard, rows, hashlib.sha256(data).hexdigest()))

    def commit(self, shard: int, rows: Iterable[Mapping[str, Any]]) -> LedgerEntry:
        """Write a shard's rows (JSON lines) under its deterministic name, atomically, then record it."""
        data = b"".join((json.dumps(row, sort_keys=True) + "\n").encode() for row in rows)
        self._atomic_write(self.output_dir / part_name(shard), data)
        entry = LedgerEntry(shard, data.count(b"\n"), hashlib.sha256(data).hexdigest())
        self._append_ledger(entry)
        return entry

    def rows_committed(self) -> int:
        return sum(entry.rows for entry in self.ledger().values())


def read_output(output_dir: Path) -> list[dict[str, Any]]:
    """Every output row of a job, in shard order (for checks and consumers)."""
    rows: list[dict[str, Any]] = []
    for path in sorted(output_dir.glob(f"{_PART_PREFIX}*{_PART_SUFFIX}")):
        rows.extend(json.loads(line) for line in path.read_text().splitlines() if line.strip())
    return rows
