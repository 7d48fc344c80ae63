"""The step boundary a team's Ray Train loop calls after each step (runs on the workers): whether to checkpoint now
(every `checkpoint_every_s`, at the last step, or because the grid wants the run to stop) and whether to stop.

The loop keeps Ray Train's contract: it resumes from `ray.train.get_checkpoint()` and checkpoints with
`ray.train.report({"step": steps_done, ...}, checkpoint=...)`. gridshift only says when::

    boundary = StepBoundary(config)
    for step in range(start, config["steps"]):
        ...  # one optimisation step
        action = boundary.after_step(step + 1)
        if action.checkpoint:
            ray.train.report({"step": step + 1, "loss": loss}, checkpoint=...)
        if action.stop:
            return

Every worker reaches the same answer at the same step: rank 0 decides from the run's book (read without blocking a
step: the answer of the previous exchange is used while the next is in flight) and a one-integer all-reduce shares
it. A stop is only ever answered together with a checkpoint, and only to a loop that has already committed one when
asked; until then a stop asks for a checkpoint and runs on, so no pause can lose the steps since the last commit.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import ray

from training.book import Boundary, Command

CONFIG_KEY = "gridshift"
"""Where the run's settings sit in the loop's config: the book's handle, the segment, threads, checkpoint cadence."""
EXCHANGE_S = 0.1
"""Rank 0 talks to the book at most this often, wall s: the pause reaction, plus the exchange's round trip."""
CPU_EVERY_S = 1.0
"""Each worker measures its process's CPU time over windows of this many wall seconds."""

_GO, _CHECKPOINT, _CHECKPOINT_AND_STOP = 0, 1, 2


@dataclass(frozen=True)
class Action:
    checkpoint: bool
    stop: bool


class StepBoundary:
    """One worker's view of the run's commands. Construct it once per run, in the loop, from the loop's config."""

    def __init__(self, config: dict[str, Any]) -> None:
        import torch

        settings = config[CONFIG_KEY]
        self._book = settings["book"]
        self._segment = int(settings["segment"])
        self._every_s = float(settings["checkpoint_every_s"])
        self._threads = int(settings["threads_per_worker"])
        self._steps = int(config["steps"])
        self._rank = ray.train.get_context().get_world_rank()
        self._world = ray.train.get_context().get_world_size()
        torch.set_num_threads(self._threads)
        now = time.monotonic()
        self._last_checkpoint_s: float | None = None  # the interval counts from the first step, not from set-up
        self._command: Command | None = None
        self._commits = 0
        self._asked_at_commits: int | None = None  # commits when a stop asked for a checkpoint (not yet proven)
        self._pending: Any = None  # the exchange in flight
        self._last_exchange_s = 0.0
        self._asked_since_exchange = False
        self._cpu_since = (now, time.process_time())

    def after_step(self, step: int) -> Action:
        """Call after each step with the number of steps done (the value a checkpoint made now would hold)."""
        code, threads = self._decide(step) if self._rank == 0 else (_GO, 0)
        code, threads = self._agree(code, threads)
        now = time.monotonic()
        if code != _GO or self._last_checkpoint_s is None:
            self._last_checkpoint_s = now
        if threads and threads != self._threads:
            import torch

            self._threads = threads
            torch.set_num_threads(threads)
        if self._rank == 0:
            self._asked_since_exchange |= code != _GO
            if code == _CHECKPOINT_AND_STOP:
                # Blocking: the driver must see where the run stopped before the run's workers are gone.
                boundary = Boundary(self._segment, step, time.time(), asked_checkpoint=True, stopped=True)
                ray.get(self._book.exchange.remote(boundary))
        self._measure_cpu(now)
        return Action(checkpoint=code != _GO, stop=code == _CHECKPOINT_AND_STOP)

    def _decide(self, step: int) -> tuple[int, int]:
        now = time.monotonic()
        if self._pending is not None:
            ready, _ = ray.wait([self._pending], timeout=0)
            if ready:
                self._command, self._commits = ray.get(self._pending)
                self._pending = None
        if self._pending is None and now - self._last_exchange_s >= EXCHANGE_S:
            boundary = Boundary(self._segment, step, time.time(), asked_checkpoint=self._asked_since_exchange)
            self._pending = self._book.exchange.remote(boundary)
            self._last_exchange_s = now
            self._asked_since_exchange = False
        command = self._command if self._command is not None and self._command.segment == self._segment else None
        threads = 0 if command is None else command.threads_per_worker
        every_s = self._every_s if command is None else command.checkpoint_every_s
        if command is not None and command.stop:
            if self._commits > 0 and (self._asked_at_commits is None or self._commits > self._asked_at_commits):
                return _CHECKPOINT_AND_STOP, threads
            if self._asked_at_commits is None:
                # Never seen a commit: ask for one and run on until it shows, rather than stop and lose the steps.
                self._asked_at_commits = self._commits
                return _CHECKPOINT, threads
        since_s = 0.0 if self._last_checkpoint_s is None else now - self._last_checkpoint_s
        if step >= self._steps or since_s >= every_s:
            return _CHECKPOINT, threads
        return _GO, threads

    def _agree(self, code: int, threads: int) -> tuple[int, int]:
        """Rank 0's answer on every rank (the others contribute zeros to a max all-reduce)."""
        import torch
        import torch.distributed as dist

        if self._world <= 1 or not dist.is_initialized():
            return code, threads
        device = torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else None
        agreed = torch.tensor([code, threads], dtype=torch.int64, device=device)
        dist.all_reduce(agreed, op=dist.ReduceOp.MAX)
        return int(agreed[0]), int(agreed[1])

    def _measure_cpu(self, now: float) -> None:
        since_s, since_cpu = self._cpu_since
        if now - since_s < CPU_EVERY_S:
            return
        cpu = time.process_time()
        self._book.cpu.remote(self._segment, self._rank, (cpu - since_cpu) / (now - since_s))
        self._cpu_since = (now, cpu)
