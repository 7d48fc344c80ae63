"""Telemetry: measured load per region (from regional replicas' reports), the policy's inputs built from it and the
control state, and the operators' view of load, decisions and knobs in force."""

from __future__ import annotations

from dataclasses import dataclass, field

from fleet.clock import Clock
from fleet.events import active_power_limit_kw
from grid.context import FleetContext
from policies.calibration import calibration_to_dict
from policies.control_state import ControlState, GatewayLoad
from policies.job_registry import JobRegistry
from policies.knob_leases import KnobLeases
from policies.ladder import RegionInputs, decision_to_dict
from policies.load import LoadBook
from policies.outlook import stressed_seconds_ahead
from policies.power import TrainingLoad
from policies.training_jobs import TrainingJobs

HOUR_S = 3600


@dataclass
class Telemetry:
    """Measured load, and the stress outlook per region cached per trace hour (the forecast changes hourly)."""

    context: FleetContext
    clock: Clock
    wall_clock: Clock
    loads: LoadBook = field(default_factory=LoadBook)
    _outlook: dict[tuple[str, int], tuple[float, float]] = field(default_factory=dict)  # (seconds ahead, at)

    def policy_inputs(
        self, state: ControlState, reports: list[GatewayLoad], jobs: JobRegistry, training: TrainingJobs | None = None
    ) -> dict[str, RegionInputs]:
        """What the policy decides from, per region, now."""
        now_s = float(self.clock.now_s())
        wall_s = self.wall_clock.now_s()
        battery = self.context.fleet.policy.battery
        moved: dict[str, float] = {}
        for load in reports:
            for origin, rate in load.moved_items_per_s.items():
                moved[origin] = moved.get(origin, 0.0) + rate
        inputs = {}
        for region in state.snapshot.regions:
            name = region.config.name
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
                running_batch_jobs=jobs.count(name, "running"),
                deferred_batch_jobs=jobs.count(name, "paused"),
                training=TrainingLoad() if training is None else training.load(name),
                shifted_away_items_per_s=moved.get(name, 0.0),
                stressed_s_ahead=max(ahead_s - (now_s - computed_at_s), 0.0),
            )
        return inputs

    def report(self, leases: KnobLeases) -> dict[str, object]:
        """Per region: measured load, the policy's decision (rung, knobs, battery, power, flexible kW), the knobs in
        force and where they come from. Best-effort figures for operators, not versioned routing state."""
        fleet = self.context.fleet
        wall_s = self.wall_clock.now_s()
        regions: dict[str, object] = {}
        for config in fleet.regions:
            lease = leases.lease(config.name)
            decision = leases.decisions.get(config.name)
            regions[config.name] = {
                "knobs_in_force": lease.knobs.model_dump(mode="json"),
                "knob_source": lease.source,
                "knob_reason": lease.reason,
                "load": self.loads.region(config.name, wall_s).to_dict(lease.knobs.max_batch_size),
                "policy": None if decision is None else decision_to_dict(decision, config),
            }
        age = leases.policy_age_s()
        return {
            "policy": {
                "enabled": fleet.policy.enabled,
                "fresh": leases.policy_fresh(),
                "age_s": None if age is None else round(age, 3),
                "period_s": fleet.policy.period_s,
                "fallback_after_s": fleet.policy.fallback_after_s,
                "quality_floor": dict(fleet.policy.quality_floor),
            },
            "calibration": None if leases.calibration is None else calibration_to_dict(leases.calibration),
            "regions": regions,
        }
