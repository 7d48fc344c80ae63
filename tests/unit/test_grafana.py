"""The shipped Grafana dashboard (deploy/grafana/gridshift.json): it parses, every query names only metrics gridshift
exports (serve_apps/metric_catalogue.py), and it has the console's panels."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from serve_apps.metric_catalogue import exported_names

DASHBOARD = Path(__file__).resolve().parents[2] / "deploy" / "grafana" / "gridshift.json"
# Names in PromQL that are not metrics: functions, aggregations, keywords and label names used in `by (...)`.
METRIC = re.compile(r"\b((?:ray_)?gridshift_[a-z0-9_]+)\b")


@pytest.fixture(scope="module")
def dashboard() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    return data


def _queries(dashboard: dict[str, Any]) -> list[str]:
    exprs = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
    for variable in dashboard["templating"]["list"]:
        if variable["type"] == "query":
            exprs.append(variable["definition"])
    return exprs


def test_the_dashboard_parses_and_its_panels_are_well_formed(dashboard: dict[str, Any]) -> None:
    assert dashboard["uid"] == "gridshift-fleet"
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    for panel in dashboard["panels"]:
        grid = panel["gridPos"]
        assert grid["x"] >= 0, panel["title"]
        assert grid["x"] + grid["w"] <= 24, panel["title"]
        if panel["type"] != "row":
            assert panel["targets"], panel["title"]
            assert panel["datasource"]["uid"] == "${datasource}"


def test_every_query_names_a_metric_that_exists(dashboard: dict[str, Any]) -> None:
    known = exported_names()
    named = {name for expr in _queries(dashboard) for name in METRIC.findall(expr)}
    assert named, "no metric found in the dashboard's queries"
    unknown = sorted(named - known)
    assert not unknown, f"queries name metrics gridshift does not export: {unknown}"


def test_the_scanner_catches_a_misspelt_metric() -> None:
    assert METRIC.findall("sum by (region) (rate(ray_gridshift_gateway_failover_total[5m]))") == [
        "ray_gridshift_gateway_failover_total"
    ]
    assert "ray_gridshift_gateway_failover_total" not in exported_names()


def test_it_has_the_consoles_panels(dashboard: dict[str, Any]) -> None:
    named = {name for expr in _queries(dashboard) for name in METRIC.findall(expr)}
    console = {
        "gridshift_region_stress_level",  # stress over the timeline
        "gridshift_region_headroom_ratio",  # headroom over the timeline
        "gridshift_route_share_ratio",  # the traffic split
        "gridshift_policy_rung",  # rung
        "gridshift_region_knob_precision_bits",  # knobs
        "gridshift_region_grid_power_watts",  # grid draw ...
        "gridshift_region_baseline_power_watts",  # ... against baseline
        "gridshift_region_flexible_power_watts",  # flexible kW by lever
        "gridshift_region_battery_soc_ratio",  # battery state of charge
        "gridshift_region_dr_event_level",  # active DR / OpenADR events
        "gridshift_signal_source_up",  # signal-source health ...
        "gridshift_region_signal_age_seconds",  # ... and staleness
        "gridshift_job_progress_ratio",  # jobs with progress ...
        "gridshift_job_state",  # ... and state
        "ray_gridshift_gateway_request_duration_seconds_bucket",  # request latency by region
    }
    assert console <= named, console - named
