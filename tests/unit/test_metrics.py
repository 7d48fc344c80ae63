"""Metrics the standard way: /metrics is prometheus_client's exposition of the control state (it parses, loses no
precision, names only catalogued metrics, documents each with its unit), and the gateway records per-replica
observations (served, failed over, shifted, unserved) where they happen."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from fleet.clock import FixedClock
from fleet.loaders import load_fleet, load_rtt_matrix
from grid.context import FleetContext, load_context
from policies.actors.client import LocalClient
from policies.calibration import load_calibration
from policies.control import ControlPlane
from policies.control_history import operator_jobs
from policies.control_state import GatewayLoad
from policies.ladder import decide_fleet
from router.routing import RouteDecision, RouteRequest
from serve_apps.gateway import GatewayCore, NoRegionAvailable
from serve_apps.http_api import create_app
from serve_apps.metric_catalogue import CATALOGUE, exported_names
from serve_apps.metrics import render_metrics
from tests.fakes import FakeRegion

PEAK_S = 1_662_512_400
DOCS = Path(__file__).resolve().parents[2] / "docs" / "console.md"


@pytest.fixture(scope="module")
def context() -> FleetContext:
    fleet = load_fleet()
    fleet = fleet.model_copy(update={"gateway": fleet.gateway.model_copy(update={"wan_emulation": False})})
    base = load_context(fleet)
    return FleetContext(fleet, base.trace, base.rtt_ms)


def _families(text: str) -> dict[str, Any]:
    return {family.name: family for family in text_string_to_metric_families(text)}


def _value(text: str, name: str, **labels: str) -> float:
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return float(sample.value)
    raise AssertionError(f"no sample {name} {labels}")


def test_a_full_scrape_parses_and_names_every_catalogued_gateway_metric(context: FleetContext) -> None:
    plane = ControlPlane(context, FixedClock(PEAK_S), FixedClock(100.0))
    plane.report("gateway-1", GatewayLoad({}, frozenset(), {"us-west-1": 2.5}))
    calibration = load_calibration()
    plane.publish_policy(decide_fleet(plane.policy_inputs(), {}, plane.fleet, calibration), calibration)
    from fleet.events import DREvent

    plane.post_event(DREvent(region="us-east-1", level=2, start=plane.now()))
    state = plane.state()
    assert state is not None
    (sample,) = plane.history(limit=1)
    batch = [
        {"job_id": "j1", "region": "us-west-1", "state": "running", "rows_done": 1_234_567, "rows_total": 9_876_543}
    ]
    training = [{"job_id": "t1", "region": "us-east-1", "state": "paused", "steps_done": 40, "steps_total": 160}]
    text = render_metrics(state, sample, operator_jobs(batch, training)).decode()
    names = {s.name for family in text_string_to_metric_families(text) for s in family.samples}
    assert names <= exported_names(), names - exported_names()
    # Every gateway metric shows in a scrape with a policy, an event and a job (signal sources: live fleets only).
    expected = {
        n
        for spec in CATALOGUE
        if spec.where == "gateway" and not spec.name.startswith("gridshift_signal_")
        for n in spec.exported_names
    }
    assert expected <= names, expected - names
    # No precision lost (a hand-rendered {value:g} printed 1234567 as 1.23457e+06).
    assert _value(text, "gridshift_batch_rows_done_total", job_id="j1") == 1_234_567
    assert _value(text, "gridshift_batch_rows", job_id="j1") == 9_876_543
    assert _value(text, "gridshift_training_steps_done_total", job_id="t1") == 40
    assert _value(text, "gridshift_job_progress_ratio", job_id="t1", kind="training") == 0.25
    assert _value(text, "gridshift_job_state", job_id="t1", state="paused") == 1
    assert _value(text, "gridshift_region_stress_level", region="us-west-1") == 3
    assert _value(text, "gridshift_region_dr_event_level", region="us-east-1") == 2
    assert _value(text, "gridshift_policy_rung", region="us-west-1") == 3
    assert _value(text, "gridshift_region_knob_precision_bits", region="us-west-1", workload_class="tolerant") < 32
    grid_kw = next(r for r in sample.regions if r.region == "us-west-1").grid_kw
    assert grid_kw is not None
    assert _value(text, "gridshift_region_grid_power_watts", region="us-west-1") == pytest.approx(grid_kw * 1000.0)
    assert _value(text, "gridshift_route_share_ratio", origin="us-west-1", region="us-west-2") == 1.0
    assert _value(text, "gridshift_origin_shifted_items_per_second", origin="us-west-1") == 2.5
    assert _value(text, "gridshift_build_info") == 1.0
    # HELP names the unit of every family.
    for line in text.splitlines():
        if line.startswith("# HELP") and not line.startswith("# HELP gridshift_build_info"):
            assert "Unit: " in line, line


def test_metrics_endpoint_serves_the_exposition_with_prometheus_content_type(context: FleetContext) -> None:
    plane = ControlPlane(context, FixedClock(PEAK_S), FixedClock(0.0))
    regions = {name: FakeRegion(name) for name in context.fleet.region_names}
    core = GatewayCore(context.fleet, load_rtt_matrix(context.fleet.latency), LocalClient(plane), regions)
    with TestClient(create_app(core, None)) as client:
        response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    families = _families(response.text)
    assert "gridshift_region_headroom_ratio" in families
    assert "gridshift_policy_rung" in families  # present (empty) before the policy's first decision


class RecordingObserver:
    """Records what GatewayCore observes, as the Ray metrics would count it."""

    def __init__(self) -> None:
        self.events: list[tuple[Any, ...]] = []

    def served(self, region: str, decision: RouteDecision, workload_class: str, seconds: float) -> None:
        self.events.append(("served", region, decision.region, workload_class, seconds >= 0.0))

    def failed_over(self, region: str) -> None:
        self.events.append(("failed_over", region))

    def shifted(self, origin: str, region: str, items: int) -> None:
        self.events.append(("shifted", origin, region, items))

    def unserved(self, origin: str, workload_class: str) -> None:
        self.events.append(("unserved", origin, workload_class))


def test_the_gateway_observes_served_failed_over_shifted_and_unserved(context: FleetContext) -> None:
    plane = ControlPlane(context, FixedClock(PEAK_S), FixedClock(0.0))
    regions = {name: FakeRegion(name) for name in context.fleet.region_names}
    core = GatewayCore(context.fleet, load_rtt_matrix(context.fleet.latency), LocalClient(plane), regions)
    observer = RecordingObserver()
    core.metrics = observer
    request = core.route_request("us-west-1", "tolerant", None)
    assert isinstance(request, RouteRequest)

    async def run() -> None:
        served = await core.serve(request, ["a", "b"])  # us-west-2 has the most headroom at the peak
        assert served.result.region == "us-west-2"
        regions["us-west-2"].failing = True
        await core.serve(request, ["c"])
        for region in regions.values():
            region.failing = True
        with pytest.raises(NoRegionAvailable):
            await core.serve(request, ["d"])

    asyncio.run(run())
    assert observer.events[:2] == [
        ("shifted", "us-west-1", "us-west-2", 2),
        ("served", "us-west-2", "us-west-2", "tolerant", True),
    ]
    failover = observer.events[2:5]
    assert failover[0] == ("failed_over", "us-west-2")
    assert failover[-1][0] == "served"
    assert failover[-1][2] == "us-west-2"  # the decision chose us-west-2; a fallback served
    assert failover[-1][1] != "us-west-2"
    assert observer.events[-1] == ("unserved", "us-west-1", "tolerant")


def test_every_metric_is_documented_with_its_unit() -> None:
    text = DOCS.read_text(encoding="utf-8")
    rows = {m.group(1): m.group(2) for m in re.finditer(r"^\| `([a-z_]+)` \| [a-z]+ \| ([^|]+) \|", text, re.M)}
    for spec in CATALOGUE:
        assert spec.query_name in rows, f"{spec.query_name} is not in docs/console.md's metric table"
        assert rows[spec.query_name].strip() == spec.unit, spec.query_name
