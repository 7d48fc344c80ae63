"""HTTP routes of training jobs (`/v1/training/jobs`): submit as a Ray Job (the admin token, or a tenant key: the job
is the tenant's, at its tier), list and read their status, pause and resume (admin); mounted by
serve_apps.http_api.create_app."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Sequence
from typing import Annotated, Any, Protocol

from fastapi import APIRouter, Depends, Request
from fastapi import params as fastapi_params

from fleet.config import FleetConfig
from fleet.errors import GridshiftError
from policies.control_api import ControlApi
from serve_apps.api_schema import ApiError, read_json, validated
from serve_apps.gateway import GatewayCore
from serve_apps.tenant_auth import Submitter, job_body, job_submitter
from training.spec import TrainingJobSpec, TrainingSpecError
from training.submit import RayJobState, merged_statuses

logger = logging.getLogger("gridshift.http")

PATH = "/v1/training/jobs"


class TrainingLauncher(Protocol):
    """Starts training jobs in the cluster (as Ray Jobs), and lists them as the cluster knows them."""

    async def launch(self, spec: TrainingJobSpec, now_s: float) -> None:
        """Validate the job (trainer, storage, deadline at control-clock `now_s`) and start it; a GridshiftError
        names the field that is wrong."""
        ...

    async def ray_jobs(self) -> list[RayJobState]: ...


class RayJobsTrainingLauncher:
    """Submits training jobs to this cluster's Jobs API (they show in the dashboard and `ray job logs`)."""

    def __init__(self, fleet: FleetConfig) -> None:
        self._fleet = fleet

    async def launch(self, spec: TrainingJobSpec, now_s: float) -> None:
        # Validation imports the trainer and writes a probe to storage; submission is an HTTP call: off the loop.
        await asyncio.to_thread(self._submit, spec, now_s)

    def _submit(self, spec: TrainingJobSpec, now_s: float) -> None:
        from training.job import check_deadline
        from training.spec import validate_spec
        from training.submit import cluster_nodes, submit_job

        validate_spec(spec)
        check_deadline(spec, self._fleet, now_s)
        submit_job(spec, self._fleet, nodes=cluster_nodes())

    async def ray_jobs(self) -> list[RayJobState]:
        from training.submit import ray_jobs

        return await asyncio.to_thread(ray_jobs)


def _field_of(error: GridshiftError) -> str | None:
    # The spec's errors start with the field they are about ("trainer '...': ...", "deadline: ...").
    head = str(error).split(" ", 1)[0].rstrip(":")
    return head if head in TrainingJobSpec.model_fields else None


def training_router(
    core: GatewayCore,
    admin_only: Sequence[fastapi_params.Depends],
    launcher: TrainingLauncher | None,
) -> APIRouter:
    """The routes; `admin_only` is the app's admin dependency, `launcher` None on a gateway that runs no jobs."""
    router = APIRouter()

    @router.post(PATH, status_code=202)
    async def submit(raw: Request, who: Annotated[Submitter, Depends(job_submitter)]) -> dict[str, Any]:
        if launcher is None:
            raise ApiError(404, "this gateway does not run training jobs")
        body = job_body(await read_json(raw, max_bytes=65_536), who)
        if isinstance(body, dict) and "job_id" not in body:
            body = {**body, "job_id": uuid.uuid4().hex[:12]}
        spec = validated(TrainingJobSpec, body)
        if spec.region not in core.fleet.region_names:
            raise ApiError(
                422, f"region: {spec.region!r} is not in the fleet {list(core.fleet.region_names)}", param="region"
            )
        try:
            await launcher.launch(spec, await core.control.call(ControlApi.clock_now_s))
        except TrainingSpecError as error:
            raise ApiError(422, str(error), param=_field_of(error)) from None
        except GridshiftError as error:
            raise ApiError(422, str(error)) from None
        return {"job_id": spec.job_id, "state": "submitted", "tenant_id": spec.tenant_id, "flex_tier": spec.flex_tier}

    async def statuses() -> list[dict[str, Any]]:
        reported: list[dict[str, Any]] = await core.control.call(ControlApi.training_statuses)
        if launcher is None:
            return reported
        try:
            ray = await launcher.ray_jobs()
        except GridshiftError:  # the Jobs API is down: the control plane's reports still stand
            logger.warning("Ray Jobs API unavailable; training status from the control plane only", exc_info=True)
            ray = []
        return merged_statuses(list(reported), ray)

    @router.get(PATH)
    async def list_jobs() -> dict[str, Any]:
        return {"jobs": await statuses()}

    @router.get(PATH + "/{job_id}")
    async def get_job(job_id: str) -> dict[str, Any]:
        for status in await statuses():
            if status["job_id"] == job_id:
                return status
        raise ApiError(404, f"no training job {job_id!r}", kind="not_found_error", param="job_id")

    @router.post(PATH + "/{job_id}/{action}", dependencies=list(admin_only))
    async def control_job(job_id: str, action: str) -> dict[str, Any]:
        if action not in ("pause", "resume"):
            raise ApiError(404, f"unknown action {action!r}: use pause or resume", param="action")
        method = ControlApi.pause_training if action == "pause" else ControlApi.resume_training
        answer = await core.control.call(method, job_id)
        if not answer.known:
            raise ApiError(404, answer.reason, kind="not_found_error", param="job_id")
        if not answer.accepted:
            raise ApiError(409, answer.reason, param="job_id")
        return {"job_id": job_id, "requested": action, "detail": answer.reason}

    return router
