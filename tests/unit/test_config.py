"""Fleet config: the default fleet loads, and every kind of invalid config fails with the field and reason."""

from __future__ import annotations

import copy
import importlib
from pathlib import Path
from typing import Any

import pytest
import yaml

from fleet.errors import ConfigError
from fleet.loaders import check_latency_coverage, load_fleet, load_rtt_matrix, packaged_data, parse_fleet
from fleet.routing import LatencyConfig, RoutingMode
from fleet.sources import TraceSourceConfig
from fleet.times import utc_now_from
from tests.conftest import REPO_ROOT


@pytest.fixture
def default_data() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(packaged_data("fleet_default.yaml").read_text())
    return loaded


def test_default_fleet_is_the_four_aws_regions_on_their_balancing_authorities() -> None:
    fleet = load_fleet()
    zones = {region.name: (region.zone, region.zone_for("demand_mw")) for region in fleet.regions}
    assert zones == {
        "us-east-1": ("PJM", "PJM-DOM"),
        "us-east-2": ("PJM", "PJM"),
        "us-west-1": ("CISO", "CISO"),
        "us-west-2": ("BPAT", "BPAT"),
    }
    source = fleet.signal_source
    assert isinstance(source, TraceSourceConfig)
    assert source.start.isoformat() == "2022-09-05T00:00:00+00:00"
    assert source.end is not None
    assert source.end.isoformat() == "2022-09-09T00:00:00+00:00"
    assert fleet.workload_classes["realtime"].mode is RoutingMode.STAY
    assert fleet.workload_classes["tolerant"].mode is RoutingMode.SHIFT
    assert fleet.region("us-west-1").battery is not None


def test_default_latency_matrix_is_the_real_aws_one_and_covers_the_fleet() -> None:
    fleet = load_fleet()
    matrix = load_rtt_matrix(fleet.latency)
    check_latency_coverage(fleet, matrix)
    assert len(matrix) == 32
    # Real p50 figures (cloudping snapshot): Oregon <-> N. California about 22 ms, Virginia <-> Oregon about 64.
    assert 15 < matrix["us-west-1"]["us-west-2"] < 30
    assert 55 < matrix["us-east-1"]["us-west-2"] < 75


def _expect_error(data: Any, *fragments: str) -> str:
    with pytest.raises(ConfigError) as caught:
        parse_fleet(data, source="test.yaml")
    message = str(caught.value)
    for fragment in fragments:
        assert fragment in message, f"{fragment!r} not in error:\n{message}"
    return message


@pytest.mark.parametrize(
    ("mutate", "fragments"),
    [
        (lambda d: d.pop("regions"), ["regions", "Field required"]),
        (lambda d: d.update(regions=[]), ["regions", "at least 1"]),
        (lambda d: d["regions"][0].pop("zone"), ["regions.0.zone", "Field required"]),
        (lambda d: d["regions"][0].update(capacity_replicas=0), ["regions.0.capacity_replicas", "greater than 0"]),
        (lambda d: d["regions"][0].update(capacity_kw=-5), ["regions.0.capacity_kw", "greater than 0"]),
        (lambda d: d["regions"][0].update(latitude=95), ["regions.0.latitude", "less than or equal to 90"]),
        (lambda d: d["regions"][1].update(name="us-east-1"), ["duplicate region name", "us-east-1"]),
        (lambda d: d["regions"][0].update(capcity_kw=5), ["regions.0.capcity_kw", "Extra inputs"]),
        (lambda d: d["regions"][0].update(signal_zones={"demand": "X"}), ["signal_zones", "unknown trace column"]),
        (
            lambda d: d["regions"][2]["battery"].update(round_trip_efficiency=1.5),
            ["regions.2.battery.round_trip_efficiency", "less than or equal to 1"],
        ),
        (
            lambda d: d["regions"][2]["battery"].update(reserve_soc=0.95),
            ["regions.2.battery", "reserve_soc", "must not exceed initial_soc"],
        ),
        (lambda d: d.update(default_origin="eu-west-9"), ["default_origin", "not a region"]),
        (lambda d: d["workload_classes"].pop("realtime"), ["workload_classes", "'realtime' class is required"]),
        (
            lambda d: d["workload_classes"].update(tolerant={"mode": "shift", "latency_budget_ms": None}),
            ["workload_classes.tolerant", "latency_budget_ms is required"],
        ),
        (
            lambda d: d["workload_classes"].update(tolerant={"mode": "teleport", "latency_budget_ms": 5}),
            ["workload_classes.tolerant.mode", "stay"],
        ),
        (
            lambda d: d.update(headroom={"weights": {"capacity": 0, "forecast": 0, "carbon": 0, "price": 0}}),
            ["headroom.weights", "at least one headroom weight"],
        ),
        (
            lambda d: d.update(headroom={"stress_thresholds": [0.1, 0.2, 0.3]}),
            ["headroom.stress_thresholds", "strictly decrease"],
        ),
        (
            lambda d: d.update(headroom={"carbon_range_g_per_kwh": [600, 50]}),
            ["headroom.carbon_range_g_per_kwh", "low < high"],
        ),
        (lambda d: d.update(routing={"origin_margin": 2}), ["routing.origin_margin", "less than or equal to 1"]),
        (
            lambda d: d["signal_source"].update(start="0001-01-01T00:00:00+00:01"),
            ["signal_source.start", "out of range in UTC"],  # found by the HTTP fuzz test: it was a crash
        ),
        (
            lambda d: d["signal_source"].update(start="2022-09-05T00:00:00"),
            ["signal_source.start", "UTC offset"],
        ),
        (
            lambda d: d["signal_source"].update(end="2022-09-01T00:00:00Z"),
            ["signal_source", "must be after start"],
        ),
        (lambda d: d["signal_source"].update(speedup=0), ["signal_source.speedup", "greater than 0"]),
        (lambda d: d["gateway"].update(ingress="tunnel"), ["gateway.ingress", "'direct'"]),
        (lambda d: d["gateway"].update(proxy_port=8000), ["gateway", "proxy_port: 8000 is the gateway's own port"]),
        (
            lambda d: d["gateway"].update(admission_max_wait_s=12, forward_timeout_s=10),
            ["gateway", "admission_max_wait_s: 12 s must be below forward_timeout_s (10 s)"],
        ),
        (
            lambda d: d["gateway"].update(ingress="direct", replicas=2),
            ["gateway", "replicas: 2 gateway replicas cannot share gateway.port"],
        ),
        (lambda d: d["signal_source"].update(kind="carrier-pigeon"), ["signal_source.kind", "trace"]),
        (
            lambda d: d.update(latency={"overrides_ms": {"us-east-1": {"us-east-2": -1}}}),
            ["latency.overrides_ms", "finite number of ms"],
        ),
    ],
)
def test_invalid_config_names_the_field_and_reason(
    default_data: dict[str, Any], mutate: Any, fragments: list[str]
) -> None:
    data = copy.deepcopy(default_data)
    mutate(data)
    message = _expect_error(data, "test.yaml", *fragments)
    assert "invalid fleet config" in message


def test_non_mapping_and_bad_yaml_and_missing_file(tmp_path: Path) -> None:
    _expect_error(["not", "a", "mapping"], "must be a mapping")
    bad = tmp_path / "bad.yaml"
    bad.write_text("regions: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_fleet(bad)
    with pytest.raises(ConfigError, match="cannot read fleet config"):
        load_fleet(tmp_path / "absent.yaml")


def test_latency_coverage_names_the_missing_pair(default_data: dict[str, Any]) -> None:
    data = copy.deepcopy(default_data)
    data["regions"][3]["name"] = "mars-north-1"
    data["default_origin"] = "us-east-1"
    fleet = parse_fleet(data)
    with pytest.raises(ConfigError, match="no round-trip time from 'us-east-1' to 'mars-north-1'"):
        check_latency_coverage(fleet, load_rtt_matrix(fleet.latency))
    # An override fills the gap.
    overrides = {name: {"mars-north-1": 400.0} for name in ("us-east-1", "us-east-2", "us-west-1")}
    overrides["mars-north-1"] = {"us-east-1": 400.0, "us-east-2": 400.0, "us-west-1": 400.0}
    patched = fleet.model_copy(update={"latency": LatencyConfig(overrides_ms=overrides)})
    check_latency_coverage(patched, load_rtt_matrix(patched.latency))


def test_bad_latency_matrix_file(tmp_path: Path) -> None:
    broken = tmp_path / "rtt.json"
    broken.write_text('{"rtt_ms": {"a": {"b": "fast"}}}')
    with pytest.raises(ConfigError, match=r"latency.matrix_file: .*a -> b"):
        load_rtt_matrix(LatencyConfig(matrix_file=str(broken)))
    broken.write_text('{"rows": []}')
    with pytest.raises(ConfigError, match="no 'rtt_ms' mapping"):
        load_rtt_matrix(LatencyConfig(matrix_file=str(broken)))


def test_fleet_round_trips_through_yaml(tmp_path: Path) -> None:
    fleet = load_fleet()
    path = tmp_path / "fleet.yaml"
    path.write_text(yaml.safe_dump(fleet.model_dump(mode="json")))
    assert load_fleet(path) == fleet


def test_cli_times_must_carry_an_offset() -> None:
    assert utc_now_from("2022-09-07T01:00:00Z").timestamp() == 1662512400
    assert utc_now_from("2022-09-06T18:00:00-07:00").timestamp() == 1662512400
    with pytest.raises(ConfigError, match="UTC offset"):
        utc_now_from("2022-09-07T01:00:00")
    with pytest.raises(ConfigError, match="not an ISO-8601 time"):
        utc_now_from("yesterday")


def test_serve_config_file_names_the_app_builder() -> None:
    config = yaml.safe_load((REPO_ROOT / "serve_config.yaml").read_text())
    (application,) = config["applications"]
    module, _, attribute = application["import_path"].partition(":")
    assert callable(getattr(importlib.import_module(module), attribute))
    assert set(application["args"]) == {"fleet", "admin_token_sha256"}


def test_admin_token_comes_from_config_then_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    from fleet.serving import GatewayConfig
    from serve_apps.admin_token import ADMIN_TOKEN_ENV, configured_admin_token

    monkeypatch.delenv(ADMIN_TOKEN_ENV, raising=False)
    assert configured_admin_token(GatewayConfig()) is None
    monkeypatch.setenv(ADMIN_TOKEN_ENV, "from-the-environment-0123")
    assert configured_admin_token(GatewayConfig()) == "from-the-environment-0123"
    assert configured_admin_token(GatewayConfig(admin_token="from-the-config-0123456")) == "from-the-config-0123456"
    monkeypatch.setenv(ADMIN_TOKEN_ENV, "")
    assert configured_admin_token(GatewayConfig()) is None
