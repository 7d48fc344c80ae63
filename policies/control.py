"""The control plane: one fleet's live control inputs and the versioned control state built from them.

`ControlPlane` implements `ControlApi` by composing one part per role: grid inputs and state building
(policies.control_state), knob leases (policies.knob_leases), the job registry and gate (policies.job_registry) and
telemetry (policies.telemetry). It is plain Python with injected clocks, so it is unit-tested without Ray;
`policies.actors.control` runs this very class as the named Ray actor.
"""

from __future__ import annotations

from datetime import UTC, datetime

from fleet.clock import Clock
from fleet.config import FleetConfig
from fleet.events import DREvent, GridSignal
from fleet.serving import Knobs
from grid.context import FleetContext
from policies.batch_gate import GateAnswer, JobProgress
from policies.calibration import Calibration
from policies.control_api import ControlApi
from policies.control_history import ControlHistory, ControlSample, sample_state
from policies.control_state import ControlState, GatewayLoad, GatewayReports, GridInputs, StateBuilder, check_region
from policies.job_registry import JobRegistry
from policies.job_usage import JobUsage
from policies.knob_leases import KnobLeases, KnobsLease
from policies.ladder import RegionDecision, RegionInputs
from policies.load import ReplicaReport
from policies.plan import Plan
from policies.telemetry import Telemetry
from policies.training_gate import TrainingAnswer, TrainingProgress
from policies.training_jobs import TrainingControl, TrainingJobs


class ControlPlane(ControlApi):
    """Holds a fleet's live control inputs and builds versioned states from them."""

    def __init__(self, context: FleetContext, clock: Clock, wall_clock: Clock) -> None:
        self.context = context
        self.clock = clock
        self.wall_clock = wall_clock
        self.inputs = GridInputs(context.fleet)
        self.gateways = GatewayReports()
        self.leases = KnobLeases(context.fleet, wall_clock)
        self.job_registry = JobRegistry(context, clock)
        self.training_jobs = TrainingJobs(self.job_registry)
        self.measurements = Telemetry(context, clock, wall_clock)
        self._builder = StateBuilder(context)
        self._history = ControlHistory()
        self._openadr_status: dict[str, object] | None = None

    @property
    def fleet(self) -> FleetConfig:
        return self.context.fleet

    @property
    def events(self) -> dict[str, DREvent]:
        return self.inputs.events

    @property
    def decisions(self) -> dict[str, RegionDecision]:
        return self.leases.decisions

    @property
    def jobs(self) -> dict[str, JobProgress]:
        return self.job_registry.jobs

    @property
    def paused_jobs(self) -> set[str]:
        return self.job_registry.paused_jobs

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.clock.now_s(), tz=UTC)

    # Gateways and regional replicas -------------------------------------------------------------------------

    def report(self, gateway_id: str, load: GatewayLoad) -> None:
        """A gateway's view of each region; it counts until the report's time to live passes without a newer one."""
        self.gateways.report(gateway_id, load, self.wall_clock.now_s())

    def sync(self, gateway_id: str, load: GatewayLoad, known_version: int) -> ControlState | None:
        self.report(gateway_id, load)
        return self.state(known_version)

    def regional_sync(self, report: ReplicaReport) -> KnobsLease:
        check_region(self.fleet, report.region)
        self.measurements.loads.add(report)
        return self.knobs_lease(report.region)

    def knobs_lease(self, region: str) -> KnobsLease:
        return self.leases.lease(region)

    def state(self, known_version: int = -1) -> ControlState | None:
        """The current state, or None when it is still `known_version` (so polling is cheap)."""
        state = self._current_state()
        return None if state.version == known_version else state

    def _current_state(self) -> ControlState:
        wall_s = self.wall_clock.now_s()
        reports = self.gateways.live(wall_s)
        state = self._builder.build(self.clock.now_s(), wall_s, self.inputs, reports, self.leases)
        if self._history.due(state, wall_s):
            self._record(state, wall_s, reports)
        return state

    def _record(self, state: ControlState, wall_s: float, reports: list[GatewayLoad]) -> None:
        loads = {name: self.measurements.loads.region(name, wall_s) for name in self.fleet.region_names}
        fresh = self.leases.policy_fresh()
        sample = sample_state(
            self.fleet, state, wall_s, self.context.rtt_ms, self.leases.decisions, loads, reports, policy_fresh=fresh
        )
        self._history.add(state, sample)

    def history(
        self, after_wall_s: float | None = None, every_s: float = 0.0, limit: int | None = None
    ) -> list[ControlSample]:
        self._current_state()  # samples now if one is due, so the newest sample is at most `every_s` old
        return self._history.since(after_wall_s, every_s, limit)

    def clock_now_s(self) -> float:
        return self.clock.now_s()

    # The policy actor -------------------------------------------------------------------------------------------

    def policy_inputs(self) -> dict[str, RegionInputs]:
        """What the policy decides from, per region, now (the forecast outlook is cached per trace hour)."""
        state = self._current_state()
        reports = self.gateways.live(self.wall_clock.now_s())
        return self.measurements.policy_inputs(state, reports, self.job_registry, self.training_jobs)

    def publish_policy(self, decisions: dict[str, RegionDecision], calibration: Calibration | None = None) -> None:
        self.leases.publish(decisions, calibration)

    def policy_decisions(self) -> dict[str, RegionDecision]:
        return dict(self.leases.decisions)

    def telemetry(self) -> dict[str, object]:
        return self.measurements.report(self.leases)

    def set_knobs(self, region: str, knobs: Knobs | None) -> None:
        self.leases.set_knobs(region, knobs)

    # Grid events and utility signals ------------------------------------------------------------------------------

    def post_event(self, event: DREvent) -> DREvent:
        return self.inputs.post_event(event)

    def clear_event(self, event_id: str) -> DREvent | None:
        return self.inputs.clear_event(event_id)

    def clear_region_events(self, region: str) -> list[DREvent]:
        return self.inputs.clear_region_events(region)

    def list_events(self) -> list[DREvent]:
        return list(self.inputs.events.values())

    def set_grid_signal(self, signal: GridSignal) -> None:
        """A utility's own price or carbon figure for a region over an interval (OpenADR PRICE / GHG). While it is
        active it replaces the region's observed signal of that kind in the headroom formula, where its unit is the
        formula's (USD/MWh, gCO2/kWh); in another unit it is kept for operators only."""
        self.inputs.set_grid_signal(signal)

    def clear_grid_signal(self, signal_id: str) -> GridSignal | None:
        return self.inputs.clear_grid_signal(signal_id)

    def set_openadr_status(self, status: dict[str, object]) -> None:
        """The VEN's latest status (registration, events, reports), for `GET /v1/openadr/status`."""
        self._openadr_status = dict(status)

    def openadr_status(self) -> dict[str, object] | None:
        return self._openadr_status

    # Jobs ----------------------------------------------------------------------------------------------------------

    def batch_gate(self, progress: JobProgress) -> GateAnswer:
        """Run or pause the job's next piece of work, with the knobs it should use (see policies.batch_gate)."""
        check_region(self.fleet, progress.region)
        state = self._current_state()
        region = next(r for r in state.snapshot.regions if r.config.name == progress.region)
        return self.job_registry.gate(
            progress,
            region.assessment.stress_level,
            self.leases.batch_policy(progress.region),
            self.leases.batch_pause_reason(progress.region),
        )

    def batch_report(self, progress: JobProgress) -> None:
        self.job_registry.report(progress)

    def plan_of(self, job_id: str) -> Plan | None:
        return self.job_registry.plan_of(job_id)

    def pause_job(self, job_id: str) -> bool:
        return self.job_registry.pause(job_id)

    def resume_job(self, job_id: str) -> bool:
        return self.job_registry.resume(job_id)

    def job_statuses(self) -> list[dict[str, object]]:
        return self.job_registry.statuses()

    # Training jobs (policies.training_jobs) ----------------------------------------------------------------------

    def training_gate(self, progress: TrainingProgress) -> TrainingAnswer:
        """Run (at which size) or pause the job's next stretch of steps (see policies.training_gate)."""
        check_region(self.fleet, progress.region)
        state = self._current_state()
        region = next(r for r in state.snapshot.regions if r.config.name == progress.region)
        return self.training_jobs.gate(
            progress,
            region.assessment.stress_level,
            self.leases.batch_policy(progress.region),
            self.leases.batch_pause_reason(progress.region),
        )

    def training_report(self, progress: TrainingProgress) -> None:
        self.training_jobs.report(progress)

    def pause_training(self, job_id: str) -> TrainingControl:
        return self.training_jobs.pause(job_id)

    def resume_training(self, job_id: str) -> TrainingControl:
        return self.training_jobs.resume(job_id)

    def training_statuses(self) -> list[dict[str, object]]:
        return self.training_jobs.statuses()

    def job_usage(self) -> list[JobUsage]:
        return self.job_registry.meters.usage()
