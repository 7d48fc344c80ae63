"""A job driver's line to the control plane: the gate, progress reports and the control clock, with the one fallback
rule batch and training drivers share. While the control actor cannot be reached the gate answers None (the driver
keeps its last answer); once the silence outlasts `policy.fallback_after_s`, it answers the job kind's safe answer
and the job runs rather than wait paused forever, because its deadline still matters."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Generic, TypeVar

from ray.exceptions import GetTimeoutError, RayError

from fleet.config import FleetConfig
from policies.actors.client import Client
from policies.control_api import ControlApi

GATE_TIMEOUT_S = 5.0
"""A gate call that takes longer than this counts as the control plane being unreachable."""

Progress = TypeVar("Progress")
Answer = TypeVar("Answer")


class GateLine(Generic[Progress, Answer]):
    """`ask` and `tell` are the kind's ControlApi gate and report methods; `safe(progress, reason)` builds the
    answer a job runs on once the control plane has been silent too long, described by `safe_label`."""

    def __init__(
        self,
        control: Client[ControlApi],
        fleet: FleetConfig,
        *,
        kind: str,
        ask: Callable[[ControlApi, Progress], Answer],
        tell: Callable[[ControlApi, Progress], None],
        safe: Callable[[Progress, str], Answer],
        safe_label: str,
        monotonic_s: Callable[[], float] = time.monotonic,
    ) -> None:
        self._control = control
        self._fleet = fleet
        self._kind = kind
        self._log = logging.getLogger(f"gridshift.{kind}")
        self._ask, self._tell = ask, tell
        self._safe, self._safe_label = safe, safe_label
        self._monotonic_s = monotonic_s
        self._last_answer_s = monotonic_s()

    def gate(self, progress: Progress) -> Answer | None:
        """The control plane's answer; None while it cannot be reached and its silence is within the fallback
        window (the caller keeps its last answer); the safe answer once the silence lasts longer."""
        try:
            answer = self._control.call_sync(self._ask, progress)
        except (GetTimeoutError, RayError, ValueError) as error:
            silent_s = self._monotonic_s() - self._last_answer_s
            limit_s = self._fleet.policy.fallback_after_s
            if silent_s <= limit_s:
                self._log.warning("%s gate: control plane unreachable (%s); retrying", self._kind, error)
                return None
            reason = f"control plane unreachable for {silent_s:.0f} s (> {limit_s:g} s): {self._safe_label}"
            return self._safe(progress, reason)
        self._last_answer_s = self._monotonic_s()
        return answer

    def report(self, progress: Progress) -> None:
        # Fire and forget: a report is a status line, and the next one supersedes it.
        try:
            self._control.tell(self._tell, progress)
        except (RayError, ValueError) as error:
            self._log.warning("%s report: control plane unreachable (%s)", self._kind, error)

    def now_s(self) -> float | None:
        """Now on the control clock; None when the control plane cannot say."""
        try:
            return float(self._control.call_sync(ControlApi.clock_now_s))
        except (GetTimeoutError, RayError, ValueError):
            return None
