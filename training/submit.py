"""Submitting training jobs as Ray Jobs (rayjobs.submission), so each shows in the Ray dashboard's Jobs tab and in
`ray job logs`, with the trainer's code and requirements in its runtime environment. The driver is light (num_cpus
0); Ray Train's workers take the CPUs."""

from __future__ import annotations

from collections.abc import Sequence

from fleet.config import FleetConfig
from rayjobs import submission
from rayjobs.driver import job_environment
from rayjobs.submission import RayJobState, cluster_nodes
from router.placement import ClusterNode
from training.job import SPEC_ENV
from training.spec import TrainingJobSpec, TrainingSpecError

__all__ = ["JOB_KIND", "RayJobState", "cluster_nodes", "merged_statuses", "ray_jobs", "submit_job"]

JOB_KIND = "gridshift-training"
"""The `gridshift` metadata value of a training job's Ray Job (what `gridshift train status` lists)."""


def submit_job(
    spec: TrainingJobSpec,
    fleet: FleetConfig,
    *,
    address: str | None = None,
    working_dir: str | None = None,
    requirements: str | Sequence[str] | None = None,
    nodes: Sequence[ClusterNode] = (),
) -> str:
    """Submit the job; returns its Ray Job submission id (the job id). `address`: the Jobs API (the dashboard's
    URL; None: the cluster this process is in, or the one on this machine). The driver is placed on a node of the
    job's region when the cluster has one."""
    job = submission.Submission(
        job_id=spec.job_id,
        region=spec.region,
        entry_module="training.job",
        env_vars=job_environment(SPEC_ENV, spec, fleet),
        metadata={
            "gridshift": JOB_KIND,
            "region": spec.region,
            "trainer": spec.trainer,
            **submission.tenancy_metadata(spec.tenant_id, spec.flex_tier),
        },
    )
    return submission.submit(
        job, fleet, TrainingSpecError, address=address, working_dir=working_dir, requirements=requirements, nodes=nodes
    )


def ray_jobs(address: str | None = None) -> list[RayJobState]:
    """Every gridshift training job the cluster's Jobs API knows, with its Ray status."""
    return submission.list_jobs(JOB_KIND, TrainingSpecError, address)


def merged_statuses(reported: list[dict[str, object]], ray: list[RayJobState]) -> list[dict[str, object]]:
    """What operators see of training jobs: each job's own report with its Ray Job's status, and jobs not heard
    from."""
    return submission.merged_statuses(reported, ray, {})
