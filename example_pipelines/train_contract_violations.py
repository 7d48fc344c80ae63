"""Training loops that break gridshift's contract, for the tests of how it is refused: this one never reports the
checkpoints the step boundary asks for (so it can be neither paused nor shrunk without losing its work)."""

from __future__ import annotations

from typing import Any

import ray.train

from training.loop import StepBoundary


def never_checkpoints(config: dict[str, Any]) -> None:
    """Runs its steps and reports metrics only: every `action.checkpoint` and `action.stop` is ignored."""
    boundary = StepBoundary(config)
    for step in range(int(config["steps"])):
        boundary.after_step(step + 1)
        if (step + 1) % 100 == 0:
            ray.train.report({"step": step + 1})
