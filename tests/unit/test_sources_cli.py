"""`gridshift signals check`: one probe of every configured source, health and values with units, and the exit
status (non-zero when a required source is down), against the fake providers on 127.0.0.1."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from fleet.loaders import packaged_data
from serve_apps.cli import main
from tests.data.sources.fake_provider import (
    EIA_KEY,
    EM_TOKEN,
    SECRETS,
    WATTTIME_PASSWORD,
    WATTTIME_USER,
    FakeProvider,
    provider_in_thread,
)

QUICK = {"min_interval_s": 0.0, "max_attempts": 1, "timeout_s": 5.0}


@pytest.fixture
def provider(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeProvider]:
    monkeypatch.setenv("WATTTIME_USER", WATTTIME_USER)
    monkeypatch.setenv("WATTTIME_PASSWORD", WATTTIME_PASSWORD)
    monkeypatch.setenv("ELECTRICITYMAPS_TOKEN", EM_TOKEN)
    monkeypatch.setenv("EIA_API_KEY", EIA_KEY)
    with provider_in_thread() as fake:
        yield fake


def live_fleet(tmp_path: Path, url: str) -> Path:
    data: dict[str, Any] = copy.deepcopy(yaml.safe_load(packaged_data("fleet_default.yaml").read_text()))
    data["signal_source"] = {
        "kind": "live",
        # The recorded answers are from 2022: accept values that old, for this check only.
        "max_reading_age_s": 20 * 365 * 86_400,
        "sources": [
            {
                "provider": "eia",
                "base_url": url,
                "series": ["D", "NG"],
                "zones": {"CISO": "CISO", "BPAT": "BPAT"},  # the recording holds these two
                "http": QUICK,
            },
            {"provider": "watttime", "base_url": url, "zones": {"CISO": "CAISO_NORTH"}, "http": QUICK},
            {
                "provider": "electricitymaps",
                "base_url": url,
                "zones": {"CISO": "US-CAL-CISO"},
                "required": False,
                "http": QUICK,
            },
        ],
    }
    path = tmp_path / "live.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_check_probes_every_source_and_prints_values_with_units(
    tmp_path: Path, provider: FakeProvider, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["signals", "check", "--fleet", str(live_fleet(tmp_path, provider.url))]) == 0
    out = capsys.readouterr().out
    assert "live signals" in out
    assert "eia (eia, required): UP" in out
    assert "51,104.00 MW" in out  # CISO's heat-wave peak demand
    assert "gCO2/kWh" in out
    assert "watttime (watttime, required): UP" in out


def test_check_json_is_stable_and_exits_non_zero_when_a_required_source_is_down(
    tmp_path: Path, provider: FakeProvider, capsys: pytest.CaptureFixture[str]
) -> None:
    provider.fail("/v2/electricity/rto/region-data/data/", "status:503")
    assert main(["signals", "check", "--fleet", str(live_fleet(tmp_path, provider.url)), "--json"]) == 1
    out = capsys.readouterr().out
    body = json.loads(out)
    assert body["schema"] == "gridshift.signals_check/v1"
    assert (body["ok"], body["required_down"]) == (False, ["eia"])
    eia = next(s for s in body["sources"] if s["name"] == "eia")
    assert eia["state"] == "down"
    assert eia["last_error"].startswith("http_status: GET 127.0.0.1")
    watttime = next(s for s in body["sources"] if s["name"] == "watttime")
    (carbon,) = watttime["values"]
    assert (carbon["zone"], carbon["column"], carbon["unit"]) == ("CISO", "carbon_g_per_kwh", "gCO2/kWh")
    fed = {(c["region"], c["column"]): c["source"] for c in body["coverage"]}
    assert fed[("us-west-1", "carbon_g_per_kwh")] in ("watttime", "electricitymaps")
    assert fed[("us-west-1", "demand_mw")] is None  # EIA is down and nothing else gives demand
    for secret in SECRETS:
        assert secret not in out


def test_an_optional_source_down_does_not_fail_the_check(
    tmp_path: Path, provider: FakeProvider, capsys: pytest.CaptureFixture[str]
) -> None:
    provider.fail("/v3/carbon-intensity/latest", "garbage")
    assert main(["signals", "check", "--fleet", str(live_fleet(tmp_path, provider.url))]) == 0
    out = capsys.readouterr().out
    assert "electricitymaps (electricitymaps, optional): DOWN" in out
    assert "bad_payload" in out


def test_check_on_the_default_trace_fleet_reads_the_replay_start(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["signals", "check", "--json"]) == 0
    body = json.loads(capsys.readouterr().out)
    assert body["kind"] == "trace"
    assert body["at"] == "2022-09-05T00:00:00Z"
    ciso = next(v for v in body["held"] if (v["zone"], v["column"]) == ("CISO", "demand_mw"))
    assert (ciso["value"], ciso["unit"]) == (41_797.0, "MW")


def test_check_with_an_invalid_live_config_exits_2_naming_the_field(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = live_fleet(tmp_path, "http://127.0.0.1:9")
    data = yaml.safe_load(path.read_text())
    data["signal_source"]["sources"][1]["zones"] = {}
    path.write_text(yaml.safe_dump(data))
    assert main(["signals", "check", "--fleet", str(path)]) == 2
    assert "signal_source.sources.1.watttime" in capsys.readouterr().err
