"""Control plane: the versioned control state (signals, headroom, stress, events, health, load, knobs) of a fleet.

`ControlPlane` is plain Python with an injected clock, so it is unit-tested without Ray; `policies.actor`
wraps it in the named Ray actor that gateways and batch runners read.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum

import numpy as np

from policies.batch_gate import MAX_POLL_S, BatchKnobs, GateAnswer, JobProgress, PlanVerdict, decide_gate
from policies.calibration import Calibration, calibration_to_dict
from policies.ladder import BatchPolicy, RegionDecision, RegionInputs, decision_to_dict, safe_batch_policy
from policies.load import LoadBook, ReplicaReport
from policies.outlook import stressed_seconds_ahead
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
from router.events import DREvent, active_power_limit_kw
from router.openadr.fleet import GridSignal
from router.sources.store import SignalsStatus
from router.state import FleetContext, FleetSnapshot, snapshot
from router.trace import Observation

HOUR_S = 3600
# Utility signals that stand in for a trace column: only in the unit the headroom formula reads.
_SIGNAL_COLUMN = {("price", "USD/MWh"): "price_usd_per_mwh", ("ghg", "gCO2/kWh"): "carbon_g_per_kwh"}
LOAD_REPORT_TTL_S = 5.0
"""A gateway's load and health report counts for this long (wall seconds); a silent gateway drops out."""


@dataclass(frozen=True)
class ControlState:
    """What consumers route and gate with. `version` grows whenever any routing-relevant figure changes."""

    version: int
    snapshot: FleetSnapshot
    events: tuple[DREvent, ...]
    knobs: Mapping[str, Knobs]  # in force: an operator's pin, else the policy's fresh decision, else serving.knobs
    wall_s: float  # when the control plane built it; consumers treat an old state as stale
    knob_sources: Mapping[str, str] = field(default_factory=dict)  # per region: operator | policy | defaults
    signals: SignalsStatus | None = None  # live fleets: each signal source's health and the values held


class KnobSource(StrEnum):
    """Where a region's knobs in force come from (stable strings: API)."""

    OPERATOR = "operator"  # pinned by an operator; the policy leaves the region alone
    POLICY = "policy"  # the policy actor's fresh decision
    DEFAULTS = "defaults"  # serving.knobs: no policy decision yet, or it went stale (safe defaults)
    CONFIGURED = "configured"  # a replica's own: it has no lease (control plane unreachable, or not synced yet)


@dataclass(frozen=True)
class KnobsLease:
    """A regional replica's answer to its periodic sync: the knobs to run with now, and why."""

    knobs: Knobs
    source: str
    reason: str


@dataclass(frozen=True)
class GatewayLoad:
    """What a gateway replica reports with each sync: requests it has in flight per region, regions it finds down,
    and per origin the tolerant items per second it served elsewhere (what geographic shifting took away)."""

    in_flight: Mapping[str, int]
    unhealthy: frozenset[str]
    moved_items_per_s: Mapping[str, float] = field(default_factory=dict)


@dataclass
class _GatewayReport:
    wall_s: float
    load: GatewayLoad


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
    calibration: Calibration | None = None  # what the policy decided with; shown to operators
    decisions: dict[str, RegionDecision] = field(default_factory=dict)
    policy_wall_s: float | None = None  # when the policy last published (wall clock)
    loads: LoadBook = field(default_factory=LoadBook)
    _plans: dict[str, tuple[int, Plan]] = field(default_factory=dict)
    _reports: dict[str, _GatewayReport] = field(default_factory=dict)
    grid_signals: dict[str, GridSignal] = field(default_factory=dict)
    openadr_status: dict[str, object] | None = None
    _outlook: dict[tuple[str, int], tuple[float, float]] = field(default_factory=dict)  # (seconds ahead, at)
    _version: int = 0
    _signature: tuple[object, ...] = ()
    _state: ControlState | None = None

    @property
    def fleet(self) -> FleetConfig:
        return self.context.fleet

    def _check_region(self, region: str) -> None:
        if region not in self.fleet.region_names:
            raise UnknownRegionError(f"region {region!r} is not in the fleet {list(self.fleet.region_names)}")

    # Inputs -------------------------------------------------------------------------------------------

    def set_grid_signal(self, signal: GridSignal) -> None:
        """A utility's own price or carbon figure for a region over an interval (OpenADR PRICE / GHG). While it is
        active it replaces the region's observed signal of that kind in the headroom formula, where its unit is the
        formula's (USD/MWh, gCO2/kWh); in another unit it is kept for operators only."""
        self._check_region(signal.region)
        self.grid_signals[signal.signal_id] = signal

    def clear_grid_signal(self, signal_id: str) -> GridSignal | None:
        return self.grid_signals.pop(signal_id, None)

    def _signal_overrides(self, at_s: float) -> dict[str, dict[str, Observation]]:
        overrides: dict[str, dict[str, Observation]] = {}
        # Oldest first, so the latest-starting active signal of a kind wins.
        for signal in sorted(self.grid_signals.values(), key=lambda g: (g.start_s, g.signal_id)):
            column = _SIGNAL_COLUMN.get((signal.kind, signal.unit))
            active = signal.start_s <= at_s and (signal.end_s is None or at_s < signal.end_s)
            if column is not None and active:
                # Stamped now: the utility vouches for the value over the whole interval, so it never reads as stale.
                overrides.setdefault(signal.region, {})[column] = Observation(signal.value, int(at_s))
        return overrides

    def set_openadr_status(self, status: Mapping[str, object]) -> None:
        """The VEN's latest status (registration, events, reports), for `GET /v1/openadr/status`."""
        self.openadr_status = dict(status)

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

    def set_knobs(self, region: str, knobs: Knobs | None) -> None:
        """Pin a region's knobs (an operator's override: the policy leaves them alone); None unpins."""
        self._check_region(region)
        if knobs is None:
            self.knobs.pop(region, None)
        else:
            self.knobs[region] = knobs

    def report(self, gateway_id: str, load: GatewayLoad) -> None:
        """A gateway's view of each region; it counts until LOAD_REPORT_TTL_S passes without a newer one."""
        self._reports[gateway_id] = _GatewayReport(self.wall_clock.now_s(), load)

    # Policy -----------------------------------------------------------------------------------------------

    def regional_sync(self, report: ReplicaReport) -> KnobsLease:
        """A regional replica's periodic round trip: take its load report, give back the knobs in force."""
        self._check_region(report.region)
        self.loads.add(report)
        return self.knobs_lease(report.region)

    def policy_age_s(self) -> float | None:
        return None if self.policy_wall_s is None else self.wall_clock.now_s() - self.policy_wall_s

    def policy_fresh(self) -> bool:
        age = self.policy_age_s()
        return age is not None and age <= self.fleet.policy.fallback_after_s

    def knobs_lease(self, region: str) -> KnobsLease:
        pinned = self.knobs.get(region)
        if pinned is not None:
            return KnobsLease(pinned, KnobSource.OPERATOR, "pinned by an operator")
        decision = self.decisions.get(region)
        if decision is not None and self.policy_fresh():
            return KnobsLease(decision.knobs, KnobSource.POLICY, f"rung {decision.step}: {decision.reason}")
        age = self.policy_age_s()
        if decision is None or age is None:
            reason = "no policy decision yet" if self.fleet.policy.enabled else "policy disabled"
        else:
            reason = f"policy silent for {age:.0f} s (> {self.fleet.policy.fallback_after_s:g} s): safe defaults"
        return KnobsLease(self.fleet.serving.knobs, KnobSource.DEFAULTS, reason)

    def batch_policy(self, region: str) -> BatchPolicy:
        decision = self.decisions.get(region)
        if decision is not None and self.policy_fresh() and region not in self.knobs:
            return decision.batch
        return safe_batch_policy(self.knobs.get(region, self.fleet.serving.knobs))

    def publish_policy(self, decisions: Mapping[str, RegionDecision], calibration: Calibration | None = None) -> None:
        """The policy actor's decisions; they are in force until replaced or until they go stale."""
        for region in decisions:
            self._check_region(region)
        self.decisions.update(decisions)
        self.policy_wall_s = self.wall_clock.now_s()
        if calibration is not None:
            self.calibration = calibration

    def policy_inputs(self) -> dict[str, RegionInputs]:
        """What the policy decides from, per region, now (the forecast outlook is cached per trace hour)."""
        state = self.state() or self._state
        if state is None:  # pragma: no cover - state() always builds one on first call
            raise RuntimeError("no control state")
        now_s = float(self.clock.now_s())
        wall_s = self.wall_clock.now_s()
        battery = self.fleet.policy.battery
        moved: dict[str, float] = {}
        for gateway in self._live_reports():
            for origin, rate in gateway.load.moved_items_per_s.items():
                moved[origin] = moved.get(origin, 0.0) + rate
        inputs = {}
        for region in state.snapshot.regions:
            name = region.config.name
            jobs = [p for p in self.jobs.values() if p.region == name]
            # The forecast changes once a trace hour; within the hour the outlook only shrinks as time passes.
            key = (name, int(now_s) // HOUR_S)
            if key not in self._outlook:
                self._outlook = {k: v for k, v in self._outlook.items() if k[1] == key[1]}
                ahead_s = stressed_seconds_ahead(
                    self.context, name, now_s, battery.discharge_at_stress, battery.horizon_s
                )
                self._outlook[key] = (ahead_s, now_s)
            ahead_s, computed_at_s = self._outlook[key]
            inputs[name] = RegionInputs(
                region=name,
                now_s=now_s,
                stress_level=region.assessment.stress_level,
                headroom=region.assessment.headroom,
                load=self.loads.region(name, wall_s),
                power_limit_kw=active_power_limit_kw(state.events, name, now_s),
                running_batch_jobs=sum(p.state == "running" for p in jobs),
                deferred_batch_jobs=sum(p.state == "paused" and p.job_id not in self.paused_jobs for p in jobs),
                shifted_away_items_per_s=moved.get(name, 0.0),
                stressed_s_ahead=max(ahead_s - (now_s - computed_at_s), 0.0),
            )
        return inputs

    def telemetry(self) -> dict[str, object]:
        """Per region: measured load, the policy's decision (rung, knobs, battery, power, flexible kW), the knobs in
        force and where they come from. Best-effort figures for operators, not versioned routing state."""
        wall_s = self.wall_clock.now_s()
        regions: dict[str, object] = {}
        for config in self.fleet.regions:
            lease = self.knobs_lease(config.name)
            decision = self.decisions.get(config.name)
            regions[config.name] = {
                "knobs_in_force": lease.knobs.model_dump(mode="json"),
                "knob_source": lease.source,
                "knob_reason": lease.reason,
                "load": self.loads.region(config.name, wall_s).to_dict(lease.knobs.max_batch_size),
                "policy": None if decision is None else decision_to_dict(decision, config),
            }
        age = self.policy_age_s()
        return {
            "policy": {
                "enabled": self.fleet.policy.enabled,
                "fresh": self.policy_fresh(),
                "age_s": None if age is None else round(age, 3),
                "period_s": self.fleet.policy.period_s,
                "fallback_after_s": self.fleet.policy.fallback_after_s,
                "quality_floor": dict(self.fleet.policy.quality_floor),
            },
            "calibration": None if self.calibration is None else calibration_to_dict(self.calibration),
            "regions": regions,
        }

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
        batch = self.batch_policy(progress.region)
        decision = self.decisions.get(progress.region)
        policy_pause = None
        if not batch.may_run and decision is not None:
            policy_pause = f"policy: batch paused at rung {decision.step} ({decision.reason})"
        return decide_gate(
            manual_pause=progress.job_id in self.paused_jobs,
            verdict=self.plan_verdict(progress, now_s),
            stress_level=region.assessment.stress_level,
            knobs=BatchKnobs(batch_size=batch.batch_size, precision=batch.precision.value),
            now_s=now_s,
            speedup=self.fleet.signal_source.speedup,
            policy_pause=policy_pause,
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
        in_flight = {name: sum(r.load.in_flight.get(name, 0) for r in reports) for name in fleet.region_names}
        unhealthy = frozenset().union(*(r.load.unhealthy for r in reports)) if reports else frozenset()
        leases = {name: self.knobs_lease(name) for name in fleet.region_names}
        # Utilisation against what a region works on at once: its replicas times one batch each (or fewer, where the
        # concurrency knob caps it). A region the policy turned down fills sooner, so routing sends it less.
        utilization = {
            name: in_flight[name] / (fleet.serving.replicas_per_region * leases[name].knobs.work_slots)
            for name in fleet.region_names
        }
        active = tuple(sorted(self.events.values(), key=lambda e: (e.start, e.event_id)))
        at_s = int(self.clock.now_s())
        # The sources' health is read before their values: a poll landing while the snapshot is built is then at
        # most in the values, never only in the health, and its newer revision makes the next call rebuild.
        store = self.context.signals
        signals = None if store is None else store.status(at_s)
        snap = snapshot(
            fleet,
            self.context.reader,
            at_s,
            events=active,
            healthy={name: name not in unhealthy for name in fleet.region_names},
            utilization=utilization,
            overrides=self._signal_overrides(self.clock.now_s()),
            version=self._version,
        )
        signature = (
            tuple(
                (s.name, round(s.headroom, 4), s.stress_level, s.healthy, round(s.utilization, 2)) for s in snap.states
            ),
            tuple(event.event_id for event in active),
            tuple(sorted((name, lease.knobs.model_dump_json(), lease.source) for name, lease in leases.items())),
            None if signals is None else signals.revision,
        )
        if signature != self._signature or self._state is None:
            self._version += 1
            self._signature = signature
            self._state = ControlState(
                version=self._version,
                snapshot=FleetSnapshot(snap.at_s, self._version, snap.regions),
                events=active,
                knobs={name: lease.knobs for name, lease in leases.items()},
                wall_s=self.wall_clock.now_s(),
                knob_sources={name: lease.source for name, lease in leases.items()},
                signals=signals,
            )
        if self._state.version == known_version:
            return None
        return self._state
