"""A batch job's spec: what runs (the team's pipeline), on what input, into what output, by when and where."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PositiveFloat, PositiveInt

from fleet.base import UtcDatetime
from fleet.errors import GridshiftError
from fleet.tenants import MAX_TIER

PIPELINE_PATTERN = r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$"


class JobSpecError(GridshiftError):
    """A batch job cannot start: bad pipeline, input or output. The message names which and why."""


class BatchJobSpec(BaseModel):
    """A submitted batch pipeline."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    job_id: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$", description="Job id.")
    pipeline: str = Field(pattern=PIPELINE_PATTERN, description="'module:function' taking (Dataset, knobs).")
    input: str = Field(
        min_length=1,
        description="Input file or folder: a local path or a URI of any filesystem pyarrow supports (s3://, gs://).",
    )
    input_format: Literal["text", "jsonl", "csv", "parquet"] | None = Field(
        None, description="text (a row a line, column `text`), jsonl, csv (with a header) or parquet; null: by suffix."
    )
    output: str = Field(min_length=1, description="Output folder (local path or URI): data, manifest, commit records.")
    output_format: Literal["parquet", "jsonl"] = Field("parquet", description="Format of the output data files.")
    deadline: UtcDatetime = Field(description="When every row must be done (UTC, on the control clock).")
    region: str = Field(min_length=1, description="Region whose grid the job follows.")
    signal: Literal["carbon", "price", "headroom"] = Field("carbon", description="What the planner optimises.")
    block_rows: PositiveInt | None = Field(
        None,
        le=1_000_000,
        description="Rows per input block (Parquet: at least, whole row groups), the unit of pause and commit; "
        "null: about eight blocks per worker, 1,024 to 16,384 rows each.",
    )
    max_workers: PositiveInt = Field(
        2, le=1024, description="Most workers (actors or tasks) a stage of the pipeline runs; the policy may lower it."
    )
    worker_cpus: PositiveFloat = Field(
        0.25,
        le=64.0,
        description="CPUs each worker reserves (knobs.num_cpus; fractional on a small host that also serves).",
    )
    rows_per_second: PositiveFloat = Field(
        20.0, description="Initial throughput estimate (wall rows/s) until blocks are measured."
    )
    flex_tier: int | None = Field(
        None,
        ge=0,
        le=MAX_TIER,
        description="Flexibility tier (docs/tenants.md): 0 never deferred, shrunk or degraded; 1 up to 10 % slower; "
        "2 up to 25 % and reduced precision; 3 up to 50 % and paused until its deadline. Null: the submitting key's "
        "default, or for an operator's job the gate's rule (as tier 3, shrunk as the ladder asks).",
    )
    tenant_id: str | None = Field(
        None, max_length=32, description="Set by the gateway from the submitting tenant key; not sent by clients."
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
