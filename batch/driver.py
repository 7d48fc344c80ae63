"""Batch drivers: run a job against the control actor, in this process (local driver) or as a detached Ray actor."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

import ray
from ray.exceptions import GetTimeoutError, RayError

from batch.runner import JobResult, run_job, validate_spec
from batch.spec import BatchJobSpec
from fleet.config import FleetConfig
from policies.actors.client import ActorClient
from policies.actors.control import control_client
from policies.batch_gate import BatchKnobs, GateAnswer, JobProgress
from policies.control_api import ControlApi
from policies.ladder import safe_batch_policy
from router.placement import ClusterNode, nodes_from_ray, region_placement

logger = logging.getLogger("gridshift.batch")


GATE_TIMEOUT_S = 5.0
"""A gate call that takes longer than this counts as the control plane being unreachable."""


class RayBatchControl:
    """BatchControl over the control actor. If the actor cannot be reached for `policy.fallback_after_s`, the job
    runs on safe defaults (full-quality knobs) rather than wait paused forever: its deadline still matters."""

    def __init__(
        self, control: ActorClient[ControlApi], fleet: FleetConfig, monotonic_s: Callable[[], float] = time.monotonic
    ) -> None:
        self._control = control
        self._fleet = fleet
        self._monotonic_s = monotonic_s
        self._last_answer_s = monotonic_s()

    def gate(self, progress: JobProgress) -> GateAnswer:
        try:
            answer = self._control.call_sync(ControlApi.batch_gate, progress)
        except (GetTimeoutError, RayError) as error:
            return self.unreachable(error)
        self._last_answer_s = self._monotonic_s()
        return answer

    def unreachable(self, error: BaseException) -> GateAnswer:
        """The answer when the control plane did not answer: wait a little, then run on safe defaults."""
        silent_s = self._monotonic_s() - self._last_answer_s
        limit_s = self._fleet.policy.fallback_after_s
        if silent_s > limit_s:
            defaults = safe_batch_policy(self._fleet.serving.knobs)
            knobs = BatchKnobs(batch_size=defaults.batch_size, precision=defaults.precision.value)
            reason = f"control plane unreachable for {silent_s:.0f} s (> {limit_s:g} s): running on safe defaults"
            return GateAnswer(True, reason, None, knobs, 0.0)
        logger.warning("batch gate: control plane unreachable (%s); retrying", error)
        knobs = BatchKnobs(batch_size=self._fleet.serving.knobs.max_batch_size, precision="fp32")
        return GateAnswer(False, f"control plane unreachable ({type(error).__name__}); retrying", None, knobs, 1.0)

    def report(self, progress: JobProgress) -> None:
        # Fire and forget: a report is a status line, and the next one supersedes it.
        self._control.tell(ControlApi.batch_report, progress)


def run_local(spec: BatchJobSpec, fleet: FleetConfig) -> JobResult:
    """Run in this process (Ray must be initialised). Used by `gridshift batch submit --local` and tests."""
    validate_spec(spec)
    control = RayBatchControl(control_client(fleet, timeout_s=GATE_TIMEOUT_S), fleet)
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
        from fleet.loaders import parse_fleet

        self._spec = BatchJobSpec.model_validate(spec_data)
        fleet = parse_fleet(fleet_data, source="batch job fleet")
        self._control = RayBatchControl(control_client(fleet, timeout_s=GATE_TIMEOUT_S), fleet)
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

    def placement(self) -> tuple[str, str]:
        """(region, Ray node id): placement reports check the job runs on one of its region's nodes."""
        return self._spec.region, ray.get_runtime_context().get_node_id()


BATCH_ACTOR_PREFIX = "gridshift-batch-"


def batch_actor_name(job_id: str) -> str:
    """Name of the detached actor running a submitted job (namespace `gridshift`)."""
    return f"{BATCH_ACTOR_PREFIX}{job_id}"


def cluster_nodes() -> list[ClusterNode]:
    """The connected cluster's nodes with their resources and labels; none when Ray is not initialised."""
    return nodes_from_ray(ray.nodes()) if ray.is_initialized() else []  # type: ignore[no-untyped-call]


def launch_in_cluster(spec: BatchJobSpec, fleet: FleetConfig) -> None:
    """Start the job as a named, detached actor in the connected cluster (the "Ray job" of a submission), on a
    node of the job's region when the cluster has one (serving.region_pinning)."""
    validate_spec(spec)
    placement = region_placement(fleet.region(spec.region), fleet.serving.region_pinning, cluster_nodes())
    remote_cls = ray.remote(BatchJobActor)
    remote_cls.options(
        name=batch_actor_name(spec.job_id),
        namespace="gridshift",
        lifetime="detached",
        max_restarts=-1,
        num_cpus=0,
        **placement,
    ).remote(spec.model_dump(mode="json"), fleet.model_dump(mode="json"))
