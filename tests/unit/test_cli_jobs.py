"""The status view `gridshift batch status` and `gridshift train status` share (serve_apps/cli/jobs.py)."""

from __future__ import annotations

import argparse
import json
from typing import Any

import pytest

from serve_apps.cli.jobs import bar, common_lines, show_status

PAUSED: dict[str, Any] = {
    "job_id": "j1",
    "state": "paused",
    "reason": "grid stress 3",
    "flex_tier": 2,
    "tenant_id": "acme",
    "effects": ["paused"],
    "expected_resume": "2022-09-07T04:00:00Z",
    "deadline": "2022-09-08T00:00:00Z",
    "expected_finish": "2022-09-07T09:00:00Z",
    "on_track": False,
    "ray_status": "RUNNING",
}


def _args(**overrides: Any) -> argparse.Namespace:
    return argparse.Namespace(**{"json": False, "watch": False, "every": 0.0, **overrides})


def test_a_paused_job_says_why_whose_when_it_resumes_and_whether_it_meets_its_deadline() -> None:
    assert common_lines(PAUSED) == [
        "  why: grid stress 3",
        "  tier 2  tenant acme  the grid: paused",
        "  expected resume: 2022-09-07T04:00:00Z",
        "  expected finish: 2022-09-07T09:00:00Z  deadline: 2022-09-08T00:00:00Z  (AT RISK)",
        "  ray job: RUNNING",
    ]
    running = {"job_id": "j2", "state": "running", "reason": "", "flex_tier": None, "expected_resume": "x"}
    assert common_lines(running) == []  # nothing to explain, no tier, not paused


def test_status_prints_text_json_or_watches_until_every_job_has_ended(capsys: pytest.CaptureFixture[str]) -> None:
    def lines(job: dict[str, Any]) -> list[str]:
        return [f"{job['job_id']} {job['state']}"]

    assert show_status(_args(), list, lines, "no batch jobs") == 0
    assert capsys.readouterr().out.strip() == "no batch jobs"
    assert show_status(_args(json=True), lambda: [PAUSED], lines, "-") == 0
    assert json.loads(capsys.readouterr().out) == {"jobs": [PAUSED]}
    states = iter(["running", "done"])
    assert show_status(_args(watch=True), lambda: [{"job_id": "j1", "state": next(states)}], lines, "-") == 0
    shown = capsys.readouterr().out
    assert "j1 running" in shown
    assert "j1 done" in shown


def test_the_bar_fills_with_the_share_done() -> None:
    assert bar(0, 0, width=4) == "[....]"
    assert bar(1, 2, width=4) == "[##..]"
    assert bar(5, 5, width=4) == "[####]"


def test_a_bad_spec_names_each_field_and_why_as_fleet_configs_do() -> None:
    from batch.spec import BatchJobSpec
    from fleet.errors import GridshiftError
    from serve_apps.cli.jobs import validated_spec

    with pytest.raises(GridshiftError) as raised:
        validated_spec(BatchJobSpec, {"job_id": "j1", "max_workers": 0}, "batch")
    message = str(raised.value)
    assert message.startswith("invalid batch job:\n")
    assert "  max_workers: " in message
    assert "  pipeline: Field required" in message
