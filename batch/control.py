"""The batch driver's line to the control plane (policies.actors.gate_line): the gate (run or pause, with knobs) and
progress reports; silent too long, the control plane's place is taken by safe defaults (full-quality knobs)."""

from __future__ import annotations

import time
from collections.abc import Callable

from fleet.config import FleetConfig
from policies.actors.client import Client
from policies.actors.gate_line import GateLine
from policies.batch_gate import BatchKnobs, GateAnswer, JobProgress, workers_for
from policies.control_api import ControlApi
from policies.ladder import safe_batch_policy

BatchGateLine = GateLine[JobProgress, GateAnswer]


def control_gate(
    control: Client[ControlApi], fleet: FleetConfig, monotonic_s: Callable[[], float] = time.monotonic
) -> BatchGateLine:
    defaults = safe_batch_policy(fleet.serving.knobs)

    def safe(progress: JobProgress, reason: str) -> GateAnswer:
        knobs = BatchKnobs(defaults.batch_size, defaults.precision.value, workers_for(progress.max_workers, 1.0))
        return GateAnswer(True, reason, None, knobs, 0.0)

    return GateLine(
        control,
        fleet,
        kind="batch",
        ask=ControlApi.batch_gate,
        tell=ControlApi.batch_report,
        safe=safe,
        safe_label="running on safe defaults",
        monotonic_s=monotonic_s,
    )
