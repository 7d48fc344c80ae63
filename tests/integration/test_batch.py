"""Batch pipelines streamed through real Ray Data: planned and operator pauses inside the stream, forced runs,
formats, the row contract, kill -9 of the driver and of a worker, and submission as Ray Jobs (CLI and HTTP)."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from batch.book import PipelineError
from batch.runner import run_job
from batch.spec import BatchJobSpec
from batch.store import OutputStore
from fleet.clock import FixedClock
from fleet.loaders import load_fleet
from grid.context import FleetContext, load_context
from policies.batch_gate import GateAnswer, JobProgress
from policies.control import ControlPlane
from tests.integration.conftest import Deployed

pytestmark = [pytest.mark.integration, pytest.mark.slow]

UPPERCASE = "example_pipelines.uppercase:uppercase"
PACED = "example_pipelines.paced:paced_uppercase"
SEPT_6_NOON_S = 1_662_465_600  # 2022-09-06T12:00Z: CISO's solar hours (17-21 UTC) are the cleanest ahead
GRIDSHIFT = str(Path(sys.executable).parent / "gridshift")


@pytest.fixture(scope="module")
def context() -> FleetContext:
    return load_context(load_fleet())


def _lines(rows: int) -> list[str]:
    return [f"line {i}: the grid can wait for this one" for i in range(rows)]


def _corpus(tmp_path: Path, rows: int, name: str = "") -> Path:
    path = tmp_path / (name or f"input-{rows}.txt")
    path.write_text("\n".join(_lines(rows)) + "\n")
    return path


def _spec(tmp_path: Path, **overrides: object) -> BatchJobSpec:
    data: dict[str, object] = {
        "job_id": f"job-{random.randrange(1 << 30):x}",
        "pipeline": UPPERCASE,
        "input": overrides.get("input") or str(_corpus(tmp_path, 120)),
        "output": str(tmp_path / "out"),
        "deadline": "2022-09-07T12:00:00Z",
        "region": "us-west-1",
        "block_rows": 20,
        "rows_per_second": 20.0,
    }
    data.update(overrides)
    return BatchJobSpec.model_validate(data)


def read_output(folder: Path) -> list[dict[str, Any]]:
    """Every committed row, read as a consumer would (Parquet with pyarrow, JSON lines as text), in id order."""
    committed = OutputStore(str(folder)).committed_files() if folder.exists() else []
    rows: list[dict[str, Any]] = []
    for path in committed:
        if path.endswith(".parquet"):
            rows += pq.read_table(path).to_pylist()
        else:
            rows += [json.loads(line) for line in Path(path).read_text().splitlines()]
    return sorted(rows, key=lambda row: int(row["row_id"]))


def _assert_exactly_once(spec: BatchJobSpec, texts: list[str] | None = None) -> None:
    output = read_output(Path(spec.output))
    inputs = texts if texts is not None else Path(spec.input).read_text().splitlines()
    assert [row["row_id"] for row in output] == list(range(len(inputs)))
    assert [row["text"] for row in output] == inputs
    assert all(row["upper"] == row["text"].upper() for row in output)
    # What readers see of the folder itself is the same rows: no staged or uncommitted file among the data files.
    data_files = sorted(str(p) for p in Path(spec.output).glob("part-*"))
    assert data_files == sorted(OutputStore(spec.output).committed_files())


class RecordingControl:
    """The real ControlPlane in this process, recording what it told the runner."""

    def __init__(self, plane: ControlPlane, before_gate: Callable[[int], None] = lambda _n: None) -> None:
        self.plane = plane
        self.answers: list[GateAnswer] = []
        self.asked: list[JobProgress] = []  # what each answer was given, in the same order
        self.reports: list[JobProgress] = []
        self._before_gate = before_gate
        self._lock = threading.Lock()

    def gate(self, progress: JobProgress) -> GateAnswer:
        with self._lock:  # the runner's watcher thread asks too
            self._before_gate(len(self.answers))
            answer = self.plane.batch_gate(progress)
            self.asked.append(progress)
            self.answers.append(answer)
            return answer

    def report(self, progress: JobProgress) -> None:
        with self._lock:
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
    assert OutputStore(spec.output).exists("_gridshift/done.json")


def test_operator_pause_stops_new_blocks_in_flight_ones_commit_and_resume_continues(
    deployed: Deployed, context: FleetContext, tmp_path: Path
) -> None:
    del deployed
    plane = ControlPlane(context, FixedClock(SEPT_6_NOON_S + 5 * 3600), FixedClock(0.0))  # inside the window
    spec = _spec(tmp_path, pipeline=PACED, input=str(_corpus(tmp_path, 4000)), block_rows=100)
    held: list[int] = []

    paused: list[bool] = []

    def before_gate(_calls: int) -> None:
        # Pause once the stream has committed something, so "mid-job" holds however slow the machine is.
        if not paused and Path(spec.output).exists() and OutputStore(spec.output).committed_files():
            paused.append(plane.pause_job(spec.job_id))
            assert paused == [True]

    control = RecordingControl(plane, before_gate)

    def sleep(_seconds: float) -> None:
        held.append(len(read_output(Path(spec.output))))
        time.sleep(0.2)
        if len(held) == 4:
            assert plane.resume_job(spec.job_id)

    result = run_job(spec, control, sleep=sleep)
    assert 0 < held[0] < 4000  # paused mid-job, with what was in flight committed
    assert held == [held[0]] * 4  # nothing was written while paused
    assert result.segments >= 2
    assert any(a.reason == "paused by an operator" for a in control.answers if not a.run)
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
    # The runner's watcher may ask once more after the last row; with no work left that answer is not a pause.
    paused = [a.reason for p, a in zip(control.asked, control.answers, strict=True) if not a.run and p.rows_left > 0]
    assert paused == []
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
    spec = _spec(tmp_path, pipeline=pipeline, block_rows=60)
    with pytest.raises(PipelineError, match=message):
        run_job(spec, RecordingControl(plane))
    assert read_output(Path(spec.output)) == []  # nothing of the bad units was committed


def test_parquet_csv_and_jsonl_inputs_and_outputs(deployed: Deployed, context: FleetContext, tmp_path: Path) -> None:
    del deployed
    plane = ControlPlane(context, FixedClock(SEPT_6_NOON_S + 5 * 3600), FixedClock(0.0))
    texts = _lines(90)
    folder = tmp_path / "parquet-in"
    folder.mkdir()
    for part in range(3):  # a folder of files, each with two row groups
        table = pa.table({"text": texts[part * 30 : (part + 1) * 30], "n": list(range(30))})
        pq.write_table(table, folder / f"part-{part}.parquet", row_group_size=15)
    spec = _spec(tmp_path, input=str(folder), block_rows=15, output=str(tmp_path / "from-parquet"))
    run_job(spec, RecordingControl(plane))
    _assert_exactly_once(spec, texts)
    assert pq.read_table(spec.output).num_rows == 90  # the output folder reads as one dataset

    csv = tmp_path / "in.csv"
    csv.write_text("text,n\n" + "".join(f"{t},{i}\n" for i, t in enumerate(texts)))
    spec = _spec(tmp_path, input=str(csv), output=str(tmp_path / "from-csv"), output_format="jsonl", block_rows=40)
    run_job(spec, RecordingControl(plane))
    _assert_exactly_once(spec, texts)
    assert sorted(p.suffix for p in Path(spec.output).glob("part-*")) == [".jsonl"] * 3

    jsonl = tmp_path / "in.jsonl"
    jsonl.write_text("".join(json.dumps({"text": t}) + "\n\n" for t in texts))  # blank lines are not rows
    spec = _spec(tmp_path, input=str(jsonl), output=str(tmp_path / "from-jsonl"), block_rows=50)
    run_job(spec, RecordingControl(plane))
    _assert_exactly_once(spec, texts)


def _local_submit(spec: BatchJobSpec, address: str) -> list[str]:
    return [
        GRIDSHIFT, "batch", "submit", "--local", "--ray-address", address,
        "--pipeline", spec.pipeline, "--input", spec.input, "--output", spec.output,
        "--deadline", spec.deadline.isoformat(), "--region", spec.region,
        "--block-rows", str(spec.block_rows), "--job-id", spec.job_id,
    ]  # fmt: skip


def test_kill_dash_9_of_the_driver_at_random_points_loses_and_duplicates_nothing(
    deployed: Deployed, tmp_path: Path
) -> None:
    import ray

    del deployed  # only for the shared Ray cluster the drivers join
    address = ray.get_runtime_context().gcs_address
    rng = random.Random(20220907)
    rows = 8000
    spec = _spec(
        tmp_path,
        pipeline=PACED,
        input=str(_corpus(tmp_path, rows)),
        region="us-west-2",
        deadline="2022-09-07T01:20:00Z",
        block_rows=200,
    )
    command = _local_submit(spec, address)
    kills: list[float] = []
    for _attempt in range(5):
        driver = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        delay = rng.uniform(3.0, 9.0)
        try:
            driver.wait(timeout=delay)
        except subprocess.TimeoutExpired:
            os.killpg(driver.pid, signal.SIGKILL)  # kill -9: no cleanup, no flush, mid-block or mid-commit
            driver.wait()
            kills.append(delay)
            continue
        break
    final = subprocess.run(command, capture_output=True, text=True, timeout=300, check=False)
    assert final.returncode == 0, final.stdout + final.stderr
    assert len(kills) == 5, f"the driver finished before every kill ({kills}): lengthen the job"
    _assert_exactly_once(spec)
    assert len(OutputStore(spec.output).records()) == rows // 200


def _workers_running(pattern: str) -> list[int]:
    listing = subprocess.run(["ps", "-eo", "pid,args"], capture_output=True, text=True, check=True).stdout
    return [int(line.split()[0]) for line in listing.splitlines()[1:] if pattern in line]


def test_a_killed_worker_loses_and_duplicates_nothing(
    deployed: Deployed, context: FleetContext, tmp_path: Path
) -> None:
    del deployed
    plane = ControlPlane(context, FixedClock(SEPT_6_NOON_S + 5 * 3600), FixedClock(0.0))
    rows = 2000
    spec = _spec(tmp_path, pipeline=PACED, input=str(_corpus(tmp_path, rows)), block_rows=100)
    killed: list[int] = []

    def kill_one_worker() -> None:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not killed:
            busy = _workers_running("_paced_upper")
            if busy and len(read_output(Path(spec.output))) >= 200:
                os.kill(busy[0], signal.SIGKILL)
                killed.append(busy[0])
                return
            time.sleep(0.1)

    killer = threading.Thread(target=kill_one_worker, daemon=True)
    killer.start()
    run_job(spec, RecordingControl(plane))
    killer.join(timeout=5)
    assert killed, "no worker was caught running the pipeline"
    _assert_exactly_once(spec)


def test_a_job_submitted_through_the_jobs_api_runs_shows_in_ray_job_list_and_over_http(
    deployed: Deployed, tmp_path: Path
) -> None:
    spec = _spec(tmp_path, region="us-west-2", deadline="2022-09-07T01:20:00Z")
    admin = {"Authorization": f"Bearer {deployed.admin_token}"}
    body = spec.model_dump(mode="json")
    refused = httpx.post(f"{deployed.url}/v1/batch/jobs", json=body)
    assert refused.status_code == 401
    bad = httpx.post(f"{deployed.url}/v1/batch/jobs", json={**body, "input": "/nonexistent.txt"}, headers=admin)
    assert bad.status_code == 422
    assert "no such file or folder" in bad.json()["error"]["message"]
    submitted = httpx.post(f"{deployed.url}/v1/batch/jobs", json=body, headers=admin, timeout=60)
    assert submitted.status_code == 202, submitted.text
    deadline = time.monotonic() + 180
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
    listed = subprocess.run(
        [str(Path(sys.executable).parent / "ray"), "job", "list", "--address", deployed.dashboard],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert spec.job_id in listed.stdout
    assert httpx.post(f"{deployed.url}/v1/batch/jobs/{spec.job_id}/pause", headers=admin).status_code == 200
    assert httpx.post(f"{deployed.url}/v1/batch/jobs/nope/resume", headers=admin).status_code == 404
    assert httpx.get(f"{deployed.url}/v1/batch/jobs/nope").status_code == 404


def test_the_cli_submits_a_ray_job_and_refuses_bad_input_before_any_work(deployed: Deployed, tmp_path: Path) -> None:
    spec = _spec(tmp_path, region="us-west-2", deadline="2022-09-07T01:20:00Z")
    base = [GRIDSHIFT, "batch", "submit", "--address", deployed.dashboard, "--pipeline", spec.pipeline]
    args = ["--output", spec.output, "--deadline", "2022-09-07T01:20:00Z", "--region", "us-west-2"]
    missing = subprocess.run([*base, "--input", str(tmp_path / "absent.txt"), *args], capture_output=True, text=True)
    assert missing.returncode == 2
    assert "no such file or folder" in missing.stderr
    odd = tmp_path / "rows.xyz"
    odd.write_text("a\n")
    unknown = subprocess.run([*base, "--input", str(odd), *args], capture_output=True, text=True)
    assert unknown.returncode == 2
    assert "unknown format" in unknown.stderr
    assert not Path(spec.output).exists()  # refused before anything was written
    done = subprocess.run(
        [*base, "--input", spec.input, *args, "--job-id", spec.job_id], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == spec.job_id
    from batch.submit import ray_jobs

    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        states = {job.submission_id: job.status for job in ray_jobs(deployed.dashboard)}
        if states.get(spec.job_id) in ("SUCCEEDED", "FAILED"):
            break
        time.sleep(0.5)
    assert states.get(spec.job_id) == "SUCCEEDED", states
    _assert_exactly_once(spec)


def test_a_whole_cluster_restart_mid_job_loses_and_duplicates_nothing(tmp_path: Path) -> None:
    from tests.integration.local_cluster import LocalRayCluster

    rows = 6000
    spec = _spec(
        tmp_path,
        pipeline=PACED,
        input=str(_corpus(tmp_path, rows)),
        region="us-west-2",
        deadline="2022-09-07T01:20:00Z",
        block_rows=200,
    )
    for attempt in ("interrupted", "resumed"):
        cluster = LocalRayCluster(f"restart-{attempt}", 23500)
        cluster.start_head([], num_cpus=2)
        try:
            cluster.assert_running(settle_s=3.0)
            log = tmp_path / f"driver-{attempt}.log"
            with log.open("wb") as stderr:
                driver = subprocess.Popen(
                    _local_submit(spec, cluster.address),
                    env=cluster.env,
                    stdout=subprocess.DEVNULL,
                    stderr=stderr,
                    start_new_session=True,
                )
            try:
                if attempt == "resumed":
                    driver.wait(timeout=300)
                    assert driver.returncode == 0, log.read_text()[-3000:]
                    continue
                deadline = time.monotonic() + 120
                while len(OutputStore(spec.output).records()) < 5 and time.monotonic() < deadline:
                    time.sleep(0.2)
                assert driver.poll() is None, "the job ended before the cluster went down: lengthen it"
                cluster.stop()  # every Ray process of the cluster killed at once: a whole-cluster outage
            finally:
                if driver.poll() is None:
                    os.killpg(driver.pid, signal.SIGKILL)
                    driver.wait()
        finally:
            cluster.stop()
        assert 5 <= len(OutputStore(spec.output).records()) < rows // 200
    _assert_exactly_once(spec)


def _policy(pid: int) -> int | None:
    """The scheduling policy of a process's main thread (/proc/PID/stat field 41), None once it is gone."""
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[38])
    except (OSError, IndexError, ValueError):
        return None


@pytest.mark.skipif(not hasattr(os, "SCHED_IDLE"), reason="SCHED_IDLE is Linux's")
def test_a_submitted_jobs_workers_run_its_stages_as_background_work(deployed: Deployed, tmp_path: Path) -> None:
    """serving.compute_scheduling idle (the default): the job's workers run its pipeline under SCHED_IDLE (the Ray
    Job's worker_process_setup_hook), while its driver and the serving replicas' event loops keep the normal policy."""
    rows = str(_corpus(tmp_path, 800))  # 2 ms a row in blocks of 100: seconds of work to catch the workers in
    spec = _spec(
        tmp_path, pipeline=PACED, input=rows, region="us-west-2", deadline="2022-09-07T01:20:00Z", block_rows=100
    )
    admin = {"Authorization": f"Bearer {deployed.admin_token}"}
    submitted = httpx.post(
        f"{deployed.url}/v1/batch/jobs", json=spec.model_dump(mode="json"), headers=admin, timeout=60
    )
    assert submitted.status_code == 202, submitted.text
    seen: dict[int, int | None] = {}
    drivers: dict[int, int | None] = {}
    deadline = time.monotonic() + 180
    state = ""
    while time.monotonic() < deadline and state not in ("done", "failed"):
        for pid in _workers_running("_paced_upper"):
            seen.setdefault(pid, _policy(pid))
        for pid in _workers_running("-m batch.job"):
            drivers.setdefault(pid, _policy(pid))
        response = httpx.get(f"{deployed.url}/v1/batch/jobs/{spec.job_id}")
        state = str(response.json().get("state", "")) if response.status_code == 200 else ""
        time.sleep(0.05)
    assert state == "done"
    _assert_exactly_once(spec)
    policies = {policy for policy in seen.values() if policy is not None}
    assert policies == {os.SCHED_IDLE}, f"workers running the pipeline and their policies: {seen}"
    assert {policy for policy in drivers.values() if policy is not None} == {os.SCHED_OTHER}, drivers
    replicas = _workers_running("ServeReplica:gridshift:region-")
    assert replicas
    assert all(_policy(pid) == os.SCHED_OTHER for pid in replicas)  # their main threads: the event loops
