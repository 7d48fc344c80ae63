"""The control actor's interface, declared once: what gateways, regional replicas, batch and training runners, the
policy actor, the OpenADR port and the CLI may ask of the control plane.

`policies.control.ControlPlane` implements it (and the Ray actor is that class); consumers call it through a client
(policies.actors.client) as `await client.call(ControlApi.sync, ...)`, so a new call is one method here and its body
in the plane, and every caller is type-checked against this signature.
"""

from __future__ import annotations

from typing import Protocol

from fleet.events import DREvent, GridSignal
from fleet.serving import Knobs
from policies.batch_gate import GateAnswer, JobProgress
from policies.calibration import Calibration
from policies.control_history import ControlSample
from policies.control_state import ControlState, GatewayLoad
from policies.job_usage import JobUsage
from policies.knob_leases import KnobsLease
from policies.ladder import RegionDecision, RegionInputs
from policies.load import ReplicaReport
from policies.training_gate import TrainingAnswer, TrainingProgress
from policies.training_jobs import TrainingControl


class ControlApi(Protocol):
    """Plain values and pydantic models in and out: every call crosses a process boundary."""

    # Gateways and regional replicas ---------------------------------------------------------------------------

    def sync(self, gateway_id: str, load: GatewayLoad, known_version: int) -> ControlState | None:
        """A gateway's round trip: report its load and health, get any state newer than `known_version`."""
        ...

    def regional_sync(self, report: ReplicaReport) -> KnobsLease:
        """A regional replica's round trip: report its load, get the knobs in force."""
        ...

    def state(self, known_version: int = -1) -> ControlState | None:
        """The current state, or None when it is still `known_version`."""
        ...

    def clock_now_s(self) -> float:
        """Now on the control clock (trace time under replay)."""
        ...

    def history(
        self, after_wall_s: float | None = None, every_s: float = 0.0, limit: int | None = None
    ) -> list[ControlSample]:
        """Samples of the control state (grid, rung, knobs, power, battery, traffic split) over the last hour: those
        newer than `after_wall_s` (None: all), oldest first, at most one per `every_s`, the newest `limit` of them."""
        ...

    # The policy actor ------------------------------------------------------------------------------------------

    def policy_inputs(self) -> dict[str, RegionInputs]: ...

    def publish_policy(self, decisions: dict[str, RegionDecision], calibration: Calibration | None = None) -> None: ...

    def policy_decisions(self) -> dict[str, RegionDecision]:
        """The last published decisions: what a restarted policy actor resumes from."""
        ...

    def telemetry(self) -> dict[str, object]: ...

    def set_knobs(self, region: str, knobs: Knobs | None) -> None:
        """Pin a region's knobs (an operator's override); None unpins."""
        ...

    # Grid events and utility signals ---------------------------------------------------------------------------

    def post_event(self, event: DREvent) -> DREvent: ...

    def clear_event(self, event_id: str) -> DREvent | None: ...

    def clear_region_events(self, region: str) -> list[DREvent]: ...

    def list_events(self) -> list[DREvent]: ...

    def set_grid_signal(self, signal: GridSignal) -> None: ...

    def clear_grid_signal(self, signal_id: str) -> GridSignal | None: ...

    def set_openadr_status(self, status: dict[str, object]) -> None: ...

    def openadr_status(self) -> dict[str, object] | None: ...

    # Jobs ------------------------------------------------------------------------------------------------------

    def batch_gate(self, progress: JobProgress) -> GateAnswer:
        """Report a job's progress; get whether to run its next piece of work, and with what knobs."""
        ...

    def batch_report(self, progress: JobProgress) -> None: ...

    def pause_job(self, job_id: str) -> bool:
        """An operator's pause; False when no such job is known."""
        ...

    def resume_job(self, job_id: str) -> bool: ...

    def job_statuses(self) -> list[dict[str, object]]: ...

    # Training jobs ---------------------------------------------------------------------------------------------

    def training_gate(self, progress: TrainingProgress) -> TrainingAnswer:
        """Report a training job's progress; get whether to run its next steps, and at which size."""
        ...

    def training_report(self, progress: TrainingProgress) -> None: ...

    def pause_training(self, job_id: str) -> TrainingControl:
        """An operator's pause; refused (with why) for a trainer that does not checkpoint."""
        ...

    def resume_training(self, job_id: str) -> TrainingControl: ...

    def training_statuses(self) -> list[dict[str, object]]: ...

    # Tenants' job usage ----------------------------------------------------------------------------------------

    def job_usage(self) -> list[JobUsage]:
        """Finished tenant jobs' usage (batch and training), each priced once when it finished; gateways record it
        keyed by its request id, so every replica asking, again and again, still counts it once."""
        ...
