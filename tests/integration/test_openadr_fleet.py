"""A full OpenADR event cycle through gridshift's own control plane, policy and gateway, without Ray.

The local spec-following VTN and the VEN talk real HTTP on loopback; the VEN drives a real ControlPlane (the
object the control actor wraps) through the same power figures and calls as the Ray port; the policy decides with
the real pure functions each "period"; the gateway is the real GatewayCore with instant fake regions. An event
posted on the VTN reaches the fleet at once by webhook, tolerant traffic leaves the region, its knobs step down,
a batch job there pauses, and the VTN receives a capacity report and usage reports whose figures are the control
plane's. Then the event is cleared and everything comes back.
"""

from __future__ import annotations

import asyncio
import random
from pathlib import Path
from typing import Any

import pytest

from fleet.clock import FixedClock
from fleet.events import DREvent, GridSignal
from fleet.loaders import load_fleet
from fleet.openadr import OpenADRConfig, WebhookConfig
from grid.context import FleetContext, load_context
from openadr.fleet import PowerReading
from openadr.timing import format_instant
from openadr.ven import VEN
from openadr.vtn import LocalVTN
from policies.actors.client import LocalClient
from policies.actors.openadr_port import power_reading
from policies.batch_gate import JobProgress
from policies.calibration import load_calibration
from policies.control import ControlPlane
from policies.ladder import decide_fleet
from serve_apps.gateway import GatewayCore
from tests.fakes import FakeRegion

pytestmark = [pytest.mark.integration, pytest.mark.slow]

PEAK_S = 1662512400.0  # 2022-09-07T01:00:00Z: California in emergency, Oregon calm
REGION = "us-west-2"
VEN_ID, VEN_SECRET = "ven-client", "ven-secret-0123456789"


class PlanePort:
    """The FleetPort over a ControlPlane in this process: what ControlActorFleetPort does over Ray."""

    def __init__(self, plane: ControlPlane) -> None:
        self.plane = plane

    async def power(self, region: str) -> PowerReading:
        return power_reading(region, self.plane.decisions.get(region), self.plane.clock.now_s())

    async def post_event(self, event: DREvent) -> None:
        self.plane.post_event(event)

    async def clear_event(self, event_id: str) -> None:
        self.plane.clear_event(event_id)

    async def set_signal(self, signal: GridSignal) -> None:
        self.plane.set_grid_signal(signal)

    async def clear_signal(self, signal_id: str) -> None:
        self.plane.clear_grid_signal(signal_id)


@pytest.fixture(scope="module")
def context() -> FleetContext:
    fleet = load_fleet().model_copy(
        update={"gateway": load_fleet().gateway.model_copy(update={"wan_emulation": False})}
    )
    loaded = load_context(fleet)
    return FleetContext(fleet, loaded.trace, loaded.rtt_ms)


@pytest.mark.parametrize("version", ["3.0.1", "3.1.0"])
def test_a_vtn_event_moves_traffic_turns_knobs_down_pauses_batch_and_gets_reports(
    version: str, context: FleetContext, tmp_path: Path
) -> None:
    asyncio.run(asyncio.wait_for(_cycle(version, context, tmp_path), timeout=60))


async def _cycle(version: str, context: FleetContext, tmp_path: Path) -> None:
    clock = FixedClock(PEAK_S)
    plane = ControlPlane(context, clock, FixedClock(0.0))
    fleet = context.fleet
    calibration = load_calibration()
    regions = {name: FakeRegion(name) for name in fleet.region_names}
    core = GatewayCore(fleet, context.rtt_ms, LocalClient(plane), regions, rng=random.Random(3))

    def policy_period() -> None:
        plane.publish_policy(decide_fleet(plane.policy_inputs(), plane.decisions, fleet, calibration))

    async def tolerant_regions(count: int = 20) -> set[str]:
        await core.refresh()
        request = core.route_request("us-west-1", "tolerant", None)
        return {(await core.serve(request, ["hello grid"])).result.region for _ in range(count)}

    # 100 rows at 10 rows/s: 10 wall s, two trace hours at the fleet's 720x replay; a day of slack.
    job = JobProgress("job-oadr", REGION, "carbon", PEAK_S + 86_400, "running", 0, 100, 10.0)
    policy_period()
    assert plane.decisions[REGION].step == 0
    assert await tolerant_regions() == {REGION}  # California's tolerant work goes to Oregon at the peak
    assert "policy" not in plane.batch_gate(job).reason

    clients = {VEN_ID: (VEN_SECRET, "ven"), "bl": ("bl-secret-0123456789", "bl")}
    async with LocalVTN(version, clock, clients) as vtn:  # type: ignore[arg-type]
        program = await vtn.create("program", {"programName": "heat-wave-dr"})
        config = OpenADRConfig(
            vtn_url=vtn.url,
            spec_version=version,
            ven_name="gridshift-ven",
            poll_interval_s=3600.0,  # only the webhook is fast: it must carry the event
            request_timeout_s=2.0,
            retry_backoff_s=0.01,
            webhook=WebhookConfig(),
        )
        capacity = {region.name: region.capacity_kw for region in fleet.regions}
        ven = VEN(
            config, capacity, PlanePort(plane), clock, credentials=(VEN_ID, VEN_SECRET), status_file=tmp_path / "s"
        )
        async with ven:
            assert await ven.register()
            assert await ven.poll_once()
            await ven.subscribe()
            assert ven.subscriptions
            targets: list[Any] = [REGION] if version == "3.1.0" else [{"type": "RESOURCE_NAME", "values": [REGION]}]
            event = await vtn.create(
                "event",
                {
                    "programID": program["id"],
                    "eventName": "oregon emergency",
                    "targets": targets,
                    "intervalPeriod": {"start": format_instant(PEAK_S), "duration": "PT1H"},
                    "intervals": [{"id": 0, "payloads": [{"type": "SIMPLE", "values": [3]}]}],
                },
            )
            # The VTN answers the create after its webhook: the control plane already has the event.
            posted = [e for e in plane.events.values() if e.region == REGION]
            assert [(e.level, e.source) for e in posted] == [(3, "utility")]

            policy_period()
            decision = plane.decisions[REGION]
            assert decision.step == 3
            lease = plane.knobs_lease(REGION)
            assert lease.knobs.max_batch_size == 4
            assert lease.knobs.precision_for("tolerant").value == "bf16"
            assert REGION not in await tolerant_regions()  # tolerant work left Oregon
            answer = plane.batch_gate(job)
            assert not answer.run
            assert "rung 3" in answer.reason

            # Reports: capacity at once for the new event, then usage as its interval closes.
            await ven.sample_once()
            await ven.report_once()
            clock.advance(3600)
            policy_period()
            await ven.sample_once()
            await ven.report_once()
            await vtn.delete("event", event["id"])
            assert not [e for e in plane.events.values() if e.region == REGION]

    reports = [r.body for r in vtn.received if r.path.startswith("/reports")]
    assert vtn.refused == []  # every report validated against the spec's schema at the VTN
    by_name = {str(body["reportName"]): body for body in reports}
    capacity_report = next(body for name, body in by_name.items() if "capacity" in name)
    figures = {p["type"]: p["values"][0] for p in capacity_report["resources"][0]["intervals"][0]["payloads"]}
    flexible_total = sum(decision.power.flexible_kw.values())
    assert figures["LOAD_SHED_DELTA_AVAILABLE"] == pytest.approx(flexible_total, rel=1e-6)
    assert figures["DEMAND"] == pytest.approx(decision.power.grid_kw, rel=1e-6)
    assert figures["BASELINE"] == pytest.approx(decision.power.baseline_kw, rel=1e-6)
    usage = [body for name, body in by_name.items() if "usage" in name]
    assert usage, list(by_name)
    # After the clear, the region recovers a rung per dwell (900 s): rung 0 an hour later.
    for _ in range(5):
        clock.advance(900)
        policy_period()
    assert plane.decisions[REGION].step == 0
    assert "policy" not in plane.batch_gate(job).reason
