"""The control actor: the named, restartable Ray actor that owns the clock and signals and serves the control state."""

from __future__ import annotations

from typing import Any, cast

import ray
from ray.actor import ActorHandle

from policies.batch_gate import GateAnswer, JobProgress, job_status
from policies.control import ControlPlane, ControlState
from router.clock import WallClock, clock_for_source
from router.config import FleetConfig, Knobs, parse_fleet
from router.events import DREvent
from router.state import load_context

CONTROL_ACTOR_NAME = "gridshift-control"
NAMESPACE = "gridshift"


class ControlActor:
    """Ray wrapper around ControlPlane. Methods take and return plain values and pydantic models."""

    def __init__(self, fleet_data: dict[str, Any]) -> None:
        fleet = parse_fleet(fleet_data, source="control actor fleet")
        self._plane = ControlPlane(load_context(fleet), clock_for_source(fleet.signal_source), WallClock())

    def sync(
        self, gateway_id: str, in_flight: dict[str, int], unhealthy: list[str], known_version: int
    ) -> ControlState | None:
        """One round trip per refresh: take a gateway's load and health, give back any newer state."""
        self._plane.report(gateway_id, in_flight, frozenset(unhealthy))
        return self._plane.state(known_version)

    def state(self, known_version: int = -1) -> ControlState | None:
        return self._plane.state(known_version)

    def post_event(self, event: DREvent) -> DREvent:
        return self._plane.post_event(event)

    def clear_event(self, event_id: str) -> DREvent | None:
        return self._plane.clear_event(event_id)

    def clear_region_events(self, region: str) -> list[DREvent]:
        return self._plane.clear_region_events(region)

    def list_events(self) -> list[DREvent]:
        return list(self._plane.events.values())

    def set_knobs(self, region: str, knobs: Knobs) -> None:
        self._plane.set_knobs(region, knobs)

    def clock_now_s(self) -> float:
        return self._plane.clock.now_s()

    def batch_gate(self, progress: JobProgress) -> GateAnswer:
        return self._plane.batch_gate(progress)

    def batch_report(self, progress: JobProgress) -> None:
        self._plane.batch_report(progress)

    def pause_job(self, job_id: str) -> bool:
        return self._plane.pause_job(job_id)

    def resume_job(self, job_id: str) -> bool:
        return self._plane.resume_job(job_id)

    def job_statuses(self) -> list[dict[str, object]]:
        now_s = self._plane.clock.now_s()
        speedup = self._plane.fleet.signal_source.speedup
        return [
            job_status(progress, now_s, speedup, job_id in self._plane.paused_jobs)
            for job_id, progress in sorted(self._plane.jobs.items())
        ]


def get_or_create_control_actor(fleet: FleetConfig) -> ActorHandle[ControlActor]:
    """The fleet's control actor, started if absent. Detached and restarted by Ray if it dies, so gateways
    created by `serve deploy` and by `gridshift up` find the same one."""
    remote_cls = ray.remote(ControlActor)
    handle = remote_cls.options(
        name=CONTROL_ACTOR_NAME,
        namespace=NAMESPACE,
        get_if_exists=True,
        lifetime="detached",
        max_restarts=-1,
        max_task_retries=3,
        num_cpus=0,
    ).remote(fleet.model_dump(mode="json"))
    return cast("ActorHandle[ControlActor]", handle)
