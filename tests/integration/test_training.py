"""Training jobs on real Ray Train (shared Ray): a tier-0 job runs through a DR event at full size; a tier-3 job
pauses on a DR event, resumes after it clears, and ends with the uninterrupted run's model; kill -9 of the driver
resumes from the last committed checkpoint; a loop that never checkpoints cannot be paused; a job submitted over HTTP
as a Ray Job shows paused during a DR event and finishes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from example_pipelines.train_digits import load_state
from fleet.clock import FixedClock
from fleet.events import DREvent
from fleet.loaders import load_fleet
from grid.context import FleetContext, load_context
from policies.control import ControlPlane
from policies.training_gate import TrainingAnswer, TrainingProgress, TrainingShape
from tests.integration.conftest import Deployed
from training.book import TrainerError
from training.runner import RunResult, restored, run_job
from training.spec import TrainingJobSpec

pytestmark = [pytest.mark.integration, pytest.mark.slow]

SEPT_6_19H_S = 1_662_490_800  # 2022-09-06T19:00Z: CISO's solar hours, so us-west-1's carbon plan runs at once
DIGITS = "example_pipelines.train_digits:train_digits"
STEPS = 1500
TOLERANCE = 1e-6  # largest parameter difference allowed against the uninterrupted run (float32, same worker count)
GRIDSHIFT = str(Path(sys.executable).parent / "gridshift")


@pytest.fixture(scope="module")
def context() -> FleetContext:
    return load_context(load_fleet())


def _spec(tmp_path: Path, job_id: str, **overrides: object) -> TrainingJobSpec:
    data: dict[str, object] = {
        "job_id": job_id,
        "trainer": DIGITS,
        "steps": STEPS,
        "config": {"seed": 7, "hidden": 128},
        "deadline": "2022-09-08T00:00:00Z",
        "region": "us-west-1",
        "flex_tier": 3,  # only tier 3 may be paused by the grid (policies/tiers.py)
        "workers": 2,
        "checkpoint_every_s": 2.0,
        "storage_path": str(tmp_path / "checkpoints"),
        "step_s": 0.01,
    }
    data.update(overrides)
    return TrainingJobSpec.model_validate(data)


class PlaneControl:
    """The real ControlPlane in this process, recording its answers; `hook` runs before each gate (the watcher's
    thread asks too) with the latest progress, to post and clear grid events at chosen steps."""

    def __init__(self, plane: ControlPlane, hook: Callable[[TrainingProgress], None] = lambda _p: None) -> None:
        self.plane = plane
        self.answers: list[TrainingAnswer] = []
        self.reports: list[TrainingProgress] = []
        self._hook = hook
        self._lock = threading.Lock()

    def gate(self, progress: TrainingProgress) -> TrainingAnswer:
        with self._lock:
            self._hook(progress)
            answer = self.plane.training_gate(progress)
            self.answers.append(answer)
            return answer

    def report(self, progress: TrainingProgress) -> None:
        with self._lock:
            self.plane.training_report(progress)
            self.reports.append(progress)

    def now_s(self) -> float:
        return self.plane.clock_now_s()


def _max_difference(first: str, second: str) -> float:
    a, b = load_state(first)["model"], load_state(second)["model"]
    return max(float((a[name] - b[name]).abs().max()) for name in a)


@pytest.fixture(scope="module")
def reference(deployed: Deployed, context: FleetContext, tmp_path_factory: pytest.TempPathFactory) -> RunResult:
    """The uninterrupted run, tier 0 under a grid emergency in its region: never paused, never shrunk."""
    del deployed  # only for the shared Ray instance
    plane = ControlPlane(context, FixedClock(SEPT_6_19H_S), FixedClock(0.0))
    plane.post_event(DREvent(region="us-west-1", level=3, start="2022-09-06T18:00:00Z", end="2022-09-06T22:00:00Z"))
    control = PlaneControl(plane)
    spec = _spec(tmp_path_factory.mktemp("reference"), "reference", flex_tier=0)
    result = run_job(spec, control)
    assert result.pauses == ()
    assert result.shapes == (TrainingShape(2, 1),)
    assert all(answer.run and answer.shape == TrainingShape(2, 1) for answer in control.answers)
    assert "tier 0" in control.answers[-1].reason
    return result


def test_a_tier_0_job_is_never_slowed_and_learns_the_digits(reference: RunResult) -> None:
    assert reference.steps_done == STEPS
    assert reference.metrics["step"] == STEPS
    assert reference.metrics["test_accuracy"] > 0.9


def test_pauses_on_a_dr_event_resumes_after_it_clears_and_ends_with_the_same_model(
    reference: RunResult, context: FleetContext, tmp_path: Path
) -> None:
    plane = ControlPlane(context, FixedClock(SEPT_6_19H_S), FixedClock(0.0))
    timeline: list[str] = []

    def grid(progress: TrainingProgress) -> None:
        # A DR event once a third of the steps are committed, cleared 2 s after the job reports paused. (Operators'
        # pauses take the same path; benchmarks/bench_training.py makes ten of them.)
        if not timeline and progress.steps_done >= STEPS // 3:
            plane.post_event(
                DREvent(region="us-west-1", level=2, start="2022-09-06T18:00:00Z", end="2022-09-06T22:00:00Z")
            )
            timeline.append(f"event {time.monotonic()}")
        elif len(timeline) == 1 and progress.state == "paused" and time.monotonic() - float(timeline[0].split()[1]) > 2:
            plane.clear_region_events("us-west-1")
            timeline.append("cleared")

    control = PlaneControl(plane, grid)
    result = run_job(_spec(tmp_path, "paused"), control)
    assert len(timeline) == 2, timeline
    assert len(result.pauses) == 1
    assert "grid stress 2" in result.pauses[0].reason
    for pause in result.pauses:
        assert pause.lost_steps == 0  # stopped right after a committed checkpoint
        assert pause.reaction_s < 30.0
    assert any(report.state == "paused" for report in control.reports)
    assert result.steps_done == STEPS
    assert result.checkpoint_path is not None
    assert reference.checkpoint_path is not None
    assert _max_difference(result.checkpoint_path, reference.checkpoint_path) <= TOLERANCE
    assert result.metrics["test_accuracy"] == reference.metrics["test_accuracy"]


def test_kill_dash_9_of_the_driver_resumes_from_the_last_committed_checkpoint(
    reference: RunResult, deployed: Deployed, tmp_path: Path
) -> None:
    import ray

    address = ray.get_runtime_context().gcs_address
    spec = _spec(tmp_path, "killed", flex_tier=0)
    command = [
        GRIDSHIFT, "train", "submit", "--local", "--ray-address", address, "--job-id", spec.job_id,
        "--trainer", DIGITS, "--steps", str(STEPS), "--config", '{"seed": 7, "hidden": 128}',
        "--deadline", "2022-09-08T00:00:00Z", "--region", "us-west-1", "--flex-tier", "0",
        "--checkpoint-every-s", "2", "--storage", spec.storage_path, "--step-s", "0.01",
    ]  # fmt: skip
    log = tmp_path / "driver.log"
    with log.open("w") as sink:
        driver = subprocess.Popen(command, stdout=sink, stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + 180
    # Killed once Ray Train has committed a checkpoint (its snapshot names it), mid-run.
    while restored(spec)[0] == 0 and time.monotonic() < deadline and driver.poll() is None:
        time.sleep(0.3)
    assert driver.poll() is None, log.read_text()[-2000:]
    os.killpg(driver.pid, signal.SIGKILL)  # kill -9: no cleanup, the run's controller and workers die with it
    driver.wait()
    committed, _, _ = restored(spec)
    assert 0 < committed < STEPS
    rerun = subprocess.run(command, capture_output=True, text=True, timeout=240)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    steps, path, metrics = restored(spec)
    assert steps == STEPS
    assert path is not None
    assert reference.checkpoint_path is not None
    assert _max_difference(path, reference.checkpoint_path) <= TOLERANCE
    assert metrics["test_accuracy"] == reference.metrics["test_accuracy"]
    del deployed


def test_a_loop_that_never_checkpoints_is_reported_and_cannot_be_paused(
    deployed: Deployed, context: FleetContext, tmp_path: Path
) -> None:
    del deployed
    plane = ControlPlane(context, FixedClock(SEPT_6_19H_S), FixedClock(0.0))
    refusals: list[str] = []

    def operator(progress: TrainingProgress) -> None:
        if not progress.checkpointing and not refusals:
            plane.training_report(progress)  # the hook runs before the gate records this report
            refusals.append(plane.pause_training(progress.job_id).reason)

    # Long enough that the loop is asked for a checkpoint at least twice (the runner's evidence that it ignores them)
    # even on a fast, idle machine: 600 steps could end before the second request.
    spec = _spec(tmp_path, "stubborn", trainer="example_pipelines.train_contract_violations:never_checkpoints",
                 steps=3000, checkpoint_every_s=0.5)  # fmt: skip
    with pytest.raises(TrainerError, match=r"returned with 0 of 3000 steps committed, unasked"):
        run_job(spec, PlaneControl(plane, operator))
    assert refusals, "the runner never reported that the trainer ignores checkpoint requests"
    assert "cannot pause" in refusals[0]


def test_submitted_through_the_jobs_api_it_pauses_during_a_dr_event_and_finishes(
    deployed: Deployed, tmp_path: Path
) -> None:
    import httpx
    import ray

    from fleet.times import iso

    admin = {"Authorization": f"Bearer {deployed.admin_token}"}
    # Due in half an hour of the control clock (real time here): no better window to wait for, slack to spare.
    now_s = float(ray.get(deployed.control.clock_now_s.remote()))
    body = _spec(tmp_path, "over-http", region="us-west-2", deadline=iso(now_s + 1800)).model_dump(mode="json")
    submitted = httpx.post(f"{deployed.url}/v1/training/jobs", json=body, headers=admin, timeout=60)
    assert submitted.status_code == 202, submitted.text
    states: list[str] = []

    def wait_for(predicate: Callable[[dict[str, object]], bool], timeout_s: float = 180) -> dict[str, object]:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            answer = httpx.get(f"{deployed.url}/v1/training/jobs/over-http", timeout=10)
            if answer.status_code == 200:
                status: dict[str, object] = answer.json()
                states.append(str(status["state"]))
                if status["state"] == "failed":
                    raise AssertionError(f"the job failed: {status}")
                if predicate(status):
                    return status
            time.sleep(0.5)
        raise AssertionError(f"timed out; states seen {states[-20:]}")

    wait_for(lambda s: s["state"] == "running" and int(str(s.get("steps_done", 0))) > 0)
    event = httpx.post(f"{deployed.url}/v1/admin/events", json={"region": "us-west-2", "level": 2}, headers=admin)
    assert event.status_code == 201, event.text
    try:
        paused = wait_for(lambda s: s["state"] == "paused", 60)
        assert "stress" in str(paused["reason"]) or "pause" in str(paused["reason"])
        shown = subprocess.run(
            [GRIDSHIFT, "train", "status", "over-http", "--url", deployed.url], capture_output=True, text=True
        )
        assert "paused" in shown.stdout, shown.stdout + shown.stderr
    finally:
        event_id = event.json()["event"]["event_id"]
        httpx.delete(f"{deployed.url}/v1/admin/events/{event_id}", headers=admin, timeout=10)
    done = wait_for(lambda s: s["state"] == "done", 240)
    assert done["steps_done"] == STEPS
    assert done["ray_status"] in ("RUNNING", "SUCCEEDED")
