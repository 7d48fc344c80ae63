"""A training run's book: the driver's command to the workers (go on, or checkpoint and stop; threads per worker),
what rank 0 saw at its step boundaries, the workers' measured CPU, and the checkpoints Ray Train committed.

`RunBook` is plain Python (tested without Ray); the driver runs it as a small actor. Rank 0's step boundary
(training.loop) exchanges with it; `CommitRecorder`, a Ray Train callback on the run's controller, records each
checkpoint once Ray Train has persisted and registered it: the commit point a resume starts from.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from ray.train import Checkpoint, UserCallback

from fleet.errors import GridshiftError

STEP_METRIC = "step"
"""The metric every checkpoint's report must carry: the number of steps the checkpoint holds."""


class TrainerError(GridshiftError):
    """The team's loop broke the contract (a checkpoint without its step, a pause it would not honour)."""


@dataclass(frozen=True)
class Command:
    """What the workers do at their next step boundaries."""

    segment: int  # the run segment (one TorchTrainer.fit) this command is for
    stop: bool  # checkpoint at the next boundary and end the run: a pause, or a restart at another size
    reason: str
    threads_per_worker: int  # torch threads each worker uses: changed in place, at a boundary, without a restart
    checkpoint_every_s: float
    issued_wall_s: float


@dataclass(frozen=True)
class Boundary:
    """Rank 0 at a step boundary: the steps done so far, and whether it asked for a checkpoint or stopped there."""

    segment: int
    step: int
    wall_s: float
    asked_checkpoint: bool = False
    stopped: bool = False


@dataclass(frozen=True)
class Commit:
    step: int
    wall_s: float
    segment: int


@dataclass(frozen=True)
class BookView:
    """The run as the driver sees it: live progress, the measured rate and CPU, the commits."""

    segment: int
    first: Boundary | None  # the segment's first boundary (rate is measured from it)
    last: Boundary | None
    stopped_at: Boundary | None
    commits: tuple[Commit, ...]
    asked: int  # checkpoints asked for since the job started
    cpu_s_per_s: float  # the segment's workers together, latest measure
    command: Command | None
    errors: tuple[str, ...]

    @property
    def steps_per_second(self) -> float:
        if self.first is None or self.last is None or self.last.wall_s <= self.first.wall_s:
            return 0.0
        return (self.last.step - self.first.step) / (self.last.wall_s - self.first.wall_s)

    @property
    def committed_step(self) -> int | None:
        return None if not self.commits else self.commits[-1].step


@dataclass
class RunBook:
    """The book's state. A new segment starts clean except for commits and asks, which are the job's."""

    command: Command | None = None
    commits: list[Commit] = field(default_factory=list)
    asked: int = 0
    errors: list[str] = field(default_factory=list)
    _first: Boundary | None = None
    _last: Boundary | None = None
    _stopped: Boundary | None = None
    _cpu: dict[int, float] = field(default_factory=dict)

    def set_command(self, command: Command) -> None:
        if self.command is None or command.segment != self.command.segment:
            self._first = self._last = self._stopped = None
            self._cpu = {}
        self.command = command

    def exchange(self, boundary: Boundary) -> tuple[Command | None, int]:
        """Rank 0's boundary report; answers the command in force and how many checkpoints were committed."""
        if self.command is not None and boundary.segment == self.command.segment:
            if self._first is None:
                self._first = boundary
            self._last = boundary
            if boundary.stopped:
                self._stopped = boundary
        self.asked += boundary.asked_checkpoint
        return self.command, len(self.commits)

    def cpu(self, segment: int, rank: int, cpu_s_per_s: float) -> None:
        if self.command is not None and segment == self.command.segment:
            self._cpu[rank] = cpu_s_per_s

    def commit(self, step: object, wall_s: float) -> None:
        if not isinstance(step, int) or isinstance(step, bool) or step < 0:
            self.errors.append(
                f"a checkpoint was reported without a whole {STEP_METRIC!r} metric (got {step!r}): report "
                f"ray.train.report({{{STEP_METRIC!r}: steps_done, ...}}, checkpoint=...)"
            )
            return
        self.commits.append(Commit(step, wall_s, 0 if self.command is None else self.command.segment))

    def view(self) -> BookView:
        return BookView(
            segment=0 if self.command is None else self.command.segment,
            first=self._first,
            last=self._last,
            stopped_at=self._stopped,
            commits=tuple(self.commits),
            asked=self.asked,
            cpu_s_per_s=sum(self._cpu.values()),
            command=self.command,
            errors=tuple(self.errors),
        )


BOOK_CALL_TIMEOUT_S = 30.0
"""A book call is microseconds of work; this only bounds waiting behind a busy cluster."""


class CommitRecorder(UserCallback):
    """Runs on the run's controller: after Ray Train has persisted a reported checkpoint, records it in the book with
    the step rank 0 reported, before the controller goes on (so a finished fit has every commit recorded)."""

    def __init__(self, book: Any) -> None:
        self._book = book

    def after_report(
        self,
        run_context: Any,  # noqa: ARG002 - Ray Train's signature; the book is this run's already
        metrics: list[dict[str, Any]],
        checkpoint: Checkpoint | None,
    ) -> None:
        if checkpoint is None:
            return
        import ray

        step = metrics[0].get(STEP_METRIC) if metrics else None
        ray.get(self._book.commit.remote(step, time.time()), timeout=BOOK_CALL_TIMEOUT_S)
