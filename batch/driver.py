"""Batch drivers: run a job against the control actor, in this process (local driver) or as a detached Ray actor."""

from __future__ import annotations

import logging
import threading
from typing import Any

import ray

from batch.runner import JobResult, run_job, validate_spec
from batch.spec import BatchJobSpec
from policies.actor import get_or_create_control_actor
from policies.batch_gate import GateAnswer, JobProgress
from router.config import FleetConfig

logger = logging.getLogger("gridshift.batch")


class RayBatchControl:
    """BatchControl over the control actor."""

    def __init__(self, actor: Any) -> None:
        self._actor = actor  # untyped: Ray's stubs mistype `.remote()` results

    def gate(self, progress: JobProgress) -> GateAnswer:
        answer: GateAnswer = ray.get(self._actor.batch_gate.remote(progress))
        return answer

    def report(self, progress: JobProgress) -> None:
        # Fire and forget: a report is a status line, and the next one supersedes it.
        self._actor.batch_report.remote(progress)


def run_local(spec: BatchJobSpec, fleet: FleetConfig) -> JobResult:
    """Run in this process (Ray must be initialised). Used by `gridshift batch submit --local` and tests."""
    validate_spec(spec)
    control = RayBatchControl(get_or_create_control_actor(fleet))
    try:
        return run_job(spec, control)
    except Exception as error:
        control.report(_failed(spec, error))
        raise


def _failed(spec: BatchJobSpec, error: BaseException) -> JobProgress:
    return JobProgress(
        job_id=spec.job_id,
        region=spec.region,
        signal=spec.signal,
        deadline_s=spec.deadline.timestamp(),
        state="failed",
        rows_done=0,
        rows_total=0,
        rows_per_second=0.0,
        reason=f"{type(error).__name__}: {error}",
    )


class BatchJobActor:
    """A submitted job running in the cluster. Detached and restarted by Ray if its process dies; a restart
    resumes from the ledger, so a crash loses and duplicates nothing."""

    def __init__(self, spec_data: dict[str, Any], fleet_data: dict[str, Any]) -> None:
        from router.config import parse_fleet

        self._spec = BatchJobSpec.model_validate(spec_data)
        fleet = parse_fleet(fleet_data, source="batch job fleet")
        self._control = RayBatchControl(get_or_create_control_actor(fleet))
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"batch-{self._spec.job_id}", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            run_job(self._spec, self._control, stop=self._stop.is_set)
        except Exception as error:
            logger.exception("batch job %s failed", self._spec.job_id)
            self._control.report(_failed(self._spec, error))

    def stop(self) -> None:
        self._stop.set()

    def alive(self) -> bool:
        return self._thread.is_alive()


def launch_in_cluster(spec: BatchJobSpec, fleet: FleetConfig) -> None:
    """Start the job as a named, detached actor in the connected cluster (the "Ray job" of a submission)."""
    validate_spec(spec)
    remote_cls = ray.remote(BatchJobActor)
    remote_cls.options(
        name=f"gridshift-batch-{spec.job_id}",
        namespace="gridshift",
        lifetime="detached",
        max_restarts=-1,
        num_cpus=0,
    ).remote(spec.model_dump(mode="json"), fleet.model_dump(mode="json"))
