"""Batch job spec and input: what a job runs, on what, by when and where; the input cut into deterministic shards."""

from __future__ import annotations

import hashlib
import importlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PositiveFloat, PositiveInt

from fleet.base import UtcDatetime
from fleet.errors import GridshiftError

PIPELINE_PATTERN = r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$"


class JobSpecError(GridshiftError):
    """A batch job cannot start: bad pipeline, missing or unreadable input. The message says which and why."""


class BatchJobSpec(BaseModel):
    """A submitted batch pipeline."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    job_id: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$", description="Job id.")
    pipeline: str = Field(pattern=PIPELINE_PATTERN, description="'module:function' taking (Dataset, knobs).")
    input: str = Field(min_length=1, description="Input file: .txt (one row per line) or .jsonl (one object a line).")
    output: str = Field(min_length=1, description="Output folder: part files, ledger, manifest.")
    deadline: UtcDatetime = Field(description="When every row must be done (UTC, on the control clock).")
    region: str = Field(min_length=1, description="Region whose grid the job follows.")
    signal: Literal["carbon", "price", "headroom"] = Field("carbon", description="What the planner optimises.")
    shard_rows: PositiveInt = Field(128, le=100_000, description="Rows per shard: the unit of pause and commit.")
    rows_per_second: PositiveFloat = Field(
        20.0, description="Initial throughput estimate (wall rows/s) until shards are measured."
    )


Pipeline = Callable[[Any, Any], Any]


def load_pipeline(import_path: str) -> Pipeline:
    """Resolve 'module:function' to a callable; clear errors for each way it can be wrong."""
    module_name, _, attribute = import_path.partition(":")
    if not module_name or not attribute:
        raise JobSpecError(f"pipeline {import_path!r}: expected 'module:function'")
    try:
        module = importlib.import_module(module_name)
    except ImportError as error:
        raise JobSpecError(f"pipeline {import_path!r}: cannot import module {module_name!r}: {error}") from None
    function = getattr(module, attribute, None)
    if function is None:
        raise JobSpecError(f"pipeline {import_path!r}: module {module_name!r} has no attribute {attribute!r}")
    if not callable(function):
        raise JobSpecError(f"pipeline {import_path!r}: {attribute!r} is not callable")
    return function  # type: ignore[no-any-return]


@dataclass(frozen=True)
class InputRows:
    """The whole input, each row with a stable `row_id` (its position), and a fingerprint of the file."""

    rows: tuple[dict[str, Any], ...]
    sha256: str

    def shard_count(self, shard_rows: int) -> int:
        return (len(self.rows) + shard_rows - 1) // shard_rows

    def shard(self, index: int, shard_rows: int) -> Sequence[dict[str, Any]]:
        return self.rows[index * shard_rows : (index + 1) * shard_rows]


def read_input(path: str | Path) -> InputRows:
    """Read a .txt (row = line, column `text`) or .jsonl (row = object) input; ids are line positions."""
    file = Path(path)
    try:
        data = file.read_bytes()
    except OSError as error:
        raise JobSpecError(f"input {file}: cannot read: {error.strerror or error}") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise JobSpecError(f"input {file}: not UTF-8 text: {error.reason}") from None
    lines = text.splitlines()
    rows: list[dict[str, Any]] = []
    if file.suffix == ".jsonl":
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                item = json.loads(line)
            except json.JSONDecodeError as error:
                raise JobSpecError(f"input {file}:{number}: not JSON: {error.msg}") from None
            if not isinstance(item, dict):
                raise JobSpecError(f"input {file}:{number}: each line must be a JSON object")
            rows.append({**item, "row_id": len(rows)})
    elif file.suffix == ".txt":
        rows = [{"row_id": index, "text": line} for index, line in enumerate(lines)]
    else:
        raise JobSpecError(f"input {file}: unsupported type {file.suffix!r}; use .txt or .jsonl")
    if not rows:
        raise JobSpecError(f"input {file}: no rows")
    return InputRows(tuple(rows), hashlib.sha256(data).hexdigest())
