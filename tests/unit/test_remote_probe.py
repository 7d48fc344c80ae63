"""Multi-cluster mode in the gateway: a remote (endpoint_url) region is probed while up, so a dead remote is marked
down before any request fails there, and its health and the gateway's load on it reach the control state."""

from __future__ import annotations

import asyncio

import pytest

from fleet.clock import FixedClock
from fleet.loaders import load_fleet, parse_fleet
from grid.context import FleetContext, load_context
from policies.actors.client import LocalClient
from policies.control import ControlPlane
from policies.control_state import ControlState
from router.routing import RouteRequest
from serve_apps.backends import RegionalResult
from serve_apps.gateway import GatewayCore
from tests.fakes import FakeRegion

PEAK_S = 1_662_512_400  # 2022-09-07T01:00Z: tolerant work from us-west-1 goes to us-west-2
REMOTE = "us-west-2"


class HeldRegion(FakeRegion):
    """A remote region whose answers wait until released, so a request can be held in flight."""

    def __init__(self, region: str) -> None:
        super().__init__(region)
        self.release = asyncio.Event()

    async def embed(self, texts: list[str], timeout_s: float, workload_class: str = "tolerant") -> RegionalResult:
        if texts != ["probe"]:
            await self.release.wait()
        return await super().embed(texts, timeout_s, workload_class)


@pytest.fixture(scope="module")
def context() -> FleetContext:
    data = load_fleet().model_dump(mode="json")
    for region in data["regions"]:
        if region["name"] == REMOTE:
            region["endpoint_url"] = "http://127.0.0.1:23901"
    data["gateway"]["wan_emulation"] = False
    return load_context(parse_fleet(data, source="multi-cluster test fleet"))


def _core(context: FleetContext) -> tuple[GatewayCore, dict[str, FakeRegion]]:
    regions: dict[str, FakeRegion] = {name: FakeRegion(name) for name in context.fleet.region_names}
    regions[REMOTE] = HeldRegion(REMOTE)
    plane = ControlPlane(context, FixedClock(PEAK_S), FixedClock(0.0))
    return GatewayCore(context.fleet, context.rtt_ms, LocalClient(plane), regions), regions


def _remote_state(state: ControlState) -> tuple[bool, float]:
    remote = next(s for s in state.snapshot.states if s.name == REMOTE)
    return remote.healthy, remote.utilization


def test_a_dead_remote_is_marked_down_by_probes_alone_and_comes_back(context: FleetContext) -> None:
    async def run() -> None:
        core, regions = _core(context)
        await core.refresh()
        assert core.state is not None
        assert _remote_state(core.state)[0]
        regions[REMOTE].failing = True
        for _ in range(context.fleet.gateway.unhealthy_after_failures):
            await core.probe_once()
        assert REMOTE in core.health.down
        assert regions[REMOTE].calls == context.fleet.gateway.unhealthy_after_failures  # probes only, no requests
        await core.refresh()
        assert not _remote_state(core.state)[0]  # the control state knows
        tolerant = core.route_request("us-west-1", "tolerant", None)
        assert REMOTE not in core.decide(tolerant, core.state).ranked
        regions[REMOTE].failing = False
        await core.probe_once()
        assert REMOTE not in core.health.down
        await core.refresh()
        assert _remote_state(core.state)[0]
        assert core.decide(tolerant, core.state).region == REMOTE

    asyncio.run(run())


def test_healthy_in_cluster_regions_are_not_probed(context: FleetContext) -> None:
    async def run() -> None:
        core, regions = _core(context)
        await core.probe_once()
        assert regions[REMOTE].calls == 1
        assert all(r.calls == 0 for name, r in regions.items() if name != REMOTE)
        regions["us-east-1"].failing = True
        core.health.failed("us-east-1")
        core.health.failed("us-east-1")  # marked down by failed requests: now probed until it answers
        await core.probe_once()
        assert regions["us-east-1"].calls == 1

    asyncio.run(run())


def test_the_gateways_load_on_a_remote_reaches_the_control_state(context: FleetContext) -> None:
    async def run() -> None:
        core, regions = _core(context)
        await core.refresh()
        request = RouteRequest("us-west-1", "tolerant", context.fleet.workload_classes["tolerant"].mode, 150.0)
        in_flight = [asyncio.create_task(core.serve(request, ["shift me"])) for _ in range(4)]
        await asyncio.sleep(0)  # let them reach the remote and wait there
        assert core.in_flight[REMOTE] == 4
        await core.refresh()
        assert core.state is not None
        assert _remote_state(core.state)[1] > 0
        held = regions[REMOTE]
        assert isinstance(held, HeldRegion)
        held.release.set()
        served = await asyncio.gather(*in_flight)
        assert {s.result.region for s in served} == {REMOTE}
        await core.refresh()
        assert _remote_state(core.state)[1] == 0

    asyncio.run(run())
