"""The CLI on the default fleet and the real 2022 trace: regions table, route explain (text and JSON), replay."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from serve_apps.cli import main

HEAT_WAVE_PEAK = "2022-09-07T01:00:00Z"


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_route_explain_moves_tolerant_work_out_of_california_at_the_heat_wave_peak(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, out, _ = _run(
        capsys,
        "route", "explain", "--origin", "us-west-1", "--class", "tolerant", "--budget-ms", "150",
        "--at", HEAT_WAVE_PEAK, "--json",
    )  # fmt: skip
    assert code == 0
    body = json.loads(out)
    assert body["schema"] == "gridshift.route_explain/v1"
    assert body["at"] == HEAT_WAVE_PEAK
    assert body["request"] == {"origin": "us-west-1", "class": "tolerant", "mode": "shift", "latency_budget_ms": 150.0}
    decision = body["decision"]
    assert decision["region"] != "us-west-1"
    assert decision["region"] == "us-west-2"  # Oregon: hydro, far from its own peak
    assert decision["feasible"] is True
    assert decision["ranked"][0] == decision["region"]
    candidates = {c["region"]: c for c in decision["candidates"]}
    assert set(candidates) == {"us-east-1", "us-east-2", "us-west-1", "us-west-2"}
    california = candidates["us-west-1"]
    assert california["stress_level"] == 3
    assert california["verdict"] == "avoided"
    assert "stress 3" in california["why"]
    for candidate in candidates.values():
        # Every candidate carries its figures.
        assert candidate["est_latency_ms"] is not None
        assert candidate["est_latency_ms"] <= 150
        assert 0 <= candidate["headroom"] <= 1
        assert candidate["rtt_ms"] is not None
    assert candidates["us-west-2"]["headroom"] > candidates["us-east-1"]["headroom"]


def test_realtime_stays_in_california_even_at_the_peak(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _run(
        capsys, "route", "explain", "--origin", "us-west-1", "--class", "realtime", "--at", HEAT_WAVE_PEAK, "--json"
    )
    assert code == 0
    decision = json.loads(out)["decision"]
    assert (decision["region"], decision["reason"]) == ("us-west-1", "realtime_origin")


def test_route_explain_text_names_choice_and_every_candidate(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _run(capsys, "route", "explain", "--origin", "us-west-1", "--at", HEAT_WAVE_PEAK)
    assert code == 0
    assert "-> us-west-2" in out
    for region in ("us-east-1", "us-east-2", "us-west-1", "us-west-2"):
        assert region in out


def test_regions_table_and_json(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _run(capsys, "regions", "--at", HEAT_WAVE_PEAK)
    assert code == 0
    assert "51,104" in out  # CISO's real peak demand, MW
    assert "emergency" in out
    code, out, _ = _run(capsys, "regions", "--at", HEAT_WAVE_PEAK, "--json")
    body = json.loads(out)
    assert body["schema"] == "gridshift.regions/v1"
    west1 = next(r for r in body["regions"] if r["region"] == "us-west-1")
    assert west1["signals"]["demand_mw"]["value"] == 51104
    assert west1["signals"]["price_usd_per_mwh"] is None  # no price in the 2022 trace: absent, not zero
    assert west1["stress"] == "emergency"


def test_replay_over_the_default_window(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _run(capsys, "route", "replay", "--origin", "us-west-1", "--step-hours", "6", "--json")
    assert code == 0
    steps = json.loads(out)["steps"]
    assert steps[0]["at"] == "2022-09-05T00:00:00Z"
    assert steps[-1]["at"] == "2022-09-09T00:00:00Z"
    assert len(steps) == 17


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["route", "explain", "--origin", "mars-north-1"], "--origin: 'mars-north-1' is not in the latency matrix"),
        (["route", "explain", "--class", "urgent"], "unknown workload class 'urgent'"),
        (["route", "explain", "--class", "batch"], "deferred (batch) classes are planned"),
        (["route", "explain", "--budget-ms", "-3"], "--budget-ms: must be positive"),
        (["regions", "--at", "2022-09-07 01:00"], "must carry a UTC offset"),
        (["regions", "--fleet", "/nonexistent/fleet.yaml"], "cannot read fleet config"),
        (["regions", "--trace", "/nonexistent/trace.csv"], "cannot read"),
    ],
)
def test_bad_input_is_a_clear_error_with_exit_2(
    capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    code, _, err = _run(capsys, *argv)
    assert code == 2
    assert err.startswith("gridshift: error: ")
    assert message in err


def test_invalid_fleet_file_names_the_field(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    fleet = tmp_path / "fleet.yaml"
    fleet.write_text("regions: []\ndefault_origin: x\nsignal_source: {start: 2022-09-05T00:00:00Z}\n")
    code, _, err = _run(capsys, "regions", "--fleet", str(fleet))
    assert code == 2
    assert "regions: List should have at least 1 item" in err


def test_console_script_is_installed() -> None:
    result = subprocess.run(
        [str(Path(sys.executable).parent / "gridshift"), "--help"], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0
    assert "route" in result.stdout
    assert "regions" in result.stdout
