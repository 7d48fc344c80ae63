"""The VEN as it runs in the fleet: the `gridshift-openadr` Ray actor against a local spec-following VTN.

The session's Ray cluster and control actor; a LocalVTN on loopback in this process (its own event loop thread);
the VEN actor started for a copy of the session's fleet with an `openadr` section. An event posted on the VTN
reaches the control actor as a utility DR event at once (webhook), its status is served by the gateway, the VTN
receives a capacity report with the policy's figures, and deleting the event clears it.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Coroutine, Iterator
from typing import Any, TypeVar

import httpx
import pytest

from fleet.loaders import parse_fleet
from openadr.timing import format_instant
from openadr.vtn import LocalVTN
from tests.integration.conftest import OPENADR_CLIENT, Deployed
from tests.integration.polling import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.slow]

REGION = "us-west-2"
T = TypeVar("T")


class VtnThread:
    """A LocalVTN served from its own event loop thread, with a way to run its business-logic helpers."""

    def __init__(self, clock: Any) -> None:
        self.loop = asyncio.new_event_loop()
        self.vtn = LocalVTN(
            "3.1.0", clock, {OPENADR_CLIENT[0]: (OPENADR_CLIENT[1], "ven"), "bl": ("bl-secret-012345678", "bl")}
        )
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._thread.start()
        self.call(self.vtn.start())

    def call(self, coroutine: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout=30)

    def close(self) -> None:
        self.call(self.vtn.stop())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=10)


class ControlClockView:
    """The control actor's clock, as the VTN should stamp things (trace time at the session's real-time replay)."""

    def __init__(self, control: Any) -> None:
        import ray

        self._origin = float(ray.get(control.clock_now_s.remote()))
        self._started = time.monotonic()

    def now_s(self) -> float:
        return self._origin + time.monotonic() - self._started


@pytest.fixture
def vtn(deployed: Deployed) -> Iterator[VtnThread]:
    served = VtnThread(ControlClockView(deployed.control))
    try:
        yield served
    finally:
        served.close()


def test_the_ven_actor_carries_a_vtn_event_to_the_fleet_and_reports_back(deployed: Deployed, vtn: VtnThread) -> None:
    import ray

    from policies.actors.openadr import get_or_create_openadr_actor

    data = deployed.fleet.model_dump(mode="json")
    data["openadr"] = {
        "vtn_url": vtn.vtn.url,
        "spec_version": "3.1.0",
        "ven_name": "gridshift-live-test",
        "poll_interval_s": 2.0,
        "request_timeout_s": 5.0,
        "retry_backoff_s": 0.05,
        "sample_period_s": 0.5,
    }
    fleet = parse_fleet(data, source="openadr live test fleet")
    program = vtn.call(vtn.vtn.create("program", {"programName": "live-dr"}))
    actor = get_or_create_openadr_actor(fleet)
    try:

        def status() -> httpx.Response:
            return httpx.get(f"{deployed.url}/v1/openadr/status", timeout=5)

        wait_for(lambda: status().status_code == 200 and status().json()["registered"], 60.0, "VEN registered")
        now_s = ControlClockView(deployed.control).now_s()
        event = vtn.call(
            vtn.vtn.create(
                "event",
                {
                    "programID": program["id"],
                    "eventName": "live emergency",
                    "targets": [REGION],
                    "intervalPeriod": {"start": format_instant(now_s - 60), "duration": "PT1H"},
                    "intervals": [{"id": 0, "payloads": [{"type": "SIMPLE", "values": [3]}]}],
                },
            )
        )

        def utility_events() -> list[Any]:
            return [e for e in ray.get(deployed.control.list_events.remote()) if e.source == "utility"]

        wait_for(lambda: [(e.region, e.level) for e in utility_events()] == [(REGION, 3)], 5.0, "the event applied")
        # The fleet reacts: tolerant work from California leaves Oregon, now in emergency.
        response = httpx.post(
            f"{deployed.url}/v1/embeddings",
            json={"input": ["the utility asked"], "model": "all-MiniLM-L6-v2"},
            headers={"X-Gridshift-Origin": "us-west-1", "X-Gridshift-Class": "tolerant"},
            timeout=30,
        )
        assert response.status_code == 200
        wait_for(
            lambda: any("capacity" in str(r.body.get("reportName")) for r in vtn.vtn.received if r.path == "/reports"),
            20.0,
            "a capacity report at the VTN",
        )
        assert vtn.vtn.refused == []
        report = next(r.body for r in vtn.vtn.received if r.path == "/reports")
        payloads = {p["type"]: p["values"][0] for p in report["resources"][0]["intervals"][0]["payloads"]}
        assert payloads["BASELINE"] > 0
        assert payloads["LOAD_SHED_DELTA_AVAILABLE"] >= 0
        # The VEN pushes its status to the control plane every second; the gateway serves it.
        wait_for(lambda: [e["regions"] for e in status().json()["events"]] == [[REGION]], 5.0, "status shows it")
        vtn.call(vtn.vtn.delete("event", event["id"]))
        wait_for(lambda: utility_events() == [], 5.0, "the event cleared")
    finally:
        ray.kill(actor, no_restart=True)
        for leftover in [e for e in ray.get(deployed.control.list_events.remote()) if e.source == "utility"]:
            ray.get(deployed.control.clear_event.remote(leftover.event_id))
