"""The operator console in-process: the control history's ring buffer, the page and its static files, and the data
endpoints it polls, over a real ControlPlane on the real trace (only the model is faked)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from fleet.clock import FixedClock
from fleet.loaders import load_fleet, load_rtt_matrix
from grid.context import FleetContext, load_context
from policies.actors.client import LocalClient
from policies.calibration import load_calibration
from policies.control import ControlPlane
from policies.control_api import ControlApi
from policies.control_history import ControlHistory, sample_to_dict
from policies.ladder import decide_fleet
from serve_apps.admin_token import admin_token_digest
from serve_apps.console import STATIC_DIR
from serve_apps.gateway import GatewayCore
from serve_apps.http_api import create_app
from tests.fakes import FakeRegion

PEAK_S = 1_662_512_400  # 2022-09-07T01:00Z: CISO (us-west-1) at stress 3, tolerant work from there goes to us-west-2
TOKEN = "console-test-token-0123456789"
ADMIN = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture(scope="module")
def context() -> FleetContext:
    return load_context(load_fleet())


def _plane(context: FleetContext, wall_s: float = 1000.0) -> tuple[ControlPlane, FixedClock, FixedClock]:
    clock, wall = FixedClock(PEAK_S), FixedClock(wall_s)
    return ControlPlane(context, clock, wall), clock, wall


# The ring buffer ------------------------------------------------------------------------------------------------


def test_history_samples_once_a_second_and_at_once_on_a_change(context: FleetContext) -> None:
    from fleet.events import DREvent

    plane, clock, wall = _plane(context)
    plane.state()
    assert len(plane.history()) == 1
    wall.advance(0.5)
    clock.advance(60)
    plane.state()
    assert len(plane.history()) == 1  # nothing routing cares about changed, and under a second passed
    wall.advance(0.1)
    event = plane.post_event(DREvent(region="us-west-2", level=3, start=plane.now()))
    plane.state()
    samples = plane.history()
    assert len(samples) == 2  # the event is sampled at once
    west2 = next(r for r in samples[-1].regions if r.region == "us-west-2")
    assert (west2.stress_level, west2.event_level) == (3, 3)
    assert samples[-1].events == ((event.event_id, "us-west-2", 3),)
    wall.advance(1.0)
    plane.state()
    assert len(plane.history()) == 3  # a routine sample a second later


def test_history_keeps_one_hour_and_thins_and_limits_on_request(context: FleetContext) -> None:
    plane, clock, wall = _plane(context)
    for _ in range(4000):
        plane.state()
        wall.advance(1.0)
        clock.advance(720)
    samples = plane.history()
    span = samples[-1].wall_s - samples[0].wall_s
    assert 3590 <= span <= 3600
    thinned = plane.history(every_s=60.0)
    assert 59 <= len(thinned) <= 62
    assert thinned[-1] == samples[-1]  # a thinned timeline still ends at now
    assert plane.history(limit=1) == [samples[-1]]
    assert plane.history(after_wall_s=samples[-3].wall_s) == samples[-2:]
    assert plane.history(limit=0) == []


def test_a_history_of_no_span_is_refused() -> None:
    with pytest.raises(ValueError, match="span_s"):
        ControlHistory(span_s=0)


def test_a_sample_carries_the_policy_power_battery_and_traffic_split(context: FleetContext) -> None:
    plane, _, _ = _plane(context)
    calibration = load_calibration()
    plane.publish_policy(decide_fleet(plane.policy_inputs(), {}, plane.fleet, calibration), calibration)
    (sample,) = LocalClient(plane).call_sync(ControlApi.history, None, 0.0, 1)
    west1 = next(r for r in sample.regions if r.region == "us-west-1")
    assert west1.stress_level == 3
    assert west1.rung == 3
    assert west1.knob_source == "policy"
    assert west1.precision["tolerant"] != "fp32"  # turned down at the emergency rung
    assert west1.grid_kw is not None
    assert west1.baseline_kw is not None
    assert west1.grid_kw <= west1.baseline_kw
    assert west1.battery_soc is not None
    assert 0.0 <= west1.battery_soc <= 1.0
    assert set(west1.flexible_kw) <= {"shift_away", "defer", "reduce", "battery"}
    # The split comes from the routing core: California's tolerant work leaves for us-west-2 at the peak.
    assert dict(sample.split["us-west-1"]) == {"us-west-2": 1.0}
    body: Any = sample_to_dict(sample)
    assert body["at"] == "2022-09-07T01:00:00Z"
    assert body["split"]["us-west-1"] == [["us-west-2", 1.0]]
    assert body["regions"]["us-west-1"]["rung"] == 3


# The page and its endpoints ------------------------------------------------------------------------------------


@pytest.fixture
def app_client(context: FleetContext) -> Iterator[tuple[TestClient, ControlPlane]]:
    fleet = context.fleet.model_copy(
        update={"gateway": context.fleet.gateway.model_copy(update={"wan_emulation": False})}
    )
    plane = ControlPlane(FleetContext(fleet, context.trace, context.rtt_ms), FixedClock(PEAK_S), FixedClock(0.0))
    regions = {name: FakeRegion(name) for name in fleet.region_names}
    core = GatewayCore(fleet, load_rtt_matrix(fleet.latency), LocalClient(plane), regions)
    with TestClient(create_app(core, admin_token_digest(TOKEN))) as client:
        yield client, plane


def test_the_page_and_its_static_files_are_served_from_the_package(app_client: tuple[TestClient, Any]) -> None:
    client, _ = app_client
    page = client.get("/console")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assets = re.findall(r'(?:src|href)="(/console/static/[^"]+)"', page.text)
    assert sorted(assets) == ["/console/static/console.css", "/console/static/console.js"]
    for asset in assets:
        answer = client.get(asset)
        assert answer.status_code == 200, asset
        assert len(answer.content) > 1000
    # Nothing from elsewhere: no CDN, no external font, no remote script.
    for name in ("index.html", "console.js", "console.css"):
        text = (STATIC_DIR / name).read_text(encoding="utf-8")
        assert not re.search(r"https?://(?!www\.w3\.org/2000/svg)", text), name
    assert client.get("/console/static/nothing.js").status_code == 404


def test_fleet_and_live_endpoints_are_readable_without_a_token(app_client: tuple[TestClient, Any]) -> None:
    client, _ = app_client
    fleet = client.get("/console/api/fleet").json()
    assert [r["name"] for r in fleet["regions"]] == ["us-east-1", "us-east-2", "us-west-1", "us-west-2"]
    assert fleet["levers"] == ["shift_away", "defer", "reduce", "battery"]
    assert fleet["stress_names"]["3"] == "emergency"
    live = client.get("/console/api/live", params={"every": 5}).json()
    assert live["schema"] == "gridshift.console/v1"
    assert live["samples"], live
    newest = live["samples"][-1]
    assert set(newest["regions"]) == {"us-east-1", "us-east-2", "us-west-1", "us-west-2"}
    assert newest["regions"]["us-west-1"]["stress_level"] == 3
    assert live["events"] == []
    assert live["signal_sources"] is None  # a trace fleet
    assert live["staleness"]["us-west-1"]["stale"] is False
    assert live["jobs"] == []
    assert live["openadr"] is None
    later = client.get("/console/api/live", params={"after": newest["wall_s"]}).json()
    assert later["samples"] == []  # nothing new on a fixed clock with nothing changed
    assert client.get("/console/api/live", params={"after": -1}).status_code == 422


def test_a_posted_event_shows_in_the_next_poll_and_clearing_it_needs_the_token(
    app_client: tuple[TestClient, Any],
) -> None:
    client, _ = app_client
    first = client.get("/console/api/live").json()["samples"][-1]
    assert first["split"]["us-west-1"] == [["us-west-2", 1.0]]
    assert client.post("/v1/admin/events", json={"region": "us-west-2", "level": 3}).status_code == 401
    posted = client.post("/v1/admin/events", json={"region": "us-west-2", "level": 3}, headers=ADMIN)
    assert posted.status_code == 201
    event_id = posted.json()["event"]["event_id"]
    live = client.get("/console/api/live").json()
    newest = live["samples"][-1]
    assert newest["regions"]["us-west-2"]["stress_level"] == 3
    assert newest["regions"]["us-west-2"]["event_level"] == 3
    assert "us-west-2" not in dict(newest["split"]["us-west-1"])  # its traffic moved away
    assert [e["event_id"] for e in live["events"]] == [event_id]
    assert client.delete(f"/v1/admin/events/{event_id}").status_code == 401
    assert client.delete(f"/v1/admin/events/{event_id}", headers=ADMIN).status_code == 200
    assert client.get("/console/api/live").json()["events"] == []
