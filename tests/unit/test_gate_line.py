"""A job driver's line to the control plane when the control actor cannot be reached (policies.actors.gate_line):
keep the last answer while the silence is within `policy.fallback_after_s`, then run on the kind's safe answer.
Ray-free: the client is a stand-in that answers or fails as the test says; the fallback rule is the real one."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from ray.exceptions import GetTimeoutError, RayActorError

from batch.control import control_gate
from fleet.loaders import load_fleet
from policies.batch_gate import BatchKnobs, GateAnswer, JobProgress
from policies.training_gate import TrainingAnswer, TrainingProgress, TrainingShape
from training.control import training_gate

FLEET = load_fleet(None)
LIMIT_S = FLEET.policy.fallback_after_s


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class SwitchableClient:
    """Answers with `answers[method]` while up; raises `failure` while down. Records every call and report."""

    def __init__(self, answers: dict[str, Any]) -> None:
        self.answers = answers
        self.failure: BaseException | None = None
        self.told: list[tuple[str, Any]] = []

    def call_sync(self, method: Callable[..., Any], /, *_args: Any) -> Any:
        if self.failure is not None:
            raise self.failure
        return self.answers[method.__name__]

    def tell(self, method: Callable[..., Any], /, *args: Any) -> None:
        if self.failure is not None:
            raise self.failure
        self.told.append((method.__name__, args[0]))


def _job(max_workers: int = 4) -> JobProgress:
    return JobProgress("j1", "us-west-1", "carbon", 2e9, "running", 10, 100, 5.0, max_workers=max_workers)


def _training() -> TrainingProgress:
    return TrainingProgress(
        "t1", "us-west-1", "carbon", 2e9, 2, "running", 5, 50, 1.0, max_workers=2, threads_per_worker=1
    )


PAUSED = GateAnswer(False, "grid stress 3", 2e9, BatchKnobs(4, "int8", 1), 5.0)


@pytest.mark.parametrize("failure", [RayActorError(), GetTimeoutError("slow"), ValueError("no such actor")])
def test_a_batch_job_keeps_its_last_answer_within_the_window_then_runs_on_safe_defaults(failure) -> None:
    clock, client = Clock(), SwitchableClient({"batch_gate": PAUSED})
    line = control_gate(client, FLEET, monotonic_s=clock)  # type: ignore[arg-type]
    assert line.gate(_job()) == PAUSED  # the control plane's own answer
    client.failure = failure
    clock.now += LIMIT_S  # silent exactly as long as allowed: keep the last answer (None), retry
    assert line.gate(_job()) is None
    clock.now += 1.0
    safe = line.gate(_job(max_workers=4))
    assert safe is not None
    assert safe.run
    assert safe.knobs == BatchKnobs(
        FLEET.serving.knobs.max_batch_size, FLEET.serving.knobs.precision_for("batch").value, 4
    )
    assert "control plane unreachable" in safe.reason
    assert "safe defaults" in safe.reason


def test_an_answer_restarts_the_silence_and_reports_never_raise() -> None:
    clock, client = Clock(), SwitchableClient({"batch_gate": PAUSED})
    line = control_gate(client, FLEET, monotonic_s=clock)  # type: ignore[arg-type]
    client.failure = RayActorError()
    clock.now += LIMIT_S + 1.0
    assert line.gate(_job()) is not None  # silent since the line opened: safe defaults
    line.report(_job())  # a lost report is a lost status line, not an error
    client.failure = None
    assert line.gate(_job()) == PAUSED
    line.report(_job())
    assert client.told == [("batch_report", _job())]
    client.failure = RayActorError()
    clock.now += LIMIT_S  # counted from the last answer, not from when the line opened
    assert line.gate(_job()) is None


def test_a_training_job_runs_at_full_size_once_the_silence_is_too_long() -> None:
    paused = TrainingAnswer(False, "grid stress 3", 2e9, TrainingShape(0, 0), 5.0)
    clock, client = Clock(), SwitchableClient({"training_gate": paused, "clock_now_s": 1.66e9})
    line = training_gate(client, FLEET, monotonic_s=clock)  # type: ignore[arg-type]
    assert line.gate(_training()) == paused
    assert line.now_s() == 1.66e9
    client.failure = RayActorError()
    assert line.now_s() is None
    clock.now += LIMIT_S + 1.0
    answer = line.gate(_training())
    assert answer is not None
    assert answer.run
    assert answer.shape == _training().full_shape
    assert answer.full_threads == _training().full_shape.threads
    assert "running at full size" in answer.reason
