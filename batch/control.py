"""The batch driver's line to the control plane: the gate (run or pause, with knobs) and progress reports, with
the safe fallback when the control plane cannot be reached."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from ray.exceptions import GetTimeoutError, RayError

from fleet.config import FleetConfig
from policies.actors.client import Client
from policies.batch_gate import BatchKnobs, GateAnswer, JobProgress, workers_for
from policies.control_api import ControlApi
from policies.ladder import safe_batch_policy

logger = logging.getLogger("gridshift.batch")

GATE_TIMEOUT_S = 5.0
"""A gate call that takes longer than this counts as the control plane being unreachable."""


class ControlGate:
    """The gate over the control actor. If the actor cannot be reached for `policy.fallback_after_s`, the job runs
    on safe defaults (full-quality knobs) rather than wait paused forever: its deadline still matters."""

    def __init__(
        self, control: Client[ControlApi], fleet: FleetConfig, monotonic_s: Callable[[], float] = time.monotonic
    ) -> None:
        self._control = control
        self._fleet = fleet
        self._monotonic_s = monotonic_s
        self._last_answer_s = monotonic_s()

    def gate(self, progress: JobProgress) -> GateAnswer | None:
        """The control plane's answer; None while it cannot be reached and its silence is within the fallback
        window (the caller keeps its last answer), and safe defaults once the silence lasts longer."""
        try:
            answer = self._control.call_sync(ControlApi.batch_gate, progress)
        except (GetTimeoutError, RayError, ValueError) as error:
            return self._unreachable(error, progress)
        self._last_answer_s = self._monotonic_s()
        return answer

    def _unreachable(self, error: BaseException, progress: JobProgress) -> GateAnswer | None:
        silent_s = self._monotonic_s() - self._last_answer_s
        limit_s = self._fleet.policy.fallback_after_s
        if silent_s <= limit_s:
            logger.warning("batch gate: control plane unreachable (%s); retrying", error)
            return None
        defaults = safe_batch_policy(self._fleet.serving.knobs)
        knobs = BatchKnobs(defaults.batch_size, defaults.precision.value, workers_for(progress.max_workers, 1.0))
        reason = f"control plane unreachable for {silent_s:.0f} s (> {limit_s:g} s): running on safe defaults"
        return GateAnswer(True, reason, None, knobs, 0.0)

    def report(self, progress: JobProgress) -> None:
        # Fire and forget: a report is a status line, and the next one supersedes it.
        try:
            self._control.tell(ControlApi.batch_report, progress)
        except (RayError, ValueError) as error:
            logger.warning("batch report: control plane unreachable (%s)", error)
