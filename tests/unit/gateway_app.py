"""An in-process gateway app over a real ControlPlane on the packaged trace, with fake regions (no Ray, no model)."""

from __future__ import annotations

import functools

from fastapi import FastAPI

from batch.spec import BatchJobSpec
from batch.submit import RayJobState
from fleet.clock import FixedClock
from fleet.loaders import load_fleet, load_rtt_matrix, parse_fleet
from grid.context import FleetContext, load_context
from policies.actors.client import LocalClient
from policies.control import ControlPlane
from serve_apps.admin_token import admin_token_digest
from serve_apps.gateway import GatewayCore
from serve_apps.http_api import create_app
from serve_apps.provider import Provider
from tenants.store import TenantStore
from tests.fakes import FakeRegion

PEAK_S = 1_662_512_400  # 2022-09-07T01:00Z: CISO at stress 3
TOKEN = "test-admin-token-0123456789"
ADMIN = {"Authorization": f"Bearer {TOKEN}"}
REGIONS = ("us-east-1", "us-east-2", "us-west-1", "us-west-2")


class AcceptingLauncher:
    """Accepts every valid job without running it: what reaches it passed the API's validation."""

    def __init__(self) -> None:
        self.launched: list[BatchJobSpec] = []

    async def launch(self, spec: BatchJobSpec) -> None:
        self.launched.append(spec)

    async def ray_jobs(self) -> list[RayJobState]:
        return [RayJobState(spec.job_id, "PENDING", "", spec.region, None) for spec in self.launched]


@functools.cache
def _context() -> FleetContext:
    return load_context(load_fleet())


def gateway_app(
    regions: dict[str, FakeRegion] | None = None, warm_precisions: tuple[str, ...] = ("fp32",)
) -> tuple[FastAPI, GatewayCore]:
    context = _context()
    # No WAN emulation in unit tests: it would only add sleeps.
    fleet = context.fleet.model_copy(
        update={"gateway": context.fleet.gateway.model_copy(update={"wan_emulation": False})}
    )
    plane = ControlPlane(FleetContext(fleet, context.trace, context.rtt_ms), FixedClock(PEAK_S), FixedClock(0.0))
    backends = regions if regions is not None else {name: FakeRegion(name) for name in REGIONS}
    core = GatewayCore(
        fleet,
        load_rtt_matrix(fleet.latency),
        LocalClient(plane),
        backends,
        batch_launcher=AcceptingLauncher(),
        warm_precisions=warm_precisions,
    )
    # Tenants in memory: nothing a test (or the fuzzer) creates reaches a file.
    provider = Provider(fleet, context, TenantStore.open("sqlite://"))
    return create_app(core, admin_token_digest(TOKEN), provider), core


def admission_core(regions: dict[str, FakeRegion], *, batch: int = 16, concurrency: int = 2) -> GatewayCore:
    """A gateway core over fake regions with small admission bounds, the policy off, at the heat-wave peak."""
    data = load_fleet().model_dump(mode="json")
    # Small bounds: 2 running + 2 queued per region (tolerant work: 3 with the reserve), no WAN sleeps.
    data["gateway"].update(wan_emulation=False, admission_queue_factor=1.0, realtime_reserve=0.25)
    data["serving"]["knobs"].update(max_concurrency=concurrency, max_batch_size=batch)
    for step in data["policy"]["steps"]:
        step["max_concurrency"] = min(step["max_concurrency"], concurrency)
        step["max_batch_size"] = min(step["max_batch_size"], batch)
    data["policy"]["enabled"] = False
    fleet = parse_fleet(data, source="admission test")
    context = load_context(load_fleet())
    plane = ControlPlane(FleetContext(fleet, context.trace, context.rtt_ms), FixedClock(PEAK_S), FixedClock(0.0))
    return GatewayCore(fleet, load_rtt_matrix(fleet.latency), LocalClient(plane), regions)
