"""Live signals through the control plane to the gateway: `GET /v1/regions` shows each source's health and each
region's staleness (additive keys), `GET /metrics` exports them, and routing keeps answering while a feed is down.
In-process (ASGI) over a real ControlPlane with a live signal store; only the model is faked."""

from __future__ import annotations

import copy
import re
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import yaml
from fastapi.testclient import TestClient

from fleet.clock import FixedClock
from fleet.errors import SignalSourceError
from fleet.loaders import load_rtt_matrix, packaged_data, parse_fleet
from fleet.sources import LiveSourceConfig
from grid.context import FleetContext, load_context
from grid.readings import Reading, SourceBatch
from grid.sources.store import SignalStore
from policies.actors.client import LocalClient
from policies.control import ControlPlane
from serve_apps.gateway import GatewayCore
from serve_apps.http_api import create_app
from tests.fakes import FakeRegion

PEAK_S = 1_662_512_400  # 2022-09-07T01:00Z
HOUR_S = 3600
Setup = tuple[TestClient, SignalStore, FixedClock, Callable[[], None]]


@pytest.fixture(scope="module")
def live_data() -> dict[str, Any]:
    data: dict[str, Any] = copy.deepcopy(yaml.safe_load(packaged_data("fleet_default.yaml").read_text()))
    data["gateway"]["wan_emulation"] = False
    data["signal_source"] = {"kind": "live", "sources": [{"provider": "eia"}]}
    return data


@pytest.fixture(scope="module")
def loaded(live_data: dict[str, Any]) -> FleetContext:
    return load_context(parse_fleet(live_data))


@pytest.fixture
def setup(loaded: FleetContext) -> Iterator[Setup]:
    # A fresh, empty store per test; the history trace is loaded once.
    assert isinstance(loaded.fleet.signal_source, LiveSourceConfig)
    store = SignalStore.for_config(loaded.fleet.signal_source, loaded.trace)
    context = FleetContext(loaded.fleet, loaded.trace, loaded.rtt_ms, store)
    store.register("eia", "eia", required=True)
    # The heat-wave peak as a live feed would have given it (values from the packaged EIA-930 trace).
    readings = []
    for zone in ("BPAT", "CISO", "PJM", "PJM-DOM"):
        for column in ("demand_mw", "carbon_g_per_kwh"):
            observation = context.trace.latest(zone, column, PEAK_S)
            if observation is not None:
                readings.append(Reading(zone, column, observation.value, observation.observed_at_s))
    store.offer("eia", SourceBatch(tuple(readings)), PEAK_S)
    clock = FixedClock(PEAK_S)
    plane = ControlPlane(context, clock, FixedClock(0.0))
    regions = {name: FakeRegion(name) for name in context.fleet.region_names}
    core = GatewayCore(context.fleet, load_rtt_matrix(context.fleet.latency), LocalClient(plane), regions)
    with TestClient(create_app(core, None), raise_server_exceptions=False) as client:

        def refresh() -> None:
            # The gateway's cached state catches up at its next background refresh; take it now instead.
            assert client.portal is not None
            client.portal.call(core.refresh)

        yield client, store, clock, refresh


def _metric(text: str, name: str, **labels: str) -> float:
    for line in text.splitlines():
        if line.startswith((name + "{", name + " ")) and all(f'{k}="{v}"' in line for k, v in labels.items()):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"no sample {name} {labels} in:\n{text}")


def test_regions_show_source_health_and_staleness_as_additive_keys(
    setup: Setup,
) -> None:
    client, _, _, _ = setup
    body = client.get("/v1/regions").json()
    assert body["schema"] == "gridshift.regions/v1"
    (eia,) = body["signal_sources"]
    assert (eia["name"], eia["state"], eia["up"]) == ("eia", "up", True)
    ciso = next(v for v in eia["values"] if (v["zone"], v["column"]) == ("CISO", "demand_mw"))
    assert (ciso["value"], ciso["unit"], ciso["age_s"]) == (51_104.0, "MW", 0.0)
    west_1 = next(r for r in body["regions"] if r["region"] == "us-west-1")
    assert west_1["stress_level"] == 3  # the heat-wave emergency, from live values
    assert west_1["staleness"] == {
        "stale": False,
        "signal_age_s": {"demand_mw": 0, "carbon_g_per_kwh": 0},
        "oldest_signal_age_s": 0,
        "min_trust": 1.0,
        "stale_components": [],
    }


def test_a_dead_feed_shows_down_and_stale_while_routing_goes_on(
    setup: Setup,
) -> None:
    client, store, clock, refresh = setup
    for hours in (1, 2, 3):
        clock.at_s = PEAK_S + hours * HOUR_S
        store.fail(
            "eia", SignalSourceError("eia", "timeout", "GET api.eia.gov/v2/...: no answer within 10 s"), clock.at_s
        )
    refresh()
    body = client.get("/v1/regions").json()
    (eia,) = body["signal_sources"]
    assert (eia["state"], eia["consecutive_failures"]) == ("down", 3)
    assert eia["last_error"].startswith("timeout")
    west_1 = next(r for r in body["regions"] if r["region"] == "us-west-1")
    assert west_1["staleness"]["stale"] is True
    assert west_1["staleness"]["oldest_signal_age_s"] == 3 * HOUR_S
    assert west_1["staleness"]["stale_components"] == ["capacity", "carbon"]
    assert west_1["signals"]["demand_mw"]["value"] == 51_104.0  # the last good value, kept
    answer = client.post(
        "/v1/embeddings",
        json={"input": ["still routing"], "model": "m"},
        headers={"X-Gridshift-Origin": "us-west-1", "X-Gridshift-Class": "tolerant"},
    )
    assert answer.status_code == 200
    assert answer.headers["X-Gridshift-Region"] in ("us-east-1", "us-east-2", "us-west-1", "us-west-2")
    text = client.get("/metrics").text
    assert _metric(text, "gridshift_signal_source_up", source="eia") == 0
    assert _metric(text, "gridshift_signal_source_consecutive_failures", source="eia") == 3
    assert _metric(text, "gridshift_region_signal_age_seconds", region="us-west-1", signal="demand_mw") == 3 * HOUR_S
    assert _metric(text, "gridshift_region_signals_stale", region="us-west-1") == 1


def test_metrics_are_prometheus_text_with_rejections_by_reason(
    setup: Setup,
) -> None:
    client, store, _, refresh = setup
    nan = SourceBatch((Reading("CISO", "demand_mw", float("nan"), PEAK_S + 60),))
    store.offer("eia", nan, PEAK_S + 60)
    refresh()
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    text = response.text
    assert _metric(text, "gridshift_signal_values_rejected_total", source="eia", reason="not_finite") == 1
    assert _metric(text, "gridshift_region_headroom_ratio", region="us-west-2") > _metric(
        text, "gridshift_region_headroom_ratio", region="us-west-1"
    )
    assert _metric(text, "gridshift_region_utilization_ratio", region="us-west-1") == 0
    # Every sample line is `name{labels} value` or `name value` under its # TYPE.
    sample = re.compile(r'^[a-z_]+(\{([a-z_]+="[^"]*",?)*\})? -?[0-9.e+]+$')
    for line in text.splitlines():
        assert line.startswith("# ") or sample.match(line), line


def test_a_trace_fleet_has_no_signal_sources_key_value(live_data: dict[str, Any]) -> None:
    data = copy.deepcopy(live_data)
    data["signal_source"] = yaml.safe_load(packaged_data("fleet_default.yaml").read_text())["signal_source"]
    context = load_context(parse_fleet(data))
    assert context.signals is None
    plane = ControlPlane(context, FixedClock(PEAK_S), FixedClock(0.0))
    regions = {name: FakeRegion(name) for name in context.fleet.region_names}
    core = GatewayCore(context.fleet, load_rtt_matrix(context.fleet.latency), LocalClient(plane), regions)
    with TestClient(create_app(core, None)) as client:
        body = client.get("/v1/regions").json()
        assert body["signal_sources"] is None
        assert all(r["staleness"]["stale"] is False for r in body["regions"])
        assert "gridshift_signal_source_up" in client.get("/metrics").text  # the family, with no samples
