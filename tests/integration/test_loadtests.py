"""The smoke load test end to end: it passes against the real gateway and fails against a deliberately wrong one.

Locust runs in a child process (`python -m loadtests.run`), never in this one: this process holds the
session's Ray instance, and Ray imported before locust breaks gevent.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.conftest import REPO_ROOT
from tests.integration.conftest import Deployed

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def _run_smoke(
    results: Path, *target: str, token: str | None = None, scenario: str = "smoke"
) -> subprocess.CompletedProcess[str]:
    environment = {**os.environ}
    if token:
        environment["GRIDSHIFT_ADMIN_TOKEN"] = token
    return subprocess.run(
        [sys.executable, "-m", "loadtests.run", "--scenario", scenario, "--results", str(results), *target],
        cwd=REPO_ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )


def test_smoke_scenario_passes_against_the_real_gateway(deployed: Deployed, tmp_path: Path) -> None:
    # The session's fleet: default regions at the heat-wave peak, WAN emulation off, state refreshed every 0.1 s.
    done = _run_smoke(tmp_path, "--url", deployed.url, token=deployed.admin_token)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "violations: 0" in done.stdout
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["requests"]["failed"] == 0
    assert summary["requests"]["unchecked_share"] <= 0.05
    reaction = summary["reactions"][0]
    assert "us-west-1@150ms" in reaction["affected"]  # tolerant work from California was in Oregon and left
    assert reaction["leave"]["p95_moved_s"] <= 2.0
    assert reaction["return"]["p95_returned_s"] <= 2.0
    for report in ("summary.txt", "requests_per_region.png", "locust.html", "locust_stats.csv", "records.jsonl"):
        assert (tmp_path / report).stat().st_size > 0, report
    # The run left no DR event behind for the tests after it.
    events = httpx.get(f"{deployed.url}/v1/admin/events", headers={"Authorization": f"Bearer {deployed.admin_token}"})
    assert events.json()["events"] == []


def test_smoke_scenario_fails_against_an_always_origin_gateway(tmp_path: Path) -> None:
    done = _run_smoke(tmp_path, "--fake-gateway")
    assert done.returncode == 1, done.stdout + done.stderr
    assert "tolerant_choice" in done.stdout
    assert "FAILED" in done.stdout
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["violations"]["by_rule"]["tolerant_choice"] > 0
    assert summary["violations"]["by_rule"]["dr_reaction"] == 1  # traffic never left the region under the event
    failures = (tmp_path / "locust_failures.csv").read_text()
    assert "tolerant_choice: tolerant request from" in failures  # locust's own report names the rule too


def test_trace_replay_open_loop_passes_every_rule(deployed: Deployed, tmp_path: Path, shared_data: Path) -> None:
    del shared_data  # the trace lives there: skipped with a reason where it is absent
    done = _run_smoke(tmp_path, "--url", deployed.url, "--rate", "6", "--duration", "15", scenario="trace_replay")
    assert done.returncode == 0, done.stdout + done.stderr
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["requests"]["total"] >= 40  # about 90 sent at their trace times
    assert summary["requests"]["failed"] == 0
    assert summary["requests"]["rejected"] == 0  # below capacity nothing is turned away


def test_overload_in_an_emergency_rejects_fast_and_never_spills(
    deployed: Deployed, tmp_path: Path, shared_data: Path
) -> None:
    del shared_data
    # Far above what two shared cores serve, during a level-3 event on us-west-2 (us-west-1 is at stress 3 too).
    done = _run_smoke(
        tmp_path,
        "--url",
        deployed.url,
        "--rate",
        "60",
        "--duration",
        "20",
        token=deployed.admin_token,
        scenario="overload",
    )
    summary = json.loads((tmp_path / "summary.json").read_text())
    by_rule = summary["violations"]["by_rule"]
    assert by_rule.get("no_emergency_spill", 0) == 0, done.stdout
    assert by_rule.get("answered", 0) == 0, done.stdout  # no slow failure: rejected at once, or served
    assert summary["requests"]["rejected"] > 0, done.stdout
    # At once in the gateway; what the client sees adds the proxy and a 2-core machine saturated on purpose.
    assert summary["requests"]["time_to_reject_ms"]["p50"] < 1000, done.stdout
    assert done.returncode == 0, done.stdout + done.stderr
    events = httpx.get(f"{deployed.url}/v1/admin/events", headers={"Authorization": f"Bearer {deployed.admin_token}"})
    assert events.json()["events"] == []
