"""The training driver's line to the control plane: the gate (run, pause or shrink), progress reports and the control
clock, with the safe fallback when the control plane cannot be reached (run at full size: the deadline matters)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from ray.exceptions import GetTimeoutError, RayError

from fleet.config import FleetConfig
from policies.actors.client import Client
from policies.control_api import ControlApi
from policies.training_gate import TrainingAnswer, TrainingProgress

logger = logging.getLogger("gridshift.training")

GATE_TIMEOUT_S = 5.0
"""A gate call that takes longer than this counts as the control plane being unreachable."""


class TrainingGate:
    """The gate over the control actor. Unreachable for longer than `policy.fallback_after_s`, the job runs at full
    size (as batch jobs run on safe defaults) rather than wait paused forever."""

    def __init__(
        self, control: Client[ControlApi], fleet: FleetConfig, monotonic_s: Callable[[], float] = time.monotonic
    ) -> None:
        self._control = control
        self._fleet = fleet
        self._monotonic_s = monotonic_s
        self._last_answer_s = monotonic_s()

    def gate(self, progress: TrainingProgress) -> TrainingAnswer | None:
        """The control plane's answer; None while it is unreachable within the fallback window (keep the last
        answer), and full size once the silence lasts longer."""
        try:
            answer = self._control.call_sync(ControlApi.training_gate, progress)
        except (GetTimeoutError, RayError, ValueError) as error:
            silent_s = self._monotonic_s() - self._last_answer_s
            limit_s = self._fleet.policy.fallback_after_s
            if silent_s <= limit_s:
                logger.warning("training gate: control plane unreachable (%s); retrying", error)
                return None
            reason = f"control plane unreachable for {silent_s:.0f} s (> {limit_s:g} s): running at full size"
            full = progress.full_shape
            return TrainingAnswer(True, reason, None, full, 0.0, full.threads)
        self._last_answer_s = self._monotonic_s()
        return answer

    def report(self, progress: TrainingProgress) -> None:
        # Fire and forget: a report is a status line, and the next one supersedes it.
        try:
            self._control.tell(ControlApi.training_report, progress)
        except (RayError, ValueError) as error:
            logger.warning("training report: control plane unreachable (%s)", error)

    def now_s(self) -> float | None:
        """Now on the control clock; None when the control plane cannot say."""
        try:
            return float(self._control.call_sync(ControlApi.clock_now_s))
        except (GetTimeoutError, RayError, ValueError):
            return None
