"""Tenants' jobs without Ray: the one tier table binding the batch gate (never paused below tier 3, shrunk and degraded
only as far as the tier allows), job usage metered and priced once, and keyed submission over HTTP (tier from the
key, 403 above it), with the job's tier and effects in its status and its usage row in /v1/usage."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from fleet.clock import FixedClock
from fleet.events import DREvent
from fleet.pricing import PricingConfig
from policies.batch_gate import JobProgress, PlanVerdict, tier_bound
from policies.control import ControlPlane
from policies.job_usage import JobMeter, job_usage
from policies.plan import HOUR_S
from policies.pricing import HourConditions, tier_prices
from policies.tiers import TIERS, allowance, job_share
from serve_apps.admin_token import admin_token_digest
from serve_apps.gateway import GatewayCore
from serve_apps.http_api import create_app
from serve_apps.provider import Provider
from tenants.store import TenantStore
from tests.unit.gateway_app import ADMIN, PEAK_S, TOKEN, _context, gateway_app

RUN = PlanVerdict(True, False, "in a planned window", None)
WAIT = PlanVerdict(False, False, "waiting for its planned window", PEAK_S + 3600)


def test_one_tier_table_for_calls_and_jobs() -> None:
    assert [(t.may_move, t.may_degrade, t.may_defer) for t in TIERS] == [
        (False, False, False),
        (True, False, False),
        (True, True, False),
        (True, True, True),
    ]
    assert [t.max_slowdown for t in TIERS] == [0.0, 0.10, 0.25, 0.50]
    assert job_share(0, 0.25) == 1.0
    assert job_share(2, 0.25) == 0.75
    assert job_share(None, 0.25) == 0.25  # an operator's job without a tier: the ladder's share, as always
    with pytest.raises(ValueError, match="flex_tier"):
        allowance(4)


@pytest.mark.parametrize("tier", [0, 1, 2])
def test_below_tier_3_the_grid_never_pauses_a_job(tier: int) -> None:
    for grid in ({"stress_level": 3}, {"stress_level": 0, "policy_pause": "rung 3 pauses jobs"}):
        for verdict in (RUN, WAIT):
            bound = tier_bound(tier, verdict, workers_fraction=0.25, now_s=0.0, speedup=1.0, **grid)
            assert bound.verdict.run
            assert bound.verdict.forced
            assert bound.share == pytest.approx(1.0 - allowance(tier).max_slowdown)
            assert f"flex tier {tier}" in bound.verdict.reason
    calm = tier_bound(2, RUN, stress_level=0, workers_fraction=0.9, now_s=0.0, speedup=1.0)
    assert (calm.share, calm.held) == (0.9, False)  # no pause to stand in for: the ladder's share


def test_tier_3_and_untiered_jobs_keep_the_gate_rule() -> None:
    for tier in (3, None):
        bound = tier_bound(tier, WAIT, stress_level=0, workers_fraction=0.25, now_s=0.0, speedup=1.0)
        assert bound.verdict == WAIT
        assert bound.may_degrade


def _job(**overrides: object) -> JobProgress:
    base = JobProgress(
        job_id="j1",
        region="us-west-1",
        signal="carbon",
        deadline_s=PEAK_S + 86_400,
        state="running",
        rows_done=0,
        rows_total=1000,
        rows_per_second=100.0,
        max_workers=4,
        tenant_id="t_1",
        flex_tier=1,
    )
    return replace(base, **overrides)  # type: ignore[arg-type]


def test_the_control_plane_binds_a_batch_job_to_its_tier_during_an_emergency() -> None:
    _, core = gateway_app()
    plane: ControlPlane = core.control.target  # type: ignore[attr-defined]
    plane.post_event(DREvent(region="us-west-1", level=3, start="2022-09-07T00:00:00Z", end="2022-09-07T04:00:00Z"))
    full = plane.fleet.serving.knobs.precision.value
    firm = plane.batch_gate(_job(job_id="firm", flex_tier=0))
    assert firm.run
    assert (firm.knobs.concurrency, firm.knobs.precision) == (4, full)
    movable = plane.batch_gate(_job(job_id="movable", flex_tier=1))
    assert movable.run
    assert movable.knobs.precision == full  # tier 1 is never degraded
    deferrable = plane.batch_gate(_job(job_id="deferrable", flex_tier=3))
    assert not deferrable.run
    statuses = {status["job_id"]: status for status in plane.job_statuses()}
    assert statuses["deferrable"]["effects"] == ["deferred"]
    assert statuses["deferrable"]["flex_tier"] == 3
    assert statuses["firm"]["effects"] == []
    assert statuses["firm"]["tenant_id"] == "t_1"


def test_a_meter_counts_running_time_by_grid_hour_at_the_jobs_share_and_caps_a_silence() -> None:
    meter = JobMeter("batch", "j", "r", "t", 3)
    start = 10 * HOUR_S - 600
    meter.observe(start, "running", max_gap_s=3600)
    meter.share = 0.5
    meter.observe(start + 1200, "running", max_gap_s=3600)  # 10 min before the hour, 10 after, at half size
    assert meter.seconds_by_hour == {9 * HOUR_S: 300.0, 10 * HOUR_S: 300.0}
    meter.observe(start + 1200 + 7200, "paused", max_gap_s=60)  # a long silence counts at most the cap
    assert meter.job_hours == pytest.approx((600 + 30) / HOUR_S)
    meter.observe(start + 9000, "running", max_gap_s=60)
    meter.observe(start + 9030, "done", max_gap_s=60)
    assert meter.job_hours == pytest.approx((600 + 30 + 15) / HOUR_S)


def test_job_usage_is_priced_hour_by_hour_at_the_tier_and_earns_against_tier_0_at_the_start() -> None:
    pricing = PricingConfig()
    hours = {
        0: HourConditions("r", 0, 100.0, True, 500.0, True, 2),
        HOUR_S: HourConditions("r", HOUR_S, 20.0, True, 100.0, True, 0),
    }
    meter = JobMeter("training", "j", "r", "t_1", 3, started_s=0.0, seconds_by_hour={HOUR_S: 1800.0})
    usage = job_usage(meter, 500, HOUR_S + 1800, lambda _region, hour_s: hours[hour_s], pricing)
    charged = tier_prices(hours[HOUR_S], pricing)[3].usd_per_job_hour * 0.5
    assert usage.request_id == "training:j"
    assert (usage.items, usage.job_hours, usage.grid_hour_s) == (500, 0.5, HOUR_S)
    assert usage.usd == pytest.approx(charged)
    assert usage.kwh == pytest.approx(pricing.job_kw * 0.5)
    assert usage.gco2 == pytest.approx(pricing.job_kw * 0.5 * 100.0)
    # Waited out the stressed hour it started in, at a 30 % discount: both count as earned.
    assert usage.earned_usd == pytest.approx(tier_prices(hours[0], pricing)[0].usd_per_job_hour * 0.5 - charged)
    with pytest.raises(ValueError, match="no tenant"):
        job_usage(replace(meter, tenant_id=None), 1, 0.0, lambda _r, h: hours[h], pricing)


@pytest.fixture
def api() -> Iterator[tuple[TestClient, GatewayCore, Provider]]:
    _, core = gateway_app()
    provider = Provider(core.fleet, _context(), TenantStore.open("sqlite://"))
    with TestClient(create_app(core, admin_token_digest(TOKEN), provider)) as client:
        yield client, core, provider


def _tenant(client: TestClient, **spec: object) -> dict[str, str]:
    answer = client.post("/v1/admin/tenants", json={"name": "acme", **spec}, headers=ADMIN)
    assert answer.status_code == 201, answer.text
    return {"Authorization": f"Bearer {answer.json()['api_key']}"}


def _body(tmp_path: Path, **change: object) -> dict[str, object]:
    source = tmp_path / "in.txt"
    source.write_text("\n".join(f"row {i}" for i in range(10)) + "\n")
    body: dict[str, object] = {
        "pipeline": "example_pipelines.uppercase:uppercase",
        "input": str(source),
        "output": str(tmp_path / "out"),
        "deadline": "2022-09-07T12:00:00Z",
        "region": "us-west-1",
    }
    return {**body, **change}


def test_a_keyed_batch_job_carries_its_tenant_and_tier_and_its_usage_is_recorded_once(
    api: tuple[TestClient, GatewayCore, Provider], tmp_path: Path
) -> None:
    client, core, provider = api
    key = _tenant(client, default_tier=2, max_tier=2)
    refused = client.post("/v1/batch/jobs", json=_body(tmp_path, flex_tier=3), headers=key)
    assert refused.status_code == 403
    assert refused.json()["error"]["message"] == "tier 3 exceeds this key's maximum tier 2"
    assert refused.json()["error"]["param"] == "flex_tier"
    named = client.post("/v1/batch/jobs", json=_body(tmp_path, tenant_id="t_other"), headers=key)
    assert named.status_code == 422
    assert named.json()["error"]["param"] == "tenant_id"
    assert (
        client.post("/v1/batch/jobs", json=_body(tmp_path), headers={"Authorization": "Bearer gsk_x_y"}).status_code
        == 401
    )
    submitted = client.post("/v1/batch/jobs", json=_body(tmp_path, job_id="keyed"), headers=key)
    assert submitted.status_code == 202, submitted.text
    assert submitted.json()["flex_tier"] == 2  # the key's default
    launched = core.batch_launcher.launched[-1]  # type: ignore[union-attr]
    assert (launched.tenant_id, launched.flex_tier) == (submitted.json()["tenant_id"], 2)
    operator = client.post("/v1/batch/jobs", json=_body(tmp_path, job_id="ops"), headers=ADMIN).json()
    assert (operator["tenant_id"], operator["flex_tier"]) == (None, None)
    # A whole spec dumped by a client carries tenant_id null: it names no tenant, so it is accepted.
    dumped = client.post("/v1/batch/jobs", json=_body(tmp_path, job_id="dumped", tenant_id=None), headers=ADMIN)
    assert dumped.status_code == 202, dumped.text
    assert dumped.json()["tenant_id"] is None

    # The job runs (its driver's reports, as batch/runner.py sends them) through a DR event in its region.
    plane: ControlPlane = core.control.target  # type: ignore[attr-defined]
    clock: FixedClock = plane.clock  # type: ignore[assignment]
    plane.post_event(DREvent(region="us-west-1", level=3, start="2022-09-07T00:00:00Z", end="2022-09-07T04:00:00Z"))
    job = _job(job_id="keyed", tenant_id=launched.tenant_id, flex_tier=2, max_workers=4)
    assert plane.batch_gate(job).run  # tier 2: never paused by the grid
    for _ in range(4):
        clock.advance(900.0)
        plane.batch_report(replace(job, rows_done=job.rows_done + 250))
        job = replace(job, rows_done=job.rows_done + 250)
    plane.batch_report(replace(job, state="done"))
    status = client.get("/v1/batch/jobs/keyed").json()
    assert (status["tenant_id"], status["flex_tier"], status["state"]) == (launched.tenant_id, 2, "done")
    assert "shrunk" in status["effects"]  # held at its floor, 3 of 4 workers, where a tier-3 job would pause
    assert "deferred" not in status["effects"]

    # What the replica's collector does every JOB_USAGE_POLL_S, on the app's own event loop.
    portal = client.portal
    assert portal is not None
    assert portal.call(provider.collect_jobs, core.control) == 1
    assert portal.call(provider.collect_jobs, core.control) == 0  # asked again: nothing new
    assert portal.call(provider.recorder.flush)
    usage = client.get("/v1/usage", headers=key).json()
    rows = [row for row in usage["records"] if row["kind"] == "batch"]
    assert len(rows) == 1
    row = rows[0]
    assert (row["request_id"], row["tier"], row["items"], row["region"]) == ("batch:keyed", 2, 1000, "us-west-1")
    assert row["job_hours"] == pytest.approx(0.75)  # an hour of the control clock at 3 of 4 workers
    assert row["kwh"] == pytest.approx(core.fleet.pricing.job_kw * 0.75)
    assert row["gco2"] > 0
    assert 0 < row["usd"] < row["usd"] + row["earned_usd"]  # tier 2 earns its discount
    assert (row["degraded"], row["deferred"], row["moved"]) == (True, False, False)
    assert usage["totals"][launched.tenant_id]["job_hours"] == pytest.approx(0.75)
