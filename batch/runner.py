"""Batch runner: read, shard, gate each shard on the grid, run the team's Ray Data transform, commit exactly once."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from batch.ledger import ShardLedger
from batch.spec import BatchJobSpec, JobSpecError, Pipeline, load_pipeline, read_input
from fleet.errors import GridshiftError
from policies.batch_gate import BatchKnobs, GateAnswer, JobProgress

logger = logging.getLogger("gridshift.batch")

# Throughput estimate smoothing: recent shards count more (knobs change), but one slow shard does not
# swing the deadline estimate on its own.
_RATE_SMOOTHING = 0.3


class PipelineError(GridshiftError):
    """The team's transform broke the contract: it must return each input row once, with its row_id."""


class BatchControl(Protocol):
    """What the runner needs of the control plane."""

    def gate(self, progress: JobProgress) -> GateAnswer: ...

    def report(self, progress: JobProgress) -> None: ...


@dataclass(frozen=True)
class JobResult:
    job_id: str
    rows: int
    shards_run: int
    shards_skipped: int


def run_shard(pipeline: Pipeline, rows: Sequence[Mapping[str, Any]], knobs: BatchKnobs) -> list[dict[str, Any]]:
    """Run the transform on one shard as a Ray Data dataset and check it kept every row exactly once."""
    import ray.data

    dataset = ray.data.from_items([dict(row) for row in rows])
    result = pipeline(dataset, knobs)
    if not isinstance(result, ray.data.Dataset):
        raise PipelineError(f"pipeline returned {type(result).__name__}, expected a ray.data.Dataset")
    output = [_plain(row) for row in result.take_all()]
    expected = [int(row["row_id"]) for row in rows]
    seen: dict[int, int] = {}
    for row in output:
        if "row_id" not in row:
            raise PipelineError("pipeline output rows must keep the input's 'row_id' column")
        seen[int(row["row_id"])] = seen.get(int(row["row_id"]), 0) + 1
    missing = sorted(set(expected) - set(seen))
    duplicated = sorted(row_id for row_id, count in seen.items() if count > 1)
    extra = sorted(set(seen) - set(expected))
    if missing or duplicated or extra:
        raise PipelineError(
            f"pipeline must return each input row exactly once: missing {missing[:5]}, "
            f"duplicated {duplicated[:5]}, unknown {extra[:5]}"
        )
    output.sort(key=lambda row: int(row["row_id"]))
    return output


def _plain(value: Any) -> Any:
    """JSON-ready copies of what Ray Data hands back (numpy scalars and arrays)."""
    if isinstance(value, Mapping):
        return {str(key): _plain(item) for key, item in value.items()}
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, list | tuple):
        return [_plain(item) for item in value]
    return value


def run_job(
    spec: BatchJobSpec,
    control: BatchControl,
    *,
    sleep: Callable[[float], None] = time.sleep,
    monotonic_s: Callable[[], float] = time.monotonic,
    stop: Callable[[], bool] = lambda: False,
) -> JobResult:
    """Run a job to completion (or until `stop()`), skipping shards a previous run committed."""
    inputs = read_input(spec.input)
    pipeline = load_pipeline(spec.pipeline)
    manifest = {
        "job_id": spec.job_id,
        "input_sha256": inputs.sha256,
        "rows": len(inputs.rows),
        "shard_rows": spec.shard_rows,
        "pipeline": spec.pipeline,
    }
    ledger = ShardLedger(Path(spec.output), manifest)
    shard_count = inputs.shard_count(spec.shard_rows)
    committed = ledger.committed()
    rows_done = sum(len(inputs.shard(k, spec.shard_rows)) for k in committed)
    rate = spec.rows_per_second
    ran = 0

    def progress(state: str, reason: str = "", resume_at_s: float | None = None) -> JobProgress:
        return JobProgress(
            job_id=spec.job_id,
            region=spec.region,
            signal=spec.signal,
            deadline_s=spec.deadline.timestamp(),
            state=state,
            rows_done=rows_done,
            rows_total=len(inputs.rows),
            rows_per_second=rate,
            reason=reason,
            resume_at_s=resume_at_s,
        )

    for shard in range(shard_count):
        if shard in committed:
            continue
        while True:
            if stop():
                control.report(progress("stopped", "stopped by its driver"))
                return JobResult(spec.job_id, rows_done, ran, len(committed))
            answer = control.gate(progress("running"))
            if answer.run:
                break
            control.report(progress("paused", answer.reason, answer.resume_at_s))
            sleep(answer.poll_s)
        control.report(progress("running", answer.reason))
        rows = inputs.shard(shard, spec.shard_rows)
        started = monotonic_s()
        output = run_shard(pipeline, rows, answer.knobs)
        ledger.commit(shard, output)
        elapsed = max(monotonic_s() - started, 1e-6)
        rate = (1 - _RATE_SMOOTHING) * rate + _RATE_SMOOTHING * (len(rows) / elapsed)
        rows_done += len(rows)
        ran += 1
        logger.info("job %s: shard %d/%d committed (%s)", spec.job_id, shard + 1, shard_count, answer.reason)
    control.report(progress("done", "every row committed"))
    return JobResult(spec.job_id, rows_done, ran, len(committed))


def validate_spec(spec: BatchJobSpec) -> None:
    """Fail fast, before any Ray work, on what can be checked up front."""
    load_pipeline(spec.pipeline)
    read_input(spec.input)
    output = Path(spec.output)
    if output.exists() and not output.is_dir():
        raise JobSpecError(f"output {output}: exists and is not a folder")


__all__ = ["BatchControl", "JobResult", "PipelineError", "run_job", "run_shard", "validate_spec"]
