"""Submitting batch jobs as Ray Jobs (rayjobs.submission), so each shows in the Ray dashboard's Jobs tab and in
`ray job logs`, with the pipeline's code and requirements shipped in its runtime environment."""

from __future__ import annotations

from collections.abc import Sequence

from batch.job import SPEC_ENV
from batch.spec import BatchJobSpec, JobSpecError
from fleet.config import FleetConfig
from rayjobs import submission
from rayjobs.driver import job_environment
from rayjobs.submission import RayJobState, cluster_nodes
from router.placement import ClusterNode

__all__ = ["JOB_KIND", "RayJobState", "cluster_nodes", "merged_statuses", "ray_jobs", "stop_jobs", "submit_job"]

JOB_KIND = "gridshift-batch"
"""The `gridshift` metadata value of a batch job's Ray Job (what `gridshift batch status` lists)."""

_UNREPORTED = {
    "paused_by_operator": False,
    "rows_done": 0,
    "rows_total": 0,
    "rows_per_second": 0.0,
    "expected_resume": None,
    "expected_finish": None,
    "deadline": None,
    "on_track": None,
    "signal": None,
}
"""A batch job's status fields before its first report."""


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
    job = submission.Submission(
        job_id=spec.job_id,
        region=spec.region,
        entry_module="batch.job",
        env_vars=job_environment(SPEC_ENV, spec, fleet),
        metadata=job_metadata(spec),
    )
    return submission.submit(
        job, fleet, JobSpecError, address=address, working_dir=working_dir, requirements=requirements, nodes=nodes
    )


def job_metadata(spec: BatchJobSpec) -> dict[str, str]:
    """The Ray Job's metadata (strings only): what lists it as gridshift's, and whose it is at which tier."""
    return {
        "gridshift": JOB_KIND,
        "region": spec.region,
        "pipeline": spec.pipeline,
        **submission.tenancy_metadata(spec.tenant_id, spec.flex_tier),
    }


def ray_jobs(address: str | None = None) -> list[RayJobState]:
    """Every gridshift batch job the cluster's Jobs API knows, with its Ray status and where its driver runs."""
    return submission.list_jobs(JOB_KIND, JobSpecError, address)


def stop_jobs(address: str | None = None) -> list[str]:
    """Stop every running gridshift batch job (each resumes from its commit records when submitted again)."""
    return submission.stop_jobs(JOB_KIND, JobSpecError, address)


def merged_statuses(reported: list[dict[str, object]], ray: list[RayJobState]) -> list[dict[str, object]]:
    """What operators see of batch jobs: each job's own report with its Ray Job's status, and jobs not heard from."""
    return submission.merged_statuses(reported, ray, _UNREPORTED)
