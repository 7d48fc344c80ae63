"""The training driver: run the team's Ray Train loop in segments, one `TorchTrainer.fit` each, at the size the grid
allows, while a watcher asks the gate and tells the workers (through the run's book) to checkpoint and stop when the
grid says pause or a new size; each segment resumes from the latest committed checkpoint (Ray Train's own restore:
the same run name and storage path).

The driver holds counters only: the model, its data and its checkpoints live on the workers and in storage.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol, cast

from ray.actor import ActorHandle
from ray.exceptions import RayError

from policies.actors.client import ActorClient
from policies.training_gate import TrainingAnswer, TrainingProgress, TrainingShape
from training.book import BOOK_CALL_TIMEOUT_S, BookView, Command, CommitRecorder, RunBook, TrainerError
from training.loop import CONFIG_KEY
from training.spec import TrainingJobSpec, load_trainer

logger = logging.getLogger("gridshift.training")

WATCH_S = 0.25
"""How often a running job asks the control plane whether it may go on at its size."""
HEALTH_CHECK_S = "0.25"
"""Ray Train's controller notices finished workers (and registers their reports) at its health check, every 2 s by
default; a quarter second bounds how long a stopped run keeps its workers."""
MAX_WORKER_FAILURES = 3
"""Worker failures Ray Train recovers from (restarting the workers from the latest checkpoint) before the job fails."""
_RATE_SMOOTHING = 0.5


class JobControl(Protocol):
    """What the driver needs of the control plane (training.control.training_gate over the actor)."""

    def gate(self, progress: TrainingProgress) -> TrainingAnswer | None: ...

    def report(self, progress: TrainingProgress) -> None: ...

    def now_s(self) -> float | None: ...


@dataclass(frozen=True)
class Pause:
    """One stop of the run's workers, measured: when the gate decided it, when the workers were released, the step
    they stopped at and the step committed then (work after the commit is trained again)."""

    reason: str
    decided_wall_s: float
    released_wall_s: float
    stopped_step: int
    committed_step: int

    @property
    def reaction_s(self) -> float:
        return self.released_wall_s - self.decided_wall_s

    @property
    def lost_steps(self) -> int:
        return max(self.stopped_step - self.committed_step, 0)


@dataclass(frozen=True)
class RunResult:
    job_id: str
    steps_done: int
    segments: int
    pauses: tuple[Pause, ...]
    checkpoint_path: str | None
    metrics: dict[str, Any] = field(default_factory=dict)
    shapes: tuple[TrainingShape, ...] = ()  # each segment's size
    segment_rates: tuple[float, ...] = ()  # each segment's measured steps per second


def restored(spec: TrainingJobSpec) -> tuple[int, str | None, dict[str, Any]]:
    """(steps, checkpoint path, metrics) of the run's latest committed checkpoint in storage; (0, None, {}) for a new
    run. A rerun of the job (after a crash or kill -9 of its driver) starts from here."""
    from ray.train import Result

    try:
        result = Result.from_path(f"{spec.storage_path.rstrip('/')}/{spec.job_id}")
    except RuntimeError:
        return 0, None, {}
    if result.checkpoint is None:
        return 0, None, {}
    metrics = dict(result.metrics or {})
    return int(metrics.get("step", 0)), result.checkpoint.path, metrics


class _Progress:
    """The job's progress as the control plane sees it, kept current from the book while a segment runs."""

    def __init__(self, spec: TrainingJobSpec, steps_done: int) -> None:
        self.spec = spec
        self.steps_done = steps_done
        self.step_s = spec.step_s
        self.shape = TrainingShape(0, 0)
        self.view: BookView | None = None
        self.full_cpu = 0.0
        self.restored_commit = steps_done > 0
        self.on_report: Callable[[TrainingProgress], None] | None = None

    def observe(self, view: BookView, shape: TrainingShape) -> None:
        self.view = view
        if view.committed_step is not None:
            self.steps_done = max(self.steps_done, view.committed_step)
        rate = view.steps_per_second
        full = self.spec.workers * self.spec.threads_per_worker
        if rate > 0 and shape == TrainingShape(self.spec.workers, self.spec.threads_per_worker):
            # Only full-size speed plans work: the slack rule must hold if the grid lets the job run at full size.
            self.step_s = (1 - _RATE_SMOOTHING) * self.step_s + _RATE_SMOOTHING / rate
        if view.cpu_s_per_s > 0 and shape.threads > 0:
            self.full_cpu = view.cpu_s_per_s * full / shape.threads

    @property
    def checkpointing(self) -> bool:
        """False once the loop was asked for checkpoints twice and none was ever committed."""
        view = self.view
        return view is None or self.restored_commit or bool(view.commits) or view.asked < 2

    def report(self, state: str, reason: str, resume_at_s: float | None = None) -> TrainingProgress:
        spec, view = self.spec, self.view
        running = state == "running"
        current = TrainingProgress(
            job_id=spec.job_id,
            region=spec.region,
            signal=spec.signal,
            deadline_s=spec.deadline.timestamp(),
            flex_tier=spec.flex_tier,
            state=state,
            steps_done=self.steps_done,
            steps_total=spec.steps,
            step_s=self.step_s,
            max_workers=spec.workers,
            threads_per_worker=spec.threads_per_worker,
            workers=self.shape.workers if running else 0,
            threads=self.shape.threads_per_worker if running else 0,
            steps_seen=max(self.steps_done, view.last.step if view and view.last else 0),
            steps_per_second=view.steps_per_second if view and running else 0.0,
            cpu_s_per_s=view.cpu_s_per_s if view and running else 0.0,
            full_cpu_s_per_s=self.full_cpu,
            checkpoints=len(view.commits) if view else 0,
            checkpointing=self.checkpointing,
            reason=reason,
            resume_at_s=resume_at_s,
            tenant_id=spec.tenant_id,
        )
        if self.on_report is not None:
            self.on_report(current)
        return current


class _Watcher:
    """Asks the gate every WATCH_S while a segment runs; a pause or a new worker count stops the segment (checkpoint
    and stop at the next step boundary), a new thread count is applied in place. Keeps the progress current."""

    def __init__(
        self, control: JobControl, progress: _Progress, book: ActorClient[RunBook], segment: int, shape: TrainingShape
    ) -> None:
        self._control = control
        self._progress = progress
        self._book = book
        self._segment = segment
        self._shape = shape
        self._stop = threading.Event()
        self.command: Command | None = None
        self.decided_wall_s: float | None = None  # when the standing stop was first decided
        self._thread = threading.Thread(target=self._run, name="gridshift-training-watch", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(WATCH_S):
            try:
                self._watch()
            except RayError as error:  # the book briefly unreachable: the run goes on; ask again next period
                logger.warning("training watcher: %s", error)

    def _watch(self) -> None:
        view = self._book.call_sync(RunBook.view)
        self._progress.observe(view, self._shape)
        answer = self._control.gate(
            self._progress.report("running", "" if view.command is None else view.command.reason)
        )
        if answer is None or view.command is None:
            return
        stop = not answer.run or answer.shape.workers != self._shape.workers
        reason = f"pause: {answer.reason}" if not answer.run else answer.reason
        threads = answer.shape.threads_per_worker if answer.run else view.command.threads_per_worker
        current = view.command
        if (stop, threads) == (current.stop, current.threads_per_worker):
            return
        if stop and not current.stop:
            self.decided_wall_s = time.time()
            logger.info("stopping the run's workers: %s", reason)
        elif not stop:
            self.decided_wall_s = None
        if answer.run:
            self._shape = TrainingShape(self._shape.workers, threads)
            self._progress.shape = self._shape
        command = Command(self._segment, stop, reason, threads, current.checkpoint_every_s, time.time())
        self._book.call_sync(RunBook.set_command, command)
        self.command = command

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10.0)


def _trainer(spec: TrainingJobSpec, book: Any, segment: int, shape: TrainingShape) -> Any:
    from ray.train import CheckpointConfig, FailureConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchConfig, TorchTrainer

    resources = {"CPU": spec.worker_cpus, **({"GPU": 1.0} if spec.use_gpu else {})}
    settings = {
        "book": book,
        "segment": segment,
        "threads_per_worker": shape.threads_per_worker,
        "checkpoint_every_s": spec.checkpoint_every_s,
    }
    return TorchTrainer(
        load_trainer(spec.trainer),
        train_loop_config={**spec.config, "steps": spec.steps, CONFIG_KEY: settings},
        torch_config=TorchConfig(backend="nccl" if spec.use_gpu else "gloo"),
        scaling_config=ScalingConfig(num_workers=shape.workers, use_gpu=spec.use_gpu, resources_per_worker=resources),
        run_config=RunConfig(
            name=spec.job_id,
            storage_path=spec.storage_path,
            callbacks=cast(Any, [CommitRecorder(book)]),  # ray.train's stubs name Train V1's callback type
            failure_config=FailureConfig(max_failures=MAX_WORKER_FAILURES),
            checkpoint_config=CheckpointConfig(num_to_keep=2),
        ),
    )


def run_job(
    spec: TrainingJobSpec,
    control: JobControl,
    *,
    sleep: Callable[[float], None] = time.sleep,
    on_progress: Callable[[TrainingProgress], None] | None = None,
) -> RunResult:
    """Run the job to its last step, from its latest committed checkpoint if it has one."""
    import ray

    os.environ.setdefault("RAY_TRAIN_HEALTH_CHECK_INTERVAL_S", HEALTH_CHECK_S)
    steps_done, checkpoint_path, metrics = restored(spec)
    progress = _Progress(spec, steps_done)
    progress.on_report = on_progress
    handle = cast("ActorHandle[RunBook]", ray.remote(RunBook).options(num_cpus=0).remote())
    book = ActorClient[RunBook]("training-book", handle, timeout_s=BOOK_CALL_TIMEOUT_S)
    pauses: list[Pause] = []
    shapes: list[TrainingShape] = []
    rates: list[float] = []
    segment = 0
    while progress.steps_done < spec.steps:
        answer = control.gate(progress.report("running" if segment else "starting", ""))
        while answer is None or not answer.run:
            if answer is not None:
                control.report(progress.report("paused", answer.reason, answer.resume_at_s))
            sleep(1.0 if answer is None else answer.poll_s)
            answer = control.gate(progress.report("paused", "" if answer is None else answer.reason))
        segment += 1
        shape = progress.shape = answer.shape
        shapes.append(shape)
        command = Command(segment, False, answer.reason, shape.threads_per_worker, spec.checkpoint_every_s, time.time())
        book.call_sync(RunBook.set_command, command)
        control.report(progress.report("running", answer.reason))
        watcher = _Watcher(control, progress, book, segment, shape)
        try:
            result = _trainer(spec, handle, segment, shape).fit()
        finally:
            watcher.stop()
        released = time.time()
        view = book.call_sync(RunBook.view)
        progress.observe(view, progress.shape)
        rates.append(view.steps_per_second)
        if view.errors:
            raise TrainerError(f"trainer {spec.trainer}: {view.errors[0]}")
        if result.checkpoint is not None:
            checkpoint_path = result.checkpoint.path
            metrics = dict(result.metrics or {})
        if view.stopped_at is None:
            if progress.steps_done < spec.steps:
                raise TrainerError(
                    f"trainer {spec.trainer}: the loop returned with {progress.steps_done} of {spec.steps} steps "
                    "committed, unasked; it must run config['steps'] steps and report a checkpoint (with its 'step') "
                    "whenever the step boundary asks"
                )
            break
        stop_reason = watcher.command.reason if watcher.command is not None else "stopped"
        decided = watcher.decided_wall_s if watcher.decided_wall_s is not None else view.stopped_at.wall_s
        pauses.append(Pause(stop_reason, decided, released, view.stopped_at.step, progress.steps_done))
        logger.info(
            "job %s: segment %d stopped at step %d (%s)", spec.job_id, segment, view.stopped_at.step, stop_reason
        )
    control.report(progress.report("done", "every step trained"))
    return RunResult(
        spec.job_id, progress.steps_done, segment, tuple(pauses), checkpoint_path, metrics, tuple(shapes), tuple(rates)
    )
