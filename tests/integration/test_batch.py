"""Batch pipelines on real Ray Data: planned pauses, operator pauses, forced runs, kill -9, and the HTTP API."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from batch.ledger import read_output
from batch.runner import PipelineError, run_job
from batch.spec import BatchJobSpec
from fleet.clock import FixedClock
from fleet.loaders import load_fleet
from grid.context import FleetContext, load_context
from policies.batch_gate import GateAnswer, JobProgress
from policies.control import ControlPlane
from tests.integration.conftest import Deployed

pytestmark = [pytest.mark.integration, pytest.mark.slow]

UPPERCASE = "example_pipelines.uppercase:uppercase"
SEPT_6_NOON_S = 1_662_465_600  # 2022-09-06T12:00Z: CISO's solar hours (17-21 UTC) are the cleanest ahead


@pytest.fixture(scope="module")
def context() -> FleetContext:
    return load_context(load_fleet())


def _corpus(tmp_path: Path, rows: int) -> Path:
    path = tmp_path / "input.txt"
    path.write_text("\n".join(f"line {i}: the grid can wait for this one" for i in range(rows)) + "\n")
    return path


def _spec(tmp_path: Path, **overrides: object) -> BatchJobSpec:
    data: dict[str, object] = {
        "job_id": f"job-{random.randrange(1 << 30):x}",
        "pipeline": UPPERCASE,
        "input": str(_corpus(tmp_path, 120)),
        "output": str(tmp_path / "out"),
        "deadline": "2022-09-07T12:00:00Z",
        "region": "us-west-1",
        "shard_rows": 20,
        "rows_per_second": 20.0,
    }
    data.update(overrides)
    return BatchJobSpec.model_validate(data)


def _assert_exactly_once(spec: BatchJobSpec) -> None:
    output = read_output(Path(spec.output))
    inputs = Path(spec.input).read_text().splitlines()
    assert [row["row_id"] for row in output] == list(range(len(inputs)))
    assert [row["text"] for row in output] == inputs
    assert all(row["upper"] == row["text"].upper() for row in output)


class RecordingControl:
    """The real ControlPlane in this process, recording what it told the runner."""

    def __init__(self, plane: ControlPlane, before_gate: Callable[[int], None] = lambda _n: None) -> None:
        self.plane = plane
        self.answers: list[GateAnswer] = []
        self.reports: list[JobProgress] = []
        self._before_gate = before_gate

    def gate(self, progress: JobProgress) -> GateAnswer:
        self._before_gate(len(self.answers))
        answer = self.plane.batch_gate(progress)
        self.answers.append(answer)
        return answer

    def report(self, progress: JobProgress) -> None:
        self.plane.batch_report(progress)
        self.reports.append(progress)


def test_job_waits_for_its_planned_window_resumes_and_writes_each_row_once(
    deployed: Deployed, context: FleetContext, tmp_path: Path
) -> None:
    del deployed  # only for the shared Ray instance
    clock = FixedClock(SEPT_6_NOON_S)
    control = RecordingControl(ControlPlane(context, clock, FixedClock(0.0)))
    spec = _spec(tmp_path)

    def sleep(_seconds: float) -> None:
        # Instead of waiting for real, jump the control clock to where the gate said the job resumes.
        pending = control.answers[-1].resume_at_s
        clock.at_s = pending if pending is not None else clock.at_s + 600

    result = run_job(spec, control, sleep=sleep)
    assert result.rows == 120
    first = control.answers[0]
    assert not first.run
    assert "planned window" in first.reason
    assert first.resume_at_s is not None
    assert first.resume_at_s > SEPT_6_NOON_S
    assert any(report.state == "paused" for report in control.reports)
    assert control.reports[-1].state == "done"
    assert clock.now_s() <= spec.deadline.timestamp()
    _assert_exactly_once(spec)


def test_operator_pause_holds_at_a_shard_boundary_and_resume_continues(
    deployed: Deployed, context: FleetContext, tmp_path: Path
) -> None:
    del deployed
    plane = ControlPlane(context, FixedClock(SEPT_6_NOON_S + 5 * 3600), FixedClock(0.0))  # inside the window
    spec = _spec(tmp_path)
    held: list[int] = []

    def before_gate(calls: int) -> None:
        if calls == 2:  # after two shards ran
            assert plane.pause_job(spec.job_id)

    control = RecordingControl(plane, before_gate)

    def sleep(_seconds: float) -> None:
        held.append(len(read_output(Path(spec.output))))
        if len(held) == 3:
            assert plane.resume_job(spec.job_id)

    run_job(spec, control, sleep=sleep)
    assert held == [40, 40, 40]  # nothing was written while paused: the pause took effect at the boundary
    assert [a.reason for a in control.answers if not a.run] == ["paused by an operator"] * 3
    _assert_exactly_once(spec)


def test_a_job_out_of_slack_runs_through_a_grid_emergency(
    deployed: Deployed, context: FleetContext, tmp_path: Path
) -> None:
    del deployed
    peak_s = 1_662_512_400  # CISO at stress 3
    plane = ControlPlane(context, FixedClock(peak_s), FixedClock(0.0))
    # 120 rows at 20 rows/s is 6 s of work: a deadline 10 minutes away leaves no slack under the reserve.
    spec = _spec(tmp_path, deadline="2022-09-07T01:10:00Z")
    control = RecordingControl(plane)
    run_job(spec, control, sleep=lambda _s: pytest.fail("a job out of slack must not pause"))
    assert all(answer.run for answer in control.answers)
    assert "slack exhausted" in control.answers[0].reason
    _assert_exactly_once(spec)


@pytest.mark.parametrize(
    ("pipeline", "message"),
    [
        ("example_pipelines.contract_violations:drop_rows", "missing"),
        ("example_pipelines.contract_violations:not_a_dataset", "expected a ray.data.Dataset"),
    ],
)
def test_pipelines_that_lose_rows_are_refused(
    deployed: Deployed, context: FleetContext, tmp_path: Path, pipeline: str, message: str
) -> None:
    del deployed
    plane = ControlPlane(context, FixedClock(SEPT_6_NOON_S + 5 * 3600), FixedClock(0.0))
    spec = _spec(tmp_path, pipeline=pipeline, shard_rows=60)
    with pytest.raises(PipelineError, match=message):
        run_job(spec, RecordingControl(plane))
    assert read_output(Path(spec.output)) == []  # nothing of the bad shard was committed


def test_kill_dash_9_of_the_driver_at_random_points_loses_and_duplicates_nothing(
    deployed: Deployed, tmp_path: Path
) -> None:
    import ray

    del deployed  # only for the shared Ray cluster the drivers join
    address = ray.get_runtime_context().gcs_address
    rng = random.Random(20220907)
    spec = _spec(tmp_path, region="us-west-2", deadline="2022-09-07T01:20:00Z", shard_rows=10)
    spec = spec.model_copy(update={"input": str(_corpus(tmp_path, 300))})
    command = [
        str(Path(sys.executable).parent / "gridshift"), "batch", "submit", "--local", "--ray-address", address,
        "--pipeline", spec.pipeline, "--input", spec.input, "--output", spec.output,
        "--deadline", "2022-09-07T01:20:00Z", "--region", "us-west-2", "--shard-rows", "10", "--job-id", spec.job_id,
    ]  # fmt: skip
    kills = 0
    for _attempt in range(4):
        driver = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        delay = rng.uniform(4.0, 9.0)
        try:
            driver.wait(timeout=delay)
        except subprocess.TimeoutExpired:
            os.killpg(driver.pid, signal.SIGKILL)  # kill -9: no cleanup, no flush, mid-shard or mid-commit
            driver.wait()
            kills += 1
            continue
        break
    final = subprocess.run(command, capture_output=True, text=True, timeout=180, check=False)
    assert final.returncode == 0, final.stdout + final.stderr
    assert kills >= 1, "the driver finished before any kill: lengthen the job"
    _assert_exactly_once(spec)
    ledger_rows = sum(1 for _ in (Path(spec.output) / "_ledger.jsonl").read_text().splitlines())
    assert ledger_rows >= 30


def test_submit_status_pause_resume_over_http(deployed: Deployed, tmp_path: Path) -> None:
    spec = _spec(tmp_path, region="us-west-2", deadline="2022-09-07T01:20:00Z")
    admin = {"Authorization": f"Bearer {deployed.admin_token}"}
    body = spec.model_dump(mode="json")
    refused = httpx.post(f"{deployed.url}/v1/batch/jobs", json=body)
    assert refused.status_code == 401
    bad = httpx.post(f"{deployed.url}/v1/batch/jobs", json={**body, "input": "/nonexistent.txt"}, headers=admin)
    assert bad.status_code == 422
    assert "cannot read" in bad.json()["error"]["message"]
    submitted = httpx.post(f"{deployed.url}/v1/batch/jobs", json=body, headers=admin, timeout=60)
    assert submitted.status_code == 202, submitted.text
    deadline = time.monotonic() + 120
    status: dict[str, object] = {}
    while time.monotonic() < deadline:
        response = httpx.get(f"{deployed.url}/v1/batch/jobs/{spec.job_id}")
        if response.status_code == 200:
            status = response.json()
            if status["state"] in ("done", "failed"):
                break
        time.sleep(0.5)
    assert status.get("state") == "done", status
    assert status["rows_done"] == status["rows_total"] == 120
    _assert_exactly_once(spec)
    assert httpx.post(f"{deployed.url}/v1/batch/jobs/{spec.job_id}/pause", headers=admin).status_code == 200
    assert httpx.post(f"{deployed.url}/v1/batch/jobs/nope/resume", headers=admin).status_code == 404
    assert httpx.get(f"{deployed.url}/v1/batch/jobs/nope").status_code == 404
