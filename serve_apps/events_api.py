"""HTTP routes of grid events (`/v1/admin/events`, admin): list, post (a DR event in a fleet region, effective on this
replica at once and on the others within one refresh), clear; mounted by serve_apps.http_api.create_app."""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Request
from fastapi import params as fastapi_params
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError

from fleet.errors import UnknownRegionError
from fleet.events import DREvent
from policies.control_api import ControlApi
from serve_apps.api_schema import ApiError, EventRequest, read_json, require_region, validated
from serve_apps.gateway import GatewayCore


def events_router(core: GatewayCore, admin_only: Sequence[fastapi_params.Depends]) -> APIRouter:
    """The routes; `admin_only` is the app's admin dependency."""
    router = APIRouter()

    @router.get("/v1/admin/events", dependencies=admin_only)
    async def list_events() -> dict[str, Any]:
        events = await core.control.call(ControlApi.list_events)
        return {"events": [event.model_dump(mode="json") for event in events]}

    @router.post("/v1/admin/events", status_code=201, dependencies=admin_only)
    async def post_event(raw: Request) -> dict[str, Any]:
        body = await read_json(raw, max_bytes=16_384)
        spec = validated(EventRequest, body)
        require_region(core.fleet.region_names, spec.region)
        # "Now" floored to the second: the control plane evaluates events at whole seconds, so an event that
        # started at a fractional now would stay inactive until the next second.
        start = spec.start or datetime.fromtimestamp(
            math.floor(await core.control.call(ControlApi.clock_now_s)), tz=UTC
        )
        try:
            event = DREvent(
                region=spec.region,
                level=spec.level,
                power_limit_kw=spec.power_limit_kw,
                start=start,
                end=spec.end,
                source=spec.source,
            )
        except ValidationError as error:
            raise RequestValidationError(error.errors()) from None
        try:
            posted = await core.control.call(ControlApi.post_event, event)
        except UnknownRegionError as error:
            raise ApiError(422, str(error), param="region") from None
        await core.refresh()  # route on it from this replica at once; others within one refresh period
        return {"event": posted.model_dump(mode="json")}

    @router.delete("/v1/admin/events/{event_id}", dependencies=admin_only)
    async def clear_event(event_id: str) -> dict[str, Any]:
        cleared = await core.control.call(ControlApi.clear_event, event_id)
        if cleared is None:
            raise ApiError(404, f"no event {event_id!r}", param="event_id")
        await core.refresh()
        return {"cleared": cleared.model_dump(mode="json")}

    return router
