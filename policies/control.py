"""Control plane: the versioned control state (signals, headroom, stress, events, health, load, knobs) of a fleet.

`ControlPlane` is plain Python with an injected clock, so it is unit-tested without Ray; `policies.actor`
wraps it in the named Ray actor that gateways and batch runners read.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime

import numpy as np

from policies.batch_gate import MAX_POLL_S, BatchKnobs, GateAnswer, JobProgress, PlanVerdict, decide_gate
from policies.planner import (
    DEFAULT_PLANNER_CONFIG,
    Plan,
    PlannerConfig,
    forecast_signal,
    plan_windows,
    should_run,
    slack_runs_out_at_s,
)
from router.clock import Clock
from router.config import FleetConfig, Knobs
from router.errors import UnknownRegionError
from router.events import DREvent
from router.state import FleetContext, FleetSnapshot, snapshot

HOUR_S = 3600
LOAD_REPORT_TTL_S = 5.0
"""A gateway's load and health report counts for this long (wall seconds); a silent gateway drops out."""


@dataclass(frozen=True)
class ControlState:
    """What consumers route and gate with. `version` grows whenever any routing-relevant figure changes."""

    version: int
    snapshot: FleetSnapshot
    events: tuple[DREvent, ...]
    knobs: Mapping[str, Knobs]
    wall_s: float  # when the control plane built it; consumers treat an old state as stale


@dataclass
class _GatewayReport:
    wall_s: float
    in_flight: dict[str, int]
    unhealthy: frozenset[str]


@dataclass
class ControlPlane:
    """Holds a fleet's live control inputs and builds versioned states from them."""

    context: FleetContext
    clock: Clock
    wall_clock: Clock
    events: dict[str, DREvent] = field(default_factory=dict)
    knobs: dict[str, Knobs] = field(default_factory=dict)
    jobs: dict[str, JobProgress] = field(default_factory=dict)
    paused_jobs: set[str] = field(default_factory=set)
    _plans: dict[str, tuple[int, Plan]] = field(default_factory=dict)
    _reports: dict[str, _GatewayReport] = field(default_factory=dict)
    _version: int = 0
    _signature: tuple[object, ...] = ()
    _state: ControlState | None = None

    def __post_init__(self) -> None:
        for region in self.fleet.region_names:
            self.knobs.setdefault(region, self.fleet.serving.knobs)

    @property
    def fleet(self) -> FleetConfig:
        return self.context.fleet

    def _check_region(self, region: str) -> None:
        if region not in self.fleet.region_names:
            raise UnknownRegionError(f"region {region!r} is not in the fleet {list(self.fleet.region_names)}")

    # Inputs -------------------------------------------------------------------------------------------

    def post_event(self, event: DREvent) -> DREvent:
        self._check_region(event.region)
        self.events[event.event_id] = event
        return event

    def clear_event(self, event_id: str) -> DREvent | None:
        return self.events.pop(event_id, None)

    def clear_region_events(self, region: str) -> list[DREvent]:
        self._check_region(region)
        cleared = [event for event in self.events.values() if event.region == region]
        for event in cleared:
            del self.events[event.event_id]
        return cleared

    def set_knobs(self, region: str, knobs: Knobs) -> None:
        self._check_region(region)
        self.knobs[region] = knobs

    def report(self, gateway_id: str, in_flight: Mapping[str, int], unhealthy: frozenset[str]) -> None:
        """A gateway's view of each region: requests it has in flight there, and regions it finds down."""
        self._reports[gateway_id] = _GatewayReport(self.wall_clock.now_s(), dict(in_flight), unhealthy)

    # Batch jobs -------------------------------------------------------------------------------------------

    def batch_report(self, progress: JobProgress) -> None:
        self._check_region(progress.region)
        self.jobs[progress.job_id] = progress

    def batch_gate(self, progress: JobProgress) -> GateAnswer:
        """Run or pause the job's next shard, with the knobs it should use (see policies.batch_gate)."""
        self.batch_report(progress)
        now_s = self.clock.now_s()
        state = self.state() or self._state
        if state is None:  # pragma: no cover - state() always builds one on first call
            raise RuntimeError("no control state")
        region = next(r for r in state.snapshot.regions if r.config.name == progress.region)
        knobs = state.knobs[progress.region]
        return decide_gate(
            manual_pause=progress.job_id in self.paused_jobs,
            verdict=self.plan_verdict(progress, now_s),
            stress_level=region.assessment.stress_level,
            knobs=BatchKnobs(batch_size=knobs.max_batch_size, precision=knobs.precision.value),
            now_s=now_s,
            speedup=self.fleet.signal_source.speedup,
        )

    def planner_config(self) -> PlannerConfig:
        # A paused runner re-asks at most MAX_POLL_S wall seconds late; under trace replay that is
        # MAX_POLL_S x speedup trace seconds, so the reserve must cover it (twice, for one missed poll).
        margin_s = max(DEFAULT_PLANNER_CONFIG.margin_s, math.ceil(2 * MAX_POLL_S * self.fleet.signal_source.speedup))
        return DEFAULT_PLANNER_CONFIG.model_copy(update={"margin_s": margin_s})

    def plan_verdict(self, progress: JobProgress, now_s: float) -> PlanVerdict:
        """The job's window plan, made from the forecast at its first gate and again each new trace hour."""
        config = self.planner_config()
        now = int(now_s)
        rate = max(progress.rows_per_second, 1e-6)
        work_s = math.ceil(progress.rows_left / rate * self.fleet.signal_source.speedup)
        deadline_s = int(progress.deadline_s)
        hour = now // HOUR_S
        cached = self._plans.get(progress.job_id)
        if cached is None or cached[0] != hour:
            slots = np.arange(hour * HOUR_S, max(deadline_s, now + HOUR_S), HOUR_S, dtype=np.int64)
            try:
                forecast = forecast_signal(
                    self.context.trace,
                    self.fleet.region(progress.region),
                    progress.signal,
                    now,
                    slots,
                    self.fleet.headroom,
                )
            except ValueError as error:
                # No forecast of the job's signal here: the stress gate and the slack rule still apply.
                return PlanVerdict(True, False, f"no {progress.signal} forecast ({error}); running", None)
            release_s = now if cached is None else cached[1].release_s
            # A running job is not charged a resume for carrying on.
            running = progress.state == "running" and cached is not None
            plan = plan_windows(
                release_s,
                deadline_s,
                work_s,
                slots,
                forecast,
                progress.signal,
                now_s=now,
                running=running,
                config=config,
            )
            self._plans[progress.job_id] = (hour, plan)
        plan = self._plans[progress.job_id][1]
        decision = should_run(plan, now, work_s, deadline_s, config)
        forced = decision.run and (
            now >= slack_runs_out_at_s(deadline_s, work_s, config) or plan.forced or not plan.feasible
        )
        return PlanVerdict(decision.run, forced, decision.reason, decision.resume_at_s)

    def plan_of(self, job_id: str) -> Plan | None:
        cached = self._plans.get(job_id)
        return None if cached is None else cached[1]

    def pause_job(self, job_id: str) -> bool:
        if job_id not in self.jobs:
            return False
        self.paused_jobs.add(job_id)
        return True

    def resume_job(self, job_id: str) -> bool:
        if job_id not in self.jobs:
            return False
        self.paused_jobs.discard(job_id)
        return True

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.clock.now_s(), tz=UTC)

    # Output -------------------------------------------------------------------------------------------

    def _live_reports(self) -> list[_GatewayReport]:
        horizon = self.wall_clock.now_s() - LOAD_REPORT_TTL_S
        for gateway_id in [g for g, r in self._reports.items() if r.wall_s < horizon]:
            del self._reports[gateway_id]
        return list(self._reports.values())

    def state(self, known_version: int = -1) -> ControlState | None:
        """The current state, or None when it is still `known_version` (so polling is cheap)."""
        reports = self._live_reports()
        fleet = self.fleet
        in_flight = {name: sum(r.in_flight.get(name, 0) for r in reports) for name in fleet.region_names}
        unhealthy = frozenset().union(*(r.unhealthy for r in reports)) if reports else frozenset()
        # Utilisation against what a region can work on at once: its replicas times one full batch each.
        utilization = {
            name: in_flight[name] / (fleet.serving.replicas_per_region * self.knobs[name].max_batch_size)
            for name in fleet.region_names
        }
        active = tuple(sorted(self.events.values(), key=lambda e: (e.start, e.event_id)))
        snap = snapshot(
            fleet,
            self.context.trace,
            int(self.clock.now_s()),
            events=active,
            healthy={name: name not in unhealthy for name in fleet.region_names},
            utilization=utilization,
            version=self._version,
        )
        signature = (
            tuple(
                (s.name, round(s.headroom, 4), s.stress_level, s.healthy, round(s.utilization, 2)) for s in snap.states
            ),
            tuple(event.event_id for event in active),
            tuple(sorted((name, knobs.model_dump_json()) for name, knobs in self.knobs.items())),
        )
        if signature != self._signature or self._state is None:
            self._version += 1
            self._signature = signature
            self._state = ControlState(
                version=self._version,
                snapshot=FleetSnapshot(snap.at_s, self._version, snap.regions),
                events=active,
                knobs=dict(self.knobs),
                wall_s=self.wall_clock.now_s(),
            )
        if self._state.version == known_version:
            return None
        return self._state
