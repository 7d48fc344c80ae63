"""Submitting batch jobs as Ray Jobs: through Ray's Job Submission API (the dashboard's address), so each job shows
in the Ray dashboard's Jobs tab and in `ray job logs`, with the pipeline's code and requirements shipped in its
runtime environment."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlparse

from batch.job import FLEET_ENV, SPEC_ENV
from batch.spec import BatchJobSpec, JobSpecError
from fleet.config import FleetConfig
from router.placement import ClusterNode, nodes_from_ray, region_placement

JOB_KIND = "gridshift-batch"
"""The `gridshift` metadata value of a batch job's Ray Job (what `gridshift batch status` lists)."""
WORKING_DIR_EXCLUDES = [".git", ".venv", "results", "__pycache__", "*.pyc", ".mypy_cache", ".ruff_cache"]


@dataclass(frozen=True)
class RayJobState:
    """A batch job's Ray Job as the Jobs API reports it."""

    submission_id: str
    status: str  # PENDING | RUNNING | STOPPED | SUCCEEDED | FAILED
    message: str
    region: str
    driver_node_id: str | None
    tenant_id: str | None = None  # the submitting tenant, from the job's metadata
    flex_tier: int | None = None


def _client(address: str | None) -> Any:
    import ray
    from ray.dashboard.utils import ray_address_to_api_server_url
    from ray.job_submission import JobSubmissionClient

    try:
        if address is None and ray.is_initialized():
            # The Jobs API of the cluster this process is connected to (not whichever cluster started last here).
            address = ray_address_to_api_server_url(ray.get_runtime_context().gcs_address)
        return JobSubmissionClient(address)
    except (ConnectionError, RuntimeError, ValueError) as error:
        where = address or "the Ray cluster on this machine"
        raise JobSpecError(
            f"no Ray Jobs API answers at {where} ({error}); is the cluster up, its dashboard on?"
        ) from None


def _python_for(address: str | None) -> str:
    # A cluster on this machine runs this interpreter; a remote one, whatever `python` is on its head node.
    host = "127.0.0.1" if address is None else urlparse(address).hostname or ""
    return sys.executable if host in ("127.0.0.1", "localhost", "::1") else "python"


def cluster_nodes() -> list[ClusterNode]:
    """The connected cluster's nodes with their resources and labels; none when Ray is not initialised."""
    import ray

    return nodes_from_ray(ray.nodes()) if ray.is_initialized() else []  # type: ignore[no-untyped-call]


def submit_job(
    spec: BatchJobSpec,
    fleet: FleetConfig,
    *,
    address: str | None = None,
    working_dir: str | None = None,
    requirements: str | Sequence[str] | None = None,
    nodes: Sequence[ClusterNode] = (),
) -> str:
    """Submit the job; returns its Ray Job submission id (the job id). `address` is the Jobs API (the dashboard's
    URL; None: the cluster this process is in, or the one on this machine). `working_dir` is uploaded and put on the
    job's path (the team's pipeline code); `requirements` (a requirements file or package list) is installed for it.
    The driver is placed on a node of the job's region when the cluster has one (serving.region_pinning)."""
    runtime_env: dict[str, Any] = {
        "env_vars": {SPEC_ENV: spec.model_dump_json(), FLEET_ENV: fleet.model_dump_json()},
    }
    if working_dir is not None:
        runtime_env["working_dir"] = working_dir
        runtime_env["excludes"] = WORKING_DIR_EXCLUDES
    if requirements is not None:
        runtime_env["pip"] = requirements if isinstance(requirements, str) else list(requirements)
    placement = region_placement(fleet.region(spec.region), fleet.serving.region_pinning, nodes)
    client = _client(address)
    try:
        submission_id: str = client.submit_job(
            entrypoint=f"{_python_for(address)} -m batch.job",
            submission_id=spec.job_id,
            runtime_env=runtime_env,
            metadata=job_metadata(spec),
            entrypoint_num_cpus=0,
            entrypoint_resources=dict(placement.get("resources", {})) or None,
            entrypoint_label_selector=dict(placement.get("label_selector", {})) or None,
        )
    except RuntimeError as error:
        raise JobSpecError(f"job {spec.job_id}: the Ray Jobs API refused it: {error}") from None
    return submission_id


def job_metadata(spec: BatchJobSpec) -> dict[str, str]:
    """The Ray Job's metadata (strings only): what lists it as gridshift's, and whose it is at which tier."""
    metadata = {"gridshift": JOB_KIND, "region": spec.region, "pipeline": spec.pipeline}
    if spec.tenant_id is not None:
        metadata["tenant_id"] = spec.tenant_id
    if spec.flex_tier is not None:
        metadata["flex_tier"] = str(spec.flex_tier)
    return metadata


def _tier(metadata: dict[str, str]) -> int | None:
    text = metadata.get("flex_tier", "")
    return int(text) if text.isdigit() else None


def ray_jobs(address: str | None = None) -> list[RayJobState]:
    """Every gridshift batch job the cluster's Jobs API knows, with its Ray status and where its driver runs."""
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
        for info in _client(address).list_jobs()
        if (info.metadata or {}).get("gridshift") == JOB_KIND and info.submission_id
    ]


def stop_jobs(address: str | None = None) -> list[str]:
    """Stop every running gridshift batch job (each resumes from its commit records when submitted again)."""
    client = _client(address)
    running = [job.submission_id for job in ray_jobs(address) if job.status in ("PENDING", "RUNNING")]
    for job_id in running:
        client.stop_job(job_id)
    return running


_RAY_STATES = {
    "PENDING": "pending",
    "RUNNING": "starting",
    "STOPPED": "stopped",
    "SUCCEEDED": "done",
    "FAILED": "failed",
}


def merged_statuses(reported: list[dict[str, object]], ray: list[RayJobState]) -> list[dict[str, object]]:
    """What operators see of batch jobs: each job's own report to the control plane, with its Ray Job's status; and
    jobs the control plane has not heard from (still starting, or failed before their first report) from Ray's."""
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
                "state": _RAY_STATES.get(job.status, job.status.lower()),
                "paused_by_operator": False,
                "reason": job.message,
                "rows_done": 0,
                "rows_total": 0,
                "rows_per_second": 0.0,
                "expected_resume": None,
                "expected_finish": None,
                "deadline": None,
                "on_track": None,
                "signal": None,
                "tenant_id": job.tenant_id,
                "flex_tier": job.flex_tier,
                "effects": [],
                "ray_status": job.status,
            }
        )
    return sorted(statuses, key=lambda status: str(status["job_id"]))
