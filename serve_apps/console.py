"""Operator console: the `/console` page (static files shipped in the package, no build step) and the read-only data
endpoints it polls. Readable without the admin token; posting and clearing DR events go through the admin API."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, FastAPI, Query
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles

from grid.headroom import STRESS_NAMES
from grid.signal_health import status_to_dict
from policies.control_api import ControlApi
from policies.control_history import HISTORY_SPAN_S, ControlSample, operator_jobs, sample_to_dict
from policies.power import Lever
from serve_apps.gateway import GatewayCore
from serve_apps.metrics import best_effort, region_staleness

STATIC_DIR = Path(__file__).resolve().parent / "static" / "console"
CONSOLE_SCHEMA = "gridshift.console/v1"
POLL_MS = 500
"""How often the page polls: a posted DR event then shows within about one refresh plus one poll (< 1 s)."""
HISTORY_EVERY_S = 5.0
"""Thinning of the hour of history the page opens with (about 720 points per region)."""


def mount_console(app: FastAPI, core: GatewayCore) -> None:
    """Add `/console`, its static files and its data endpoints to the gateway's app."""
    fleet = core.fleet
    router = APIRouter(prefix="/console", tags=["console"])

    @router.get("", include_in_schema=False)
    async def console_page() -> FileResponse:
        return FileResponse(STATIC_DIR / "index.html", media_type="text/html")

    @router.get("/api/fleet")
    async def console_fleet() -> dict[str, Any]:
        """What does not change while the gateway runs: the regions, levers, stress names and polling cadence."""
        return {
            "schema": CONSOLE_SCHEMA,
            "name": fleet.name,
            "regions": [
                {
                    "name": region.name,
                    "zone": region.zone,
                    "capacity_kw": region.capacity_kw,
                    "battery_kwh": None if region.battery is None else region.battery.capacity_kwh,
                    "remote": region.endpoint_url is not None,
                }
                for region in fleet.regions
            ],
            "levers": [lever.value for lever in Lever],
            "stress_names": {str(level): name for level, name in STRESS_NAMES.items()},
            "poll_ms": POLL_MS,
            "history_every_s": HISTORY_EVERY_S,
            "history_span_s": HISTORY_SPAN_S,
        }

    @router.get("/api/live")
    async def console_live(
        after: Annotated[
            float | None, Query(ge=0.0, description="Only samples newer than this wall_s (default: all).")
        ] = None,
        every: Annotated[float, Query(ge=0.0, le=3600.0, description="At most one sample per this many s.")] = 0.0,
    ) -> dict[str, Any]:
        """Control-state samples newer than `after` (the timeline), and now: DR events, signal sources and each
        region's staleness, batch and training jobs, the OpenADR VEN's status."""
        state = await core.ready_state()
        samples: list[ControlSample] | None
        batch: list[dict[str, object]] | None
        training: list[dict[str, object]] | None
        samples, batch, training, openadr = await asyncio.gather(
            best_effort(core.control.call(ControlApi.history, after, every), None),
            best_effort(core.control.call(ControlApi.job_statuses), None),
            best_effort(core.control.call(ControlApi.training_statuses), None),
            best_effort(core.control.call(ControlApi.openadr_status), None),
        )
        snap = state.snapshot
        return {
            "schema": CONSOLE_SCHEMA,
            "samples": None if samples is None else [sample_to_dict(sample) for sample in samples],
            "events": [event.model_dump(mode="json") for event in state.events],
            "signal_sources": None if state.signals is None else status_to_dict(state.signals)["sources"],
            "staleness": {r.config.name: region_staleness(r, snap.at_s) for r in snap.regions},
            "jobs": None if batch is None or training is None else operator_jobs(batch, training),
            "openadr": openadr,
            "gateway": {"replica": core.gateway_id, "regions_down": sorted(core.health.down)},
        }

    app.include_router(router)
    app.mount("/console/static", StaticFiles(directory=STATIC_DIR), name="console-static")
