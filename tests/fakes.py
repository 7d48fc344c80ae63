"""Test doubles shared by unit tests: a region backend that answers at once, and the control plane in-process."""

from __future__ import annotations

import numpy as np

from policies.batch_gate import job_status
from policies.control import ControlPlane, ControlState, GatewayLoad
from router.events import DREvent
from serve_apps.backends import BackendError, RegionalResult


class FakeRegion:
    """A region backend answering deterministic vectors; can be told to fail."""

    def __init__(self, region: str) -> None:
        self.region = region
        self.failing = False
        self.calls = 0
        self.classes: list[str] = []

    async def embed(self, texts: list[str], timeout_s: float, workload_class: str = "tolerant") -> RegionalResult:  # noqa: ARG002 - answers at once
        self.calls += 1
        self.classes.append(workload_class)
        if self.failing:
            raise BackendError(f"{self.region}: down")
        vectors = np.array([[len(text), 1.0, 0.0] for text in texts], dtype=np.float32)
        return RegionalResult(self.region, vectors, "fp32", sum(len(t.split()) for t in texts), "fake-model")

    async def close(self) -> None:
        return None


class InProcessControl:
    """ControlSource over a ControlPlane in this process (the same object the actor wraps)."""

    def __init__(self, plane: ControlPlane) -> None:
        self.plane = plane

    async def sync(self, gateway_id: str, load: GatewayLoad, known_version: int) -> ControlState | None:
        self.plane.report(gateway_id, load)
        return self.plane.state(known_version)

    async def telemetry(self) -> dict[str, object]:
        return self.plane.telemetry()

    async def openadr_status(self) -> dict[str, object] | None:
        return self.plane.openadr_status

    async def post_event(self, event: DREvent) -> DREvent:
        return self.plane.post_event(event)

    async def clear_event(self, event_id: str) -> DREvent | None:
        return self.plane.clear_event(event_id)

    async def list_events(self) -> list[DREvent]:
        return list(self.plane.events.values())

    async def clock_now_s(self) -> float:
        return self.plane.clock.now_s()

    async def job_statuses(self) -> list[dict[str, object]]:
        now_s, speedup = self.plane.clock.now_s(), self.plane.fleet.signal_source.speedup
        return [job_status(p, now_s, speedup, j in self.plane.paused_jobs) for j, p in self.plane.jobs.items()]

    async def pause_job(self, job_id: str) -> bool:
        return self.plane.pause_job(job_id)

    async def resume_job(self, job_id: str) -> bool:
        return self.plane.resume_job(job_id)
