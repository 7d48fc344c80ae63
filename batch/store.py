"""The output folder's commit protocol: a job's manifest, staged pieces, one commit record per unit, and recovery.

Layout: `part-UUUUUU-PP.parquet` (or `.jsonl`) data files at the top, readable as one dataset by Ray Data, pandas or
pyarrow; `_gridshift/` beside them (readers skip `_` names) holds `manifest.json` (the job and its input plan),
`commits/unit-UUUUUU.json` (one record per committed unit), `staging/RUN/` (pieces not yet committed) and
`done.json`.

A unit commits in two steps. First its record is created, exclusively: it names the staged pieces and their final
names, and once it exists the unit is committed, whatever happens next. Then each piece is renamed to its final
name. Recovery rolls every record forward (renames what a crash left staged), deletes data files no record names
and staging left by dead runs, so a rerun skips exactly the committed units and none is lost, doubled or
half-visible after recovery. On a local disk every step is fsynced and the record is created with a hard link,
so two runs racing for one unit cannot both commit it; an object store has no exclusive create or rename, so there
the record (a single object write) is the commit and a race between two live runs of one job is not prevented.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import pyarrow.fs as pa_fs

from batch.book import Piece
from batch.inputs import filesystem_for
from batch.spec import JobSpecError

CONTROL_DIR = "_gridshift"
MANIFEST = f"{CONTROL_DIR}/manifest.json"
DONE = f"{CONTROL_DIR}/done.json"
COMMITS = f"{CONTROL_DIR}/commits"
STAGING = f"{CONTROL_DIR}/staging"


class OutputError(JobSpecError):
    """The output folder cannot be used: unwritable, or holding another job's output, or damaged."""


def record_name(unit: int) -> str:
    return f"{COMMITS}/unit-{unit:06d}.json"


def final_name(unit: int, piece: int, suffix: str) -> str:
    return f"part-{unit:06d}-{piece:02d}{suffix}"


@dataclass(frozen=True)
class CommitRecord:
    unit: int
    rows: int
    files: tuple[tuple[str, str], ...]  # (staged, final), relative to the output folder
    run: str

    def to_json(self) -> bytes:
        body = {"unit": self.unit, "rows": self.rows, "files": [list(f) for f in self.files], "run": self.run}
        return json.dumps(body, sort_keys=True).encode()

    @classmethod
    def from_json(cls, data: bytes) -> CommitRecord:
        body = json.loads(data)
        files = tuple((str(staged), str(final)) for staged, final in body["files"])
        return cls(int(body["unit"]), int(body["rows"]), files, str(body["run"]))


class OutputStore:
    """One job's output folder on a pyarrow filesystem (fsynced, with exclusive creates, on a local disk)."""

    def __init__(self, uri: str) -> None:
        self.uri = uri
        self.fs, self.root = filesystem_for(uri)
        self.local = isinstance(self.fs, pa_fs.LocalFileSystem)

    def path(self, relative: str) -> str:
        return f"{self.root.rstrip('/')}/{relative}"

    # Primitive operations ---------------------------------------------------------------------------------------

    def exists(self, relative: str) -> bool:
        return bool(self.fs.get_file_info(self.path(relative)).type != pa_fs.FileType.NotFound)

    def read(self, relative: str) -> bytes:
        with self.fs.open_input_stream(self.path(relative)) as handle:
            data: bytes = handle.read()
            return data

    def write(self, relative: str, data: bytes, *, exclusive: bool = False) -> bool:
        """Write a whole file atomically (temp name, then rename or link). With `exclusive`, False when the file
        already exists (someone else created it first) and nothing is written."""
        target = self.path(relative)
        self.fs.create_dir(target.rsplit("/", 1)[0], recursive=True)
        if not self.local:
            if exclusive and self.exists(relative):
                return False
            with self.fs.open_output_stream(target) as handle:
                handle.write(data)
            return True
        temp = f"{target}.{uuid.uuid4().hex}.tmp"
        with open(temp, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        try:
            if exclusive:
                try:
                    os.link(temp, target)  # fails if the target exists: an atomic create-if-absent
                except FileExistsError:
                    return False
            else:
                os.replace(temp, target)
        finally:
            if os.path.exists(temp):
                os.unlink(temp)
        self.sync_dir(target.rsplit("/", 1)[0])
        return True

    def move(self, source: str, target: str) -> None:
        self.fs.move(self.path(source), self.path(target))

    def sync_dir(self, folder: str) -> None:
        # A rename is durable only once its folder entry is on disk.
        if self.local:
            fd = os.open(folder, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)

    def listing(self, relative: str = "", recursive: bool = False) -> list[str]:
        """Files under `relative`, as paths relative to the output folder, sorted."""
        base = self.path(relative) if relative else self.root
        if self.fs.get_file_info(base).type != pa_fs.FileType.Directory:
            return []
        found = self.fs.get_file_info(pa_fs.FileSelector(base, recursive=recursive))
        prefix = self.root.rstrip("/") + "/"
        return sorted(f.path[len(prefix) :] for f in found if f.type == pa_fs.FileType.File)

    def delete(self, relative: str) -> None:
        info = self.fs.get_file_info(self.path(relative))
        if info.type == pa_fs.FileType.Directory:
            self.fs.delete_dir(self.path(relative))
        elif info.type == pa_fs.FileType.File:
            self.fs.delete_file(self.path(relative))

    # The protocol ---------------------------------------------------------------------------------------------------

    def stored_manifest(self, claim: Mapping[str, Any]) -> dict[str, Any] | None:
        """The manifest in the folder when it is this job's (a rerun); None when there is none yet; OutputError when
        it is another job's."""
        if not self.exists(MANIFEST):
            return None
        stored: dict[str, Any] = json.loads(self.read(MANIFEST))
        changed = sorted(key for key, value in claim.items() if stored.get(key) != value)
        if changed:
            raise OutputError(
                f"output {self.uri} holds another job's output (its {MANIFEST} differs in {changed}); "
                "use a new output folder"
            )
        return stored

    def check_claim(self, claim: Mapping[str, Any]) -> None:
        """Refuse, without writing anything, a folder that holds another job's output or other files."""
        if self.fs.get_file_info(self.root).type == pa_fs.FileType.File:
            raise OutputError(f"output {self.uri}: exists and is not a folder")
        if self.stored_manifest(claim) is None:
            stray = [name for name in self.listing() if not name.startswith(CONTROL_DIR)]
            if stray:
                raise OutputError(
                    f"output {self.uri}: not empty ({stray[0]} ...) and not a gridshift job's folder; use a new folder"
                )

    def open_job(self, manifest: Mapping[str, Any]) -> None:
        """Claim an empty folder for a job: write its manifest (with its input plan) before any work."""
        self.check_claim(manifest)
        try:
            self.fs.create_dir(self.root, recursive=True)
            self.write(MANIFEST, json.dumps(dict(manifest), sort_keys=True, indent=1).encode())
        except OSError as error:
            raise OutputError(f"output {self.uri}: not writable: {error}") from None

    def records(self) -> dict[int, CommitRecord]:
        records: dict[int, CommitRecord] = {}
        for name in self.listing(COMMITS):
            if name.endswith(".json"):
                record = CommitRecord.from_json(self.read(name))
                records[record.unit] = record
        return records

    def recover(self) -> dict[int, CommitRecord]:
        """Bring the folder to a committed state after any crash; returns the committed units' records."""
        records = self.records()
        named: set[str] = set()
        for record in records.values():
            self._roll_forward(record)
            named.update(final for _, final in record.files)
        for name in self.listing():
            if name.startswith("part-") and name not in named:
                self.delete(name)  # from a run that died before committing it
        self.delete(STAGING)
        for name in self.listing(COMMITS):
            if name.endswith(".tmp"):
                self.delete(name)
        if self.local:
            self.sync_dir(self.root)
        return records

    def _roll_forward(self, record: CommitRecord) -> None:
        for staged, final in record.files:
            if not self.exists(final):
                if not self.exists(staged):
                    raise OutputError(
                        f"output {self.uri}: unit {record.unit} is committed but {final} is gone (deleted by hand?)"
                    )
                self.move(staged, final)

    def roll_forward(self, unit: int) -> None:
        """Finish the renames of a unit someone else committed (its record exists; a crash may have cut them short)."""
        self._roll_forward(CommitRecord.from_json(self.read(record_name(unit))))

    def commit(self, unit: int, rows: int, pieces: Iterable[Piece], run: str, suffix: str) -> bool:
        """Commit a unit whose pieces are all staged: create its record (the commit point), then rename. False when
        another run committed it first (its staged pieces are then garbage for recovery)."""
        ordered = sorted(pieces, key=lambda piece: piece.first_row)
        files = tuple((piece.staged, final_name(unit, index, suffix)) for index, piece in enumerate(ordered))
        record = CommitRecord(unit, rows, files, run)
        if not self.write(record_name(unit), record.to_json(), exclusive=True):
            return False
        for staged, final in files:
            self.move(staged, final)
        if self.local:
            self.sync_dir(self.root)
        return True

    def finish(self, summary: Mapping[str, Any]) -> None:
        self.write(DONE, json.dumps(dict(summary), sort_keys=True, indent=1).encode())

    def committed_files(self) -> list[str]:
        """Every committed data file, in unit order: what a reader that must see only whole units reads.

        A unit's record is its commit point and its renames follow, so while a run is live a unit can be committed
        with a file still staged. Such a unit is left out until every file is in place: once there, a final name
        stays, so a reader during a run can open every file listed (it saw a FileNotFoundError before)."""
        present = set(self.listing())
        return [
            self.path(final)
            for _, record in sorted(self.records().items())
            if all(final in present for _, final in record.files)
            for _, final in record.files
        ]
