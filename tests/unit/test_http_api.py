"""The gateway's HTTP API in-process (ASGI) over a real ControlPlane on the real trace; only the model is faked.

These check the HTTP contract and the routing/failover logic; tests/integration runs the same API on Ray
Serve with the real model.
"""

from __future__ import annotations

import base64
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient

from batch.runner import validate_spec
from batch.spec import BatchJobSpec
from batch.submit import RayJobState
from fleet.clock import FixedClock
from fleet.loaders import load_fleet, load_rtt_matrix
from grid.context import FleetContext, load_context
from policies.actors.client import LocalClient
from policies.batch_gate import JobProgress
from policies.control import ControlPlane
from serve_apps.admin_token import admin_token_digest
from serve_apps.gateway import GatewayCore
from serve_apps.http_api import create_app
from tests.fakes import FakeRegion

PEAK_S = 1_662_512_400  # 2022-09-07T01:00Z
TOKEN = "test-admin-token-0123456789"
ADMIN = {"Authorization": f"Bearer {TOKEN}"}


class RecordingLauncher:
    """Records launched jobs and registers them with the control plane as a runner's first report would."""

    def __init__(self, plane: ControlPlane) -> None:
        self.plane = plane
        self.launched: list[BatchJobSpec] = []

    async def launch(self, spec: BatchJobSpec) -> None:
        validate_spec(spec)
        self.launched.append(spec)
        self.plane.batch_report(
            JobProgress(spec.job_id, spec.region, spec.signal, spec.deadline.timestamp(), "running", 0, 10, 20.0)
        )

    async def ray_jobs(self) -> list[RayJobState]:
        return [RayJobState(spec.job_id, "RUNNING", "", spec.region, "node-1") for spec in self.launched]


@pytest.fixture(scope="module")
def context() -> FleetContext:
    return load_context(load_fleet())


@pytest.fixture
def regions() -> dict[str, FakeRegion]:
    return {name: FakeRegion(name) for name in ("us-east-1", "us-east-2", "us-west-1", "us-west-2")}


@pytest.fixture
def plane_of() -> dict[str, ControlPlane]:
    """Where the `client` fixture leaves its control plane, for tests that act on it directly."""
    return {}


@pytest.fixture
def client(
    context: FleetContext, regions: dict[str, FakeRegion], plane_of: dict[str, ControlPlane]
) -> Iterator[TestClient]:
    # No WAN emulation in unit tests: it would only add sleeps.
    fleet = context.fleet.model_copy(
        update={"gateway": context.fleet.gateway.model_copy(update={"wan_emulation": False})}
    )
    plane = ControlPlane(FleetContext(fleet, context.trace, context.rtt_ms), FixedClock(PEAK_S), FixedClock(0.0))
    plane_of["plane"] = plane
    core = GatewayCore(
        fleet, load_rtt_matrix(fleet.latency), LocalClient(plane), regions, batch_launcher=RecordingLauncher(plane)
    )
    with TestClient(create_app(core, admin_token_digest(TOKEN)), raise_server_exceptions=False) as test_client:
        yield test_client


def _embed(client: TestClient, origin: str = "us-west-1", klass: str = "tolerant", **headers: str):
    return client.post(
        "/v1/embeddings",
        json={"input": ["hello grid", "shift me"], "model": "all-MiniLM-L6-v2"},
        headers={"X-Gridshift-Origin": origin, "X-Gridshift-Class": klass, **headers},
    )


def test_tolerant_request_is_served_out_of_california_at_the_peak(client: TestClient) -> None:
    response = _embed(client)
    assert response.status_code == 200
    assert response.headers["X-Gridshift-Region"] == "us-west-2"
    assert response.headers["X-Gridshift-Reason"] == "most_headroom"
    assert 0 < float(response.headers["X-Gridshift-Headroom"]) <= 1
    assert response.headers["X-Gridshift-Precision"] == "fp32"
    assert int(response.headers["X-Gridshift-State-Version"]) >= 1
    body = response.json()
    assert body["object"] == "list"
    assert [item["index"] for item in body["data"]] == [0, 1]
    assert body["data"][0]["embedding"] == [10.0, 1.0, 0.0]
    assert body["usage"] == {"prompt_tokens": 4, "total_tokens": 4}


def test_realtime_stays_at_origin(client: TestClient) -> None:
    response = _embed(client, klass="realtime")
    assert response.headers["X-Gridshift-Region"] == "us-west-1"
    assert response.headers["X-Gridshift-Reason"] == "realtime_origin"


def test_base64_encoding_round_trips(client: TestClient) -> None:
    response = client.post("/v1/embeddings", json={"input": "abc", "model": "m", "encoding_format": "base64"})
    assert response.status_code == 200
    vector = np.frombuffer(base64.b64decode(response.json()["data"][0]["embedding"]), dtype="<f4")
    assert vector.tolist() == [3.0, 1.0, 0.0]


def test_dr_event_moves_tolerant_traffic_and_clearing_brings_it_back(client: TestClient) -> None:
    posted = client.post("/v1/admin/events", json={"region": "us-west-2", "level": 3}, headers=ADMIN)
    assert posted.status_code == 201, posted.text
    event = posted.json()["event"]
    assert event["start"] == "2022-09-07T01:00:00Z"  # defaults to the control clock's now
    assert event["end"] is None
    moved = _embed(client)
    assert moved.headers["X-Gridshift-Region"] not in ("us-west-2", "us-west-1")
    listed = client.get("/v1/admin/events", headers=ADMIN).json()["events"]
    assert [e["event_id"] for e in listed] == [event["event_id"]]
    regions = {r["region"]: r for r in client.get("/v1/regions").json()["regions"]}
    assert regions["us-west-2"]["stress_level"] == 3
    assert regions["us-west-2"]["event_level"] == 3
    cleared = client.delete(f"/v1/admin/events/{event['event_id']}", headers=ADMIN)
    assert cleared.status_code == 200
    assert _embed(client).headers["X-Gridshift-Region"] == "us-west-2"
    assert client.delete(f"/v1/admin/events/{event['event_id']}", headers=ADMIN).status_code == 404


def test_failover_to_the_next_candidate_and_region_marked_down(
    client: TestClient, regions: dict[str, FakeRegion]
) -> None:
    regions["us-west-2"].failing = True
    first = _embed(client)
    assert first.status_code == 200
    assert first.headers["X-Gridshift-Region"] != "us-west-2"
    assert first.headers["X-Gridshift-Reason"].startswith("failover:")
    assert first.headers["X-Gridshift-Attempts"].split(",")[0] == "us-west-2"
    second = _embed(client)
    assert second.status_code == 200
    # Two consecutive failures mark it down: the third request routes around it without trying it.
    calls = regions["us-west-2"].calls
    third = _embed(client)
    assert third.status_code == 200
    assert regions["us-west-2"].calls == calls
    assert "us-west-2" in client.get("/healthz").json()["regions_down"]


def test_all_regions_failing_is_a_503_with_a_json_body(client: TestClient, regions: dict[str, FakeRegion]) -> None:
    for region in regions.values():
        region.failing = True
    response = _embed(client)
    assert response.status_code == 503
    assert response.json()["error"]["type"] == "service_unavailable"


def test_route_explain_and_regions(client: TestClient) -> None:
    explain = client.get("/v1/route", params={"origin": "us-west-1", "class": "tolerant", "budget_ms": "150"})
    assert explain.status_code == 200
    decision = explain.json()["decision"]
    assert decision["region"] == "us-west-2"
    assert len(decision["candidates"]) == 4
    body = client.get("/v1/regions").json()
    west1 = next(r for r in body["regions"] if r["region"] == "us-west-1")
    assert west1["signals"]["demand_mw"]["value"] == 51104
    assert west1["knobs"] == {
        "max_batch_size": 16,
        "precision": "fp32",
        "class_precision": {},
        "max_concurrency": 32,
        "batch_wait_ms": 5.0,
    }
    assert west1["knob_source"] == "defaults"  # no policy decision yet
    assert west1["stress"] == "emergency"
    assert west1["gateway"]["busy_seconds_per_item"] is None  # no answers under load yet: the calibration stands in
    assert 0 < west1["gateway"]["admission_seconds_per_item"] < 1
    assert client.get("/healthz").json()["status"] == "ok"
    assert client.get("/openapi.json").status_code == 200


def test_regions_carry_the_policys_figures_and_openadr_status_is_served_when_a_ven_reports(
    client: TestClient, plane_of: dict[str, ControlPlane]
) -> None:
    from policies.calibration import load_calibration
    from policies.ladder import decide_fleet

    plane = plane_of["plane"]
    calibration = load_calibration()
    plane.publish_policy(decide_fleet(plane.policy_inputs(), {}, plane.fleet, calibration), calibration)
    # The policy's knobs change the versioned state: the gateway takes it at its next background refresh.
    deadline = time.monotonic() + 5.0
    while True:
        body = client.get("/v1/regions").json()
        west1 = next(r for r in body["regions"] if r["region"] == "us-west-1")
        if west1["knob_source"] == "policy" or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert west1["knob_source"] == "policy"
    assert west1["policy"]["step"] == 3
    assert west1["policy"]["power"]["grid_kw"] > 0
    assert west1["policy"]["battery"]["power_kw"] > 0
    assert body["policy"]["fresh"] is True
    assert body["calibration"]["quality"]["int8"]["mean_cosine_to_fp32"] < 0.99
    missing = client.get("/v1/openadr/status")
    assert missing.status_code == 404
    assert missing.json()["error"]["type"] == "not_found_error"
    plane.set_openadr_status({"schema": "gridshift.openadr_status/v1", "registered": True})
    assert client.get("/v1/openadr/status").json()["registered"] is True


@pytest.mark.parametrize(
    ("headers", "reason"),
    [
        ({}, "admin API needs"),
        ({"Authorization": "Bearer wrong-token-wrong-token"}, "invalid admin token"),
        ({"Authorization": f"Basic {TOKEN}"}, "admin API needs"),
    ],
)
def test_admin_requires_the_bearer_token(client: TestClient, headers: dict[str, str], reason: str) -> None:
    for method, path in (("get", "/v1/admin/events"), ("post", "/v1/admin/events"), ("delete", "/v1/admin/events/x")):
        response = client.request(method, path, headers=headers, json={"region": "us-west-2", "level": 3})
        assert response.status_code == 401
        assert response.headers["WWW-Authenticate"] == "Bearer"
        assert reason in response.json()["error"]["message"]


BAD_REQUESTS = [
    # (body or raw bytes, headers, expected status, fragment of the message)
    (b"{not json", {}, 422, "not valid JSON"),
    ({"model": "m"}, {}, 422, "input"),
    ({"input": 5, "model": "m"}, {}, 422, "input"),
    ({"input": [1, 2, 3], "model": "m"}, {}, 422, "input"),
    ({"input": [], "model": "m"}, {}, 422, "must not be empty"),
    ({"input": "x"}, {}, 422, "model"),
    ({"input": "x", "model": "m", "encoding_format": "int4"}, {}, 422, "encoding_format"),
    (["input", "x"], {}, 422, "Input should be"),
    ({"input": ["x"] * 257, "model": "m"}, {}, 413, "257 items exceeds the limit of 256"),
    ({"input": "y" * 20_001, "model": "m"}, {}, 413, "exceeds the limit of 20000"),
    ({"input": "x", "model": "m"}, {"X-Gridshift-Class": "urgent"}, 422, "X-Gridshift-Class"),
    ({"input": "x", "model": "m"}, {"X-Gridshift-Class": "batch"}, 422, "X-Gridshift-Class"),
    ({"input": "x", "model": "m"}, {"X-Gridshift-Latency-Budget-Ms": "fast"}, 422, "not a number"),
    ({"input": "x", "model": "m"}, {"X-Gridshift-Latency-Budget-Ms": "-5"}, 422, "must be in"),
    ({"input": "x", "model": "m"}, {"X-Gridshift-Latency-Budget-Ms": "nan"}, 422, "must be in"),
    ({"input": "x", "model": "m"}, {"X-Gridshift-Origin": "mars-north-1"}, 422, "unknown region"),
]


@pytest.mark.parametrize(("body", "headers", "status", "fragment"), BAD_REQUESTS)
def test_malformed_requests_get_4xx_json_never_5xx(
    client: TestClient, body: object, headers: dict[str, str], status: int, fragment: str
) -> None:
    if isinstance(body, bytes):
        response = client.post("/v1/embeddings", content=body, headers={"Content-Type": "application/json", **headers})
    else:
        response = client.post("/v1/embeddings", json=body, headers=headers)
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert fragment in error["message"]


def test_oversized_body_refused_before_parsing(client: TestClient) -> None:
    huge = b'{"input": "' + b"z" * 6_000_000 + b'", "model": "m"}'
    response = client.post("/v1/embeddings", content=huge, headers={"Content-Type": "application/json"})
    assert response.status_code == 413
    assert "exceeds the limit" in response.json()["error"]["message"]


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [("get", "/nope", 404), ("get", "/v1/embeddings", 405), ("put", "/v1/regions", 405)],
)
def test_unknown_routes_and_methods_answer_json(client: TestClient, method: str, path: str, status: int) -> None:
    response = client.request(method, path)
    assert response.status_code == status
    assert "message" in response.json()["error"]


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ({"region": "mars-north-1", "level": 3}, "not in the fleet"),
        ({"region": "us-west-2", "level": 7}, "less than or equal to 3"),
        ({"region": "us-west-2", "level": 1, "start": "2022-09-07T01:00:00"}, "UTC offset"),
        ({"region": "us-west-2", "level": 1, "start": "2022-09-07T02:00:00Z", "end": "2022-09-07T01:00:00Z"}, "after"),
        ({"region": "us-west-2", "level": 1, "colour": "red"}, "colour"),
    ],
)
def test_bad_events_are_422(client: TestClient, body: dict[str, object], fragment: str) -> None:
    response = client.post("/v1/admin/events", json=body, headers=ADMIN)
    assert response.status_code == 422, response.text
    assert fragment in response.json()["error"]["message"]


def test_wan_emulation_adds_the_real_round_trip_to_the_serving_region(
    context: FleetContext, regions: dict[str, FakeRegion]
) -> None:
    slept: list[float] = []

    async def record(seconds: float) -> None:
        slept.append(seconds)

    fleet = context.fleet  # the packaged default fleet has WAN emulation on: it runs every region locally
    assert fleet.gateway.wan_emulation
    plane = ControlPlane(context, FixedClock(PEAK_S), FixedClock(0.0))
    core = GatewayCore(fleet, context.rtt_ms, LocalClient(plane), regions, sleep=record)
    with TestClient(create_app(core, None)) as test_client:
        response = _embed(test_client)
    assert response.headers["X-Gridshift-Region"] == "us-west-2"
    assert slept[-1] == pytest.approx(context.rtt_ms["us-west-1"]["us-west-2"] / 1000)


def _job(tmp_path: Path, **change: str) -> dict[str, str]:
    corpus = tmp_path / "in.txt"
    corpus.write_text("a\nb\n")
    spec = {
        "pipeline": "example_pipelines.uppercase:uppercase",
        "input": str(corpus),
        "output": str(tmp_path / "out"),
        "deadline": "2022-09-07T12:00:00Z",
        "region": "us-west-2",
    }
    return {**spec, **change}


def test_batch_jobs_over_http(client: TestClient, tmp_path: Path) -> None:
    spec = _job(tmp_path)
    assert client.post("/v1/batch/jobs", json=spec).status_code == 401
    submitted = client.post("/v1/batch/jobs", json=spec, headers=ADMIN)
    assert submitted.status_code == 202, submitted.text
    job_id = submitted.json()["job_id"]
    status = client.get(f"/v1/batch/jobs/{job_id}").json()
    assert (status["state"], status["rows_total"], status["deadline"]) == ("running", 10, "2022-09-07T12:00:00Z")
    assert status["ray_status"] == "RUNNING"
    assert [job["job_id"] for job in client.get("/v1/batch/jobs").json()["jobs"]] == [job_id]
    assert client.post(f"/v1/batch/jobs/{job_id}/pause", headers=ADMIN).json()["requested"] == "pause"
    assert client.get(f"/v1/batch/jobs/{job_id}").json()["paused_by_operator"] is True
    assert client.post(f"/v1/batch/jobs/{job_id}/resume", headers=ADMIN).status_code == 200
    assert client.post(f"/v1/batch/jobs/{job_id}/explode", headers=ADMIN).status_code == 404
    assert client.get("/v1/batch/jobs/unknown").status_code == 404


@pytest.mark.parametrize(
    ("change", "status", "fragment"),
    [
        ({"pipeline": "nope"}, 422, "pipeline"),
        ({"pipeline": "no_such_module_xyz:f"}, 422, "cannot import module"),
        ({"input": "/nonexistent/in.txt"}, 422, "no such file or folder"),
        ({"region": "mars-north-1"}, 422, "not in the fleet"),
        ({"deadline": "tomorrow"}, 422, "deadline"),
    ],
)
def test_bad_batch_jobs_are_422(
    client: TestClient, tmp_path: Path, change: dict[str, str], status: int, fragment: str
) -> None:
    spec = _job(tmp_path, **change)
    response = client.post("/v1/batch/jobs", json=spec, headers=ADMIN)
    assert response.status_code == status, response.text
    assert fragment in response.json()["error"]["message"]


def test_an_event_posted_at_a_fractional_now_takes_effect_at_once(
    context: FleetContext, regions: dict[str, FakeRegion]
) -> None:
    fleet = context.fleet.model_copy(
        update={"gateway": context.fleet.gateway.model_copy(update={"wan_emulation": False})}
    )
    plane = ControlPlane(FleetContext(fleet, context.trace, context.rtt_ms), FixedClock(PEAK_S + 0.5), FixedClock(0.0))
    core = GatewayCore(fleet, context.rtt_ms, LocalClient(plane), regions)
    with TestClient(create_app(core, admin_token_digest(TOKEN))) as test_client:
        assert _embed(test_client).headers["X-Gridshift-Region"] == "us-west-2"
        posted = test_client.post("/v1/admin/events", json={"region": "us-west-2", "level": 3}, headers=ADMIN)
        assert posted.status_code == 201
        assert _embed(test_client).headers["X-Gridshift-Region"] != "us-west-2"


def test_clearing_an_event_routes_afresh_instead_of_sticking_in_the_hysteresis_band(client: TestClient) -> None:
    # From us-east-2 at the peak, us-west-2 leads the origin by 0.123: past the 0.1 origin margin, inside the
    # 0.13 that a staying origin needs to be beaten by. Without a reset the origin would keep the traffic.
    assert _embed(client, origin="us-east-2").headers["X-Gridshift-Region"] == "us-west-2"
    posted = client.post("/v1/admin/events", json={"region": "us-west-2", "level": 3}, headers=ADMIN).json()
    assert _embed(client, origin="us-east-2").headers["X-Gridshift-Region"] == "us-east-2"
    client.delete(f"/v1/admin/events/{posted['event']['event_id']}", headers=ADMIN)
    assert _embed(client, origin="us-east-2").headers["X-Gridshift-Region"] == "us-west-2"
