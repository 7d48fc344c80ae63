"""The control actor: the named, restartable Ray actor that owns the clock and signals and serves the control state."""

from __future__ import annotations

from typing import Any, TypeVar, cast

import ray
from ray.actor import ActorHandle

from policies.batch_gate import GateAnswer, JobProgress, job_status
from policies.calibration import Calibration
from policies.control import ControlPlane, ControlState, GatewayLoad, KnobsLease
from policies.ladder import RegionDecision, RegionInputs
from policies.load import ReplicaReport
from router.clock import WallClock, clock_for_source
from router.config import FleetConfig, Knobs, parse_fleet
from router.events import DREvent
from router.openadr.fleet import GridSignal
from router.sources.poller import start_background_polling
from router.state import load_context

T = TypeVar("T")

CONTROL_ACTOR_NAME = "gridshift-control"
NAMESPACE = "gridshift"


class ControlActor:
    """Ray wrapper around ControlPlane. Methods take and return plain values and pydantic models."""

    def __init__(self, fleet_data: dict[str, Any]) -> None:
        fleet = parse_fleet(fleet_data, source="control actor fleet")
        context = load_context(fleet)
        self._plane = ControlPlane(context, clock_for_source(fleet.signal_source), WallClock())
        # A live fleet's sources are polled into context.signals by a thread of this actor; None for a trace fleet.
        self._signal_poller = start_background_polling(fleet, context.signals)

    def sync(self, gateway_id: str, load: GatewayLoad, known_version: int) -> ControlState | None:
        """One round trip per refresh: take a gateway's load and health, give back any newer state."""
        self._plane.report(gateway_id, load)
        return self._plane.state(known_version)

    def regional_sync(self, report: ReplicaReport) -> KnobsLease:
        return self._plane.regional_sync(report)

    def policy_inputs(self) -> dict[str, RegionInputs]:
        return self._plane.policy_inputs()

    def publish_policy(self, decisions: dict[str, RegionDecision], calibration: Calibration | None = None) -> None:
        self._plane.publish_policy(decisions, calibration)

    def policy_decisions(self) -> dict[str, RegionDecision]:
        """The last published decisions: what a restarted policy actor resumes from."""
        return dict(self._plane.decisions)

    def telemetry(self) -> dict[str, object]:
        return self._plane.telemetry()

    def set_grid_signal(self, signal: GridSignal) -> None:
        self._plane.set_grid_signal(signal)

    def clear_grid_signal(self, signal_id: str) -> GridSignal | None:
        return self._plane.clear_grid_signal(signal_id)

    def set_openadr_status(self, status: dict[str, object]) -> None:
        self._plane.set_openadr_status(status)

    def openadr_status(self) -> dict[str, object] | None:
        return self._plane.openadr_status

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

    def set_knobs(self, region: str, knobs: Knobs | None) -> None:
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


def get_or_create_fleet_actor(actor_class: type[T], name: str, fleet: FleetConfig) -> ActorHandle[T]:
    """The fleet's actor of that name, started if absent: detached (it outlives whoever started it, so gateways
    created by `serve deploy` and by `gridshift up` find the same one), restarted by Ray whenever it dies, and
    holding no CPU (each is a control loop, not compute)."""
    handle = (
        ray.remote(actor_class)
        .options(
            name=name,
            namespace=NAMESPACE,
            get_if_exists=True,
            lifetime="detached",
            max_restarts=-1,
            max_task_retries=3,
            num_cpus=0,
        )
        .remote(fleet.model_dump(mode="json"))
    )
    return cast("ActorHandle[T]", handle)


def get_or_create_control_actor(fleet: FleetConfig) -> ActorHandle[ControlActor]:
    """The fleet's control actor, started if absent."""
    return get_or_create_fleet_actor(ControlActor, CONTROL_ACTOR_NAME, fleet)
