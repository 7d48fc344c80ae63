"""Gridshift jobs as Ray Jobs: submitted through Ray's Job Submission API (the dashboard's address), so each job
shows in the Ray dashboard's Jobs tab and in `ray job logs`, with the team's code and requirements in its runtime
environment, and listed back by kind.

Batch and training jobs both go through here: each passes its kind (the `gridshift` metadata value that lists it),
its entry module, and its own error type, so a refusal reads as that job kind's bad input.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlparse

from fleet.config import FleetConfig
from fleet.serving import ComputeScheduling
from rayjobs.priority import SETUP_HOOK
from router.placement import ClusterNode, nodes_from_ray, region_placement

WORKING_DIR_EXCLUDES = [".git", ".venv", "results", "__pycache__", "*.pyc", ".mypy_cache", ".ruff_cache"]
"""What a job's uploaded working directory leaves behind (environments, caches, results)."""

RAY_STATES = {
    "PENDING": "pending",
    "RUNNING": "starting",
    "STOPPED": "stopped",
    "SUCCEEDED": "done",
    "FAILED": "failed",
}
"""A Ray Job's status as a gridshift job state, for a job that has not reported yet (RUNNING: its driver is up but
has not said more)."""


@dataclass(frozen=True)
class RayJobState:
    """A gridshift job's Ray Job as the Jobs API reports it."""

    submission_id: str
    status: str  # PENDING | RUNNING | STOPPED | SUCCEEDED | FAILED
    message: str
    region: str
    driver_node_id: str | None = None
    tenant_id: str | None = None  # the submitting tenant, from the job's metadata
    flex_tier: int | None = None


@dataclass(frozen=True)
class Submission:
    """One job to submit: its id and region, the module its driver runs (`python -m`), the environment that carries
    its spec and fleet, and its metadata (strings only; `gridshift` names its kind)."""

    job_id: str
    region: str
    entry_module: str
    env_vars: Mapping[str, str]
    metadata: Mapping[str, str]


def jobs_client(address: str | None, error: type[Exception]) -> Any:
    """The Jobs API at `address` (the dashboard's URL); None: the cluster this process is connected to, else the one
    on this machine. Unreachable: `error`, naming the address."""
    import ray
    from ray.dashboard.utils import ray_address_to_api_server_url
    from ray.job_submission import JobSubmissionClient

    try:
        if address is None and ray.is_initialized():
            # The Jobs API of the cluster this process is connected to (not whichever cluster started last here).
            address = ray_address_to_api_server_url(ray.get_runtime_context().gcs_address)
        return JobSubmissionClient(address)
    except (ConnectionError, RuntimeError, ValueError) as refused:
        where = address or "the Ray cluster on this machine"
        raise error(
            f"address: no Ray Jobs API answers at {where} ({refused}); is the cluster up, its dashboard on?"
        ) from None


def python_for(address: str | None) -> str:
    # A cluster on this machine runs this interpreter; a remote one, whatever `python` is on its head node.
    host = "127.0.0.1" if address is None else urlparse(address).hostname or ""
    return sys.executable if host in ("127.0.0.1", "localhost", "::1") else "python"


def cluster_nodes() -> list[ClusterNode]:
    """The connected cluster's nodes with their resources and labels; none when Ray is not initialised."""
    import ray

    return nodes_from_ray(ray.nodes()) if ray.is_initialized() else []  # type: ignore[no-untyped-call]


def submit(
    job: Submission,
    fleet: FleetConfig,
    error: type[Exception],
    *,
    address: str | None = None,
    working_dir: str | None = None,
    requirements: str | Sequence[str] | None = None,
    nodes: Sequence[ClusterNode] = (),
) -> str:
    """Submit the job; returns its Ray Job submission id (the job id). `working_dir` is uploaded and put on the job's
    path (the team's code); `requirements` (a requirements file or package list) is installed for it. The driver is
    light (num_cpus 0) and placed on a node of the job's region when the cluster has one (serving.region_pinning)."""
    runtime_env: dict[str, Any] = {"env_vars": dict(job.env_vars)}
    if fleet.serving.compute_scheduling is ComputeScheduling.IDLE:
        # The job's workers run its model work as background work, as the serving replicas do (rayjobs/priority.py).
        runtime_env["worker_process_setup_hook"] = SETUP_HOOK
    if working_dir is not None:
        runtime_env["working_dir"] = working_dir
        runtime_env["excludes"] = WORKING_DIR_EXCLUDES
    if requirements is not None:
        runtime_env["pip"] = requirements if isinstance(requirements, str) else list(requirements)
    placement = region_placement(fleet.region(job.region), fleet.serving.region_pinning, nodes)
    client = jobs_client(address, error)
    try:
        submission_id: str = client.submit_job(
            entrypoint=f"{python_for(address)} -m {job.entry_module}",
            submission_id=job.job_id,
            runtime_env=runtime_env,
            metadata=dict(job.metadata),
            entrypoint_num_cpus=0,
            entrypoint_resources=dict(placement.get("resources", {})) or None,
            entrypoint_label_selector=dict(placement.get("label_selector", {})) or None,
        )
    except RuntimeError as refused:
        raise error(f"job_id {job.job_id!r}: the Ray Jobs API refused it: {refused}") from None
    return submission_id


def tenancy_metadata(tenant_id: str | None, flex_tier: int | None) -> dict[str, str]:
    """Whose job it is at which tier, as Ray Job metadata (strings only; absent when unset)."""
    metadata = {} if tenant_id is None else {"tenant_id": tenant_id}
    if flex_tier is not None:
        metadata["flex_tier"] = str(flex_tier)
    return metadata


def _tier(metadata: Mapping[str, str]) -> int | None:
    text = metadata.get("flex_tier", "")
    return int(text) if text.isdigit() else None


def list_jobs(kind: str, error: type[Exception], address: str | None = None) -> list[RayJobState]:
    """Every job of this kind the cluster's Jobs API knows, with its Ray status and where its driver runs."""
    return [
        RayJobState(
            str(info.submission_id),
            str(info.status),
            str(info.message or ""),
            str((info.metadata or {}).get("region", "?")),
            getattr(info, "driver_node_id", None) or None,
            (info.metadata or {}).get("tenant_id"),
            _tier(info.metadata or {}),
        )
        for info in jobs_client(address, error).list_jobs()
        if (info.metadata or {}).get("gridshift") == kind and info.submission_id
    ]


def stop_jobs(kind: str, error: type[Exception], address: str | None = None) -> list[str]:
    """Stop every running job of this kind (each resumes from what it committed when submitted again)."""
    client = jobs_client(address, error)
    running = [job.submission_id for job in list_jobs(kind, error, address) if job.status in ("PENDING", "RUNNING")]
    for job_id in running:
        client.stop_job(job_id)
    return running


def merged_statuses(
    reported: list[dict[str, object]], ray: list[RayJobState], unreported: Mapping[str, object]
) -> list[dict[str, object]]:
    """What operators see of jobs: each job's own report to the control plane with its Ray Job's status, and jobs the
    control plane has not heard from (still starting, or failed before their first report) from Ray's, with the
    kind's `unreported` fields (its progress counters at zero)."""
    by_id = {job.submission_id: job for job in ray}
    statuses = [
        {**status, "ray_status": getattr(by_id.get(str(status["job_id"])), "status", None)} for status in reported
    ]
    known = {str(status["job_id"]) for status in reported}
    for job in ray:
        if job.submission_id in known:
            continue
        statuses.append(
            {
                "job_id": job.submission_id,
                "region": job.region,
                "state": RAY_STATES.get(job.status, job.status.lower()),
                "reason": job.message,
                **unreported,
                "tenant_id": job.tenant_id,
                "flex_tier": job.flex_tier,
                "effects": [],
                "ray_status": job.status,
            }
        )
    return sorted(statuses, key=lambda status: str(status["job_id"]))
