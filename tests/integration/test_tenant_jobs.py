"""Tenants end to end on the deployed fleet (shared Ray): a batch job submitted with a tenant key runs as a Ray Job,
shows its tenant and tier in its status and lands in the tenant's usage once; a tier-3 call during a grid emergency
everywhere is held by the gateway and served when a region clears, with headers saying so."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.integration.conftest import Deployed

pytestmark = [pytest.mark.integration, pytest.mark.slow]

REGIONS = ("us-east-1", "us-east-2", "us-west-1", "us-west-2")


def _admin(deployed: Deployed) -> dict[str, str]:
    return {"Authorization": f"Bearer {deployed.admin_token}"}


def _poll(fetch: Any, until: Any, timeout_s: float) -> Any:
    deadline = time.monotonic() + timeout_s
    value = fetch()
    while not until(value) and time.monotonic() < deadline:
        time.sleep(0.5)
        value = fetch()
    return value


def test_a_keyed_batch_job_shows_its_tier_and_is_in_the_tenants_usage_once(deployed: Deployed, tmp_path: Path) -> None:
    created = httpx.post(
        f"{deployed.url}/v1/admin/tenants",
        json={"name": f"jobs-{time.monotonic_ns()}", "default_tier": 1, "max_tier": 2},
        headers=_admin(deployed),
    )
    assert created.status_code == 201, created.text
    tenant_id = created.json()["tenant"]["tenant_id"]
    key = {"Authorization": f"Bearer {created.json()['api_key']}"}
    source = tmp_path / "in.txt"
    source.write_text("\n".join(f"line {i}" for i in range(40)) + "\n")
    body = {
        "pipeline": "example_pipelines.uppercase:uppercase",
        "input": str(source),
        "output": str(tmp_path / "out"),
        "deadline": "2022-09-07T01:20:00Z",
        "region": "us-west-2",
        "block_rows": 20,
    }
    above = httpx.post(f"{deployed.url}/v1/batch/jobs", json={**body, "flex_tier": 3}, headers=key)
    assert above.status_code == 403
    assert "tier 3 exceeds this key's maximum tier 2" in above.json()["error"]["message"]
    submitted = httpx.post(f"{deployed.url}/v1/batch/jobs", json=body, headers=key, timeout=60)
    assert submitted.status_code == 202, submitted.text
    job_id = submitted.json()["job_id"]

    status = _poll(
        lambda: httpx.get(f"{deployed.url}/v1/batch/jobs/{job_id}").json(),
        lambda s: s.get("state") in ("done", "failed"),
        45,
    )
    assert status["state"] == "done", status
    assert (status["tenant_id"], status["flex_tier"]) == (tenant_id, 1)
    assert "deferred" not in status["effects"]  # tier 1: never paused by the grid

    usage = _poll(
        lambda: httpx.get(f"{deployed.url}/v1/usage", headers=key).json(),
        lambda u: any(r["kind"] == "batch" for r in u["records"]),
        15,
    )
    rows = [row for row in usage["records"] if row["kind"] == "batch"]
    assert len(rows) == 1, usage
    assert (rows[0]["request_id"], rows[0]["tier"], rows[0]["items"]) == (f"batch:{job_id}", 1, 40)
    assert rows[0]["job_hours"] > 0
    assert rows[0]["usd"] > 0


def test_a_tier_3_call_waits_out_an_emergency_everywhere_and_is_served_when_a_region_clears(
    deployed: Deployed,
) -> None:
    events: list[str] = []
    try:
        for region in REGIONS:
            posted = httpx.post(
                f"{deployed.url}/v1/admin/events", json={"region": region, "level": 3}, headers=_admin(deployed)
            )
            assert posted.status_code == 201, posted.text
            events.append(posted.json()["event"]["event_id"])
        time.sleep(0.5)  # every gateway replica routes on the emergency (state_refresh_s 0.1)
        answers: list[httpx.Response] = []
        headers = {"X-Gridshift-Origin": "us-west-1", "X-Gridshift-Flex-Tier": "3"}
        call = threading.Thread(
            target=lambda: answers.append(
                httpx.post(
                    f"{deployed.url}/v1/embeddings",
                    json={"model": "all-MiniLM-L6-v2", "input": ["wait for it"]},
                    headers=headers,
                    timeout=60,
                )
            )
        )
        call.start()
        time.sleep(1.5)
        cleared = httpx.delete(
            f"{deployed.url}/v1/admin/events/{events.pop(REGIONS.index('us-west-2'))}", headers=_admin(deployed)
        )
        assert cleared.status_code == 200
        call.join(timeout=30)
        assert answers, "the held call never came back"
        answer = answers[0]
        assert answer.status_code == 200, answer.text
        assert answer.headers["X-Gridshift-Defer-Outcome"] == "region_qualified"
        assert int(answer.headers["X-Gridshift-Deferred-Ms"]) >= 1000
        assert answer.headers["X-Gridshift-Region"] == "us-west-2"
        assert "deferred" in answer.headers["X-Gridshift-Flex-Effects"]
    finally:
        for event_id in events:
            httpx.delete(f"{deployed.url}/v1/admin/events/{event_id}", headers=_admin(deployed))
