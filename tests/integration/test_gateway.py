"""End to end on Ray Serve with the real model: routing follows headroom, failover, the openai client, admin auth."""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest

from tests.integration.conftest import Deployed

pytestmark = [pytest.mark.integration, pytest.mark.slow]

BODY = {"input": ["the grid is stressed tonight", "batch jobs can wait"], "model": "all-MiniLM-L6-v2"}


def _embed(deployed: Deployed, origin: str = "us-west-1", klass: str = "tolerant") -> httpx.Response:
    return httpx.post(
        f"{deployed.url}/v1/embeddings",
        json=BODY,
        headers={"X-Gridshift-Origin": origin, "X-Gridshift-Class": klass},
        timeout=30,
    )


def _admin(deployed: Deployed) -> dict[str, str]:
    return {"Authorization": f"Bearer {deployed.admin_token}"}


def test_tolerant_leaves_california_at_the_peak_and_realtime_stays(deployed: Deployed) -> None:
    tolerant = _embed(deployed)
    assert tolerant.status_code == 200, tolerant.text
    assert tolerant.headers["X-Gridshift-Region"] == "us-west-2"
    body = tolerant.json()
    assert len(body["data"]) == 2
    assert len(body["data"][0]["embedding"]) == 384  # real all-MiniLM-L6-v2 vectors
    assert body["usage"]["prompt_tokens"] > 0
    realtime = _embed(deployed, klass="realtime")
    assert realtime.status_code == 200
    assert realtime.headers["X-Gridshift-Region"] == "us-west-1"
    assert realtime.headers["X-Gridshift-Reason"] == "realtime_origin"


def test_dr_event_moves_tolerant_traffic_within_a_second_and_back_after_clearing(deployed: Deployed) -> None:
    posted = httpx.post(
        f"{deployed.url}/v1/admin/events", json={"region": "us-west-2", "level": 3}, headers=_admin(deployed)
    )
    assert posted.status_code == 201, posted.text
    event_id = posted.json()["event"]["event_id"]
    posted_at = time.monotonic()
    try:
        # Every request sent at least one second after the event must avoid the region.
        regions_after = []
        while time.monotonic() - posted_at < 2.0:
            response = _embed(deployed)
            assert response.status_code == 200
            if time.monotonic() - posted_at >= 1.0:
                regions_after.append(response.headers["X-Gridshift-Region"])
        assert regions_after
        assert "us-west-2" not in regions_after
        assert "us-west-1" not in regions_after  # still in emergency itself
    finally:
        cleared = httpx.delete(f"{deployed.url}/v1/admin/events/{event_id}", headers=_admin(deployed))
        assert cleared.status_code == 200
    time.sleep(1.0)
    assert _embed(deployed).headers["X-Gridshift-Region"] == "us-west-2"


def test_admin_without_token_is_refused(deployed: Deployed) -> None:
    response = httpx.post(f"{deployed.url}/v1/admin/events", json={"region": "us-west-2", "level": 3})
    assert response.status_code == 401
    assert response.json()["error"]["type"] == "authentication_error"


def test_openai_client_gets_embeddings_and_routing_headers(deployed: Deployed) -> None:
    import openai

    client = openai.OpenAI(base_url=f"{deployed.url}/v1", api_key="not-needed", max_retries=0)
    raw = client.embeddings.with_raw_response.create(
        input=["hello from the openai client"],
        model="all-MiniLM-L6-v2",
        extra_headers={"X-Gridshift-Origin": "us-west-1"},
    )
    result = raw.parse()
    assert len(result.data[0].embedding) == 384
    assert raw.headers["X-Gridshift-Region"] == "us-west-2"
    # The client's default base64 encoding round-trips too.
    assert abs(sum(x * x for x in result.data[0].embedding) - 1.0) < 1e-3


def test_malformed_requests_never_get_5xx(deployed: Deployed) -> None:
    cases: list[dict[str, Any]] = [
        {"content": b"{bad", "headers": {"Content-Type": "application/json"}},
        {"json": {"input": [], "model": "m"}},
        {"json": {"input": "x" * 30_000, "model": "m"}},
        {"json": {"input": "x", "model": "m"}, "headers": {"X-Gridshift-Latency-Budget-Ms": "soon"}},
        {"json": {"input": "x", "model": "m"}, "headers": {"X-Gridshift-Origin": "nowhere"}},
    ]
    for case in cases:
        response = httpx.post(f"{deployed.url}/v1/embeddings", timeout=30, **case)
        assert 400 <= response.status_code < 500, (case, response.status_code, response.text)
        assert "error" in response.json()
    assert httpx.get(f"{deployed.url}/v2/nothing").status_code == 404


def test_knobs_change_live_without_restarting_the_replica(deployed: Deployed) -> None:
    import ray
    from ray import serve

    from fleet.serving import Knobs

    handle = serve.get_deployment_handle("region-us-west-1", app_name="gridshift")
    before = handle.stats.remote().result()
    pinned = Knobs(max_batch_size=4, precision="int8", max_concurrency=8)
    # An operator's pin through the control plane: the replica takes it at its next sync, without a restart.
    ray.get(deployed.control.set_knobs.remote("us-west-1", pinned))
    try:
        deadline = time.monotonic() + 5.0
        while handle.stats.remote().result()["knob_source"] != "operator" and time.monotonic() < deadline:
            time.sleep(0.1)
        response = _embed(deployed, klass="realtime")
        assert response.headers["X-Gridshift-Precision"] == "int8"
        after = handle.stats.remote().result()
        assert after["pid"] == before["pid"]  # same process: no restart
        assert after["knobs"]["max_batch_size"] == 4
    finally:
        ray.get(deployed.control.set_knobs.remote("us-west-1", None))


def test_killed_regional_replica_costs_no_failed_tolerant_requests(deployed: Deployed) -> None:
    import ray

    replicas = [
        actor
        for actor in ray.util.list_named_actors(all_namespaces=True)
        if "region-us-west-2" in actor["name"] and actor["name"].startswith("SERVE_REPLICA")
    ]
    assert replicas, "no replica of region-us-west-2 found"
    ray.kill(ray.get_actor(replicas[0]["name"], namespace=replicas[0]["namespace"]), no_restart=False)
    statuses = [_embed(deployed).status_code for _ in range(20)]
    assert statuses == [200] * 20
    # Serve restarts the replica and the gateway's probe marks the region healthy again; wait for it so the
    # tests after this one see the whole fleet.
    deadline = time.monotonic() + 120
    while httpx.get(f"{deployed.url}/healthz").json()["regions_down"]:
        assert time.monotonic() < deadline, "us-west-2 never came back after its replica was killed"
        time.sleep(0.5)
    assert _embed(deployed).headers["X-Gridshift-Region"] == "us-west-2"


def test_python_clients_expose_the_routing_answer(deployed: Deployed) -> None:
    import asyncio

    from serve_apps.client import AsyncGridshiftClient, GridshiftClient, GridshiftClientError

    with GridshiftClient(deployed.url) as client:
        result = client.embed(["sync client"], origin="us-west-1", workload_class="tolerant")
        assert result.routing.region == "us-west-2"
        assert result.routing.precision in ("fp32", "bf16", "int8")
        assert len(result.embeddings[0]) == 384
        with pytest.raises(GridshiftClientError) as caught:
            client.embed([], origin="us-west-1")
        assert caught.value.status == 422
        assert client.ready()

    async def call() -> str:
        async with AsyncGridshiftClient(deployed.url) as client:
            answer = await client.embed("async client", origin="us-west-1", workload_class="realtime")
            return answer.routing.region

    assert asyncio.run(call()) == "us-west-1"
