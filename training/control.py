"""The training driver's line to the control plane (policies.actors.gate_line): the gate (run, pause or shrink),
progress reports and the control clock; silent too long, the control plane's place is taken by full size."""

from __future__ import annotations

import time
from collections.abc import Callable

from fleet.config import FleetConfig
from policies.actors.client import Client
from policies.actors.gate_line import GateLine
from policies.control_api import ControlApi
from policies.training_gate import TrainingAnswer, TrainingProgress

TrainingGateLine = GateLine[TrainingProgress, TrainingAnswer]


def training_gate(
    control: Client[ControlApi], fleet: FleetConfig, monotonic_s: Callable[[], float] = time.monotonic
) -> TrainingGateLine:
    def full_size(progress: TrainingProgress, reason: str) -> TrainingAnswer:
        full = progress.full_shape
        return TrainingAnswer(True, reason, None, full, 0.0, full.threads)

    return GateLine(
        control,
        fleet,
        kind="training",
        ask=ControlApi.training_gate,
        tell=ControlApi.training_report,
        safe=full_size,
        safe_label="running at full size",
        monotonic_s=monotonic_s,
    )
