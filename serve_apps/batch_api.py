"""HTTP routes of batch jobs (`/v1/batch/jobs`): submit as a Ray Job (the admin token, or a tenant key: the job is
the tenant's, at its tier), list and read their status, pause and resume (admin); mounted by
serve_apps.http_api.create_app."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi import params as fastapi_params

from batch.spec import BatchJobSpec
from batch.submit import merged_statuses
from fleet.errors import GridshiftError
from policies.control_api import ControlApi
from serve_apps.api_schema import ApiError, read_json, require_region, validated
from serve_apps.gateway import GatewayCore
from serve_apps.tenant_auth import Submitter, job_body, job_submitter

logger = logging.getLogger("gridshift.http")

PATH = "/v1/batch/jobs"


def batch_router(
    core: GatewayCore,
    admin_only: Sequence[fastapi_params.Depends],
) -> APIRouter:
    """The routes; `admin_only` is the app's admin dependency."""
    router = APIRouter()

    @router.post(PATH, status_code=202)
    async def submit_job(raw: Request, who: Annotated[Submitter, Depends(job_submitter)]) -> dict[str, Any]:
        if core.batch_launcher is None:
            raise ApiError(404, "this gateway does not run batch jobs")
        body = job_body(await read_json(raw, max_bytes=16_384), who)
        if isinstance(body, dict) and "job_id" not in body:
            body = {**body, "job_id": uuid.uuid4().hex[:12]}
        job = validated(BatchJobSpec, body)
        require_region(core.fleet.region_names, job.region)
        try:
            await core.batch_launcher.launch(job)
        except GridshiftError as error:  # bad pipeline, unreadable input, unusable output
            raise ApiError(422, str(error)) from None
        return {"job_id": job.job_id, "state": "submitted", "tenant_id": job.tenant_id, "flex_tier": job.flex_tier}

    async def job_statuses() -> list[dict[str, Any]]:
        reported = await core.control.call(ControlApi.job_statuses)
        if core.batch_launcher is None:
            return reported
        try:
            ray = await core.batch_launcher.ray_jobs()
        except GridshiftError:  # the Jobs API is down: the control plane's reports still stand
            logger.warning("Ray Jobs API unavailable; batch status from the control plane only", exc_info=True)
            ray = []
        return merged_statuses(reported, ray)

    @router.get(PATH)
    async def list_jobs() -> dict[str, Any]:
        return {"jobs": await job_statuses()}

    @router.get(PATH + "/{job_id}")
    async def get_job(job_id: str) -> dict[str, Any]:
        for status in await job_statuses():
            if status["job_id"] == job_id:
                return status
        raise ApiError(404, f"no batch job {job_id!r}", param="job_id")

    @router.post(PATH + "/{job_id}/{action}", dependencies=list(admin_only))
    async def control_job(job_id: str, action: str) -> dict[str, Any]:
        if action not in ("pause", "resume"):
            raise ApiError(404, f"unknown action {action!r}: use pause or resume", param="action")
        known = await core.control.call(ControlApi.pause_job if action == "pause" else ControlApi.resume_job, job_id)
        if not known:
            raise ApiError(404, f"no batch job {job_id!r}", param="job_id")
        return {"job_id": job_id, "requested": action}

    return router
