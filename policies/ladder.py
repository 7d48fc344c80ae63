"""The magnitude ladder (pure): per region, from (state, previous decision) to knobs, batch permission and battery
power, with hysteresis and a minimum dwell so knobs do not oscillate. docs/policy.md explains the rules.

- Rung k answers stress level k (a DR event's level counts as stress). Escalation is immediate: the grid is
  asking now. Recovery is one rung at a time, once the target has stayed lower for `min_dwell_s` and the rung has
  been held that long: flapping input holds the higher rung instead of flapping the knobs.
- Over an import limit (OpenADR IMPORT_CAPACITY_LIMIT), the battery covers the excess first; if the grid draw is
  still over, the ladder climbs a rung per decision until it is not, and holds while within 5 % below the limit.
- Degraded classes run at the cheapest precision whose measured quality meets their floor; real-time work is
  degraded last (the config refuses a ladder that degrades it earlier); batch runners pause where the rung says.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from fleet.config import FleetConfig
from fleet.ladder import LadderStep, PolicyConfig
from fleet.regions import RegionConfig
from fleet.serving import Knobs, Precision
from fleet.times import iso
from policies.battery import BatteryState, discharge_available_kw, dispatch_kw, initial_state, integrate
from policies.calibration import Calibration
from policies.load import RegionLoad
from policies.power import PowerEstimate, PowerInputs, TrainingLoad, estimate_power, floor_precisions

LIMIT_HOLD_SHARE = 0.95  # within this share of an import limit, the ladder holds rather than recovers


@dataclass(frozen=True)
class BatchPolicy:
    """What batch runners in the region run with, and whether they may start shards."""

    batch_size: int
    precision: Precision
    may_run: bool
    workers_fraction: float = 1.0  # share of a job's max_workers its stages may run


@dataclass(frozen=True)
class RegionInputs:
    """Everything the policy reads about one region at one decision (values only)."""

    region: str
    now_s: float  # control clock
    stress_level: int  # 0..3, DR events included
    headroom: float
    load: RegionLoad = field(default_factory=RegionLoad)
    power_limit_kw: float | None = None
    running_batch_jobs: int = 0
    deferred_batch_jobs: int = 0
    shifted_away_items_per_s: float = 0.0
    stressed_s_ahead: float = 0.0  # forecast seconds of continued stress at or above the discharge level
    training: TrainingLoad = field(default_factory=TrainingLoad)  # the region's training workers' CPU


@dataclass(frozen=True)
class RegionDecision:
    """The policy's decision for one region, and the ladder state the next decision starts from."""

    region: str
    decided_at_s: float  # control clock
    step: int
    target_step: int
    changed_at_s: float  # control clock: when `step` was entered
    lower_since_s: float | None  # control clock: since when the target has stayed below `step`
    reason: str
    knobs: Knobs
    batch: BatchPolicy
    battery: BatteryState | None
    battery_reason: str
    power: PowerEstimate


def knobs_for_step(step: LadderStep, defaults: Knobs, policy: PolicyConfig, calibration: Calibration) -> Knobs:
    """The serving knobs at a rung: its batch and concurrency caps, and floor precisions for degraded classes."""
    floors = floor_precisions(policy.quality_floor, calibration, step.max_batch_size)
    degraded = {name: floors[name] for name in step.degrade_classes if name != "batch"}
    return Knobs(
        max_batch_size=step.max_batch_size,
        max_concurrency=step.max_concurrency,
        batch_wait_ms=step.batch_wait_ms,
        precision=defaults.precision,
        class_precision={**defaults.class_precision, **degraded},
    )


def serving_precisions(policy: PolicyConfig, defaults: Knobs, calibration: Calibration) -> tuple[Precision, ...]:
    """Every precision a regional replica may be told to serve at: the defaults', and with the policy on, each
    rung's. Replicas warm these up before they take traffic, so no request pays for building one."""
    knobs = [defaults]
    if policy.enabled:
        knobs += [knobs_for_step(step, defaults, policy, calibration) for step in policy.steps]
    used = {k.precision for k in knobs} | {p for k in knobs for p in k.class_precision.values()}
    return tuple(precision for precision in Precision if precision in used)


def batch_policy_for_step(
    step: LadderStep, defaults: Knobs, policy: PolicyConfig, calibration: Calibration
) -> BatchPolicy:
    precision = defaults.precision_for("batch")
    if "batch" in step.degrade_classes:
        precision = calibration.cheapest_meeting(policy.quality_floor["batch"], step.batch_size)
    return BatchPolicy(
        batch_size=step.batch_size,
        precision=precision,
        may_run=step.batch_may_run,
        workers_fraction=step.batch_workers_fraction,
    )


_RungKey = tuple[int, int, int, int]
_RUNG_MEMO: dict[_RungKey, tuple[LadderStep, Knobs, PolicyConfig, Calibration, Knobs, BatchPolicy]] = {}
_RUNG_MEMO_MAX = 256


def rung_settings(
    step: LadderStep, defaults: Knobs, policy: PolicyConfig, calibration: Calibration
) -> tuple[Knobs, BatchPolicy]:
    """knobs_for_step and batch_policy_for_step, computed once per (rung, defaults, policy, calibration).

    Every decision of every region asks this of one of a handful of rungs; the inputs are frozen models, so the
    answer cannot change while they live. Keyed by identity (the models hold dicts, so they do not hash); the memo
    keeps its keys alive, so an id is never reused for another object while its entry stands."""
    key = (id(step), id(defaults), id(policy), id(calibration))
    hit = _RUNG_MEMO.get(key)
    if hit is not None and hit[0] is step and hit[1] is defaults and hit[2] is policy and hit[3] is calibration:
        return hit[4], hit[5]
    knobs = knobs_for_step(step, defaults, policy, calibration)
    batch = batch_policy_for_step(step, defaults, policy, calibration)
    if len(_RUNG_MEMO) >= _RUNG_MEMO_MAX:
        _RUNG_MEMO.clear()  # config reloads: drop the old configs' rungs rather than keep them alive
    _RUNG_MEMO[key] = (step, defaults, policy, calibration, knobs, batch)
    return knobs, batch


def safe_batch_policy(defaults: Knobs) -> BatchPolicy:
    """What batch runners use with no fresh decision: full quality, allowed to run (the grid gate still applies)."""
    return BatchPolicy(batch_size=defaults.max_batch_size, precision=defaults.precision_for("batch"), may_run=True)


def _target_step(inputs: RegionInputs, previous: RegionDecision | None, top: int) -> tuple[int, str]:
    target = min(inputs.stress_level, top)
    reason = f"stress {inputs.stress_level}"
    limit = inputs.power_limit_kw
    if limit is not None and previous is not None:
        grid_kw = previous.power.grid_kw
        if grid_kw > limit:
            target = max(target, min(previous.step + 1, top))
            reason = f"grid draw {grid_kw:.0f} kW over the {limit:.0f} kW import limit"
        elif grid_kw > LIMIT_HOLD_SHARE * limit and previous.step > target:
            target = previous.step
            reason = f"grid draw {grid_kw:.0f} kW within 5% of the {limit:.0f} kW import limit"
    return target, reason


def next_step(
    inputs: RegionInputs, previous: RegionDecision | None, policy: PolicyConfig
) -> tuple[int, int, float, float | None, str]:
    """(step, target, changed_at_s, lower_since_s, reason) with escalation at once and dwell-limited recovery."""
    now = inputs.now_s
    target, why = _target_step(inputs, previous, len(policy.steps) - 1)
    if previous is None:
        return target, target, now, None, why
    current = previous.step
    if target > current:
        return target, target, now, None, f"{why}: up from rung {current}"
    if target == current:
        return current, target, previous.changed_at_s, None, why
    lower_since = previous.lower_since_s if previous.lower_since_s is not None else now
    held = now - max(lower_since, previous.changed_at_s)
    if held >= policy.min_dwell_s:
        stepped = current - 1
        # Still above the target: the next rung down needs its own dwell.
        return stepped, target, now, (now if target < stepped else None), f"{why}: down from rung {current}"
    return current, target, previous.changed_at_s, lower_since, f"{why}: holding rung {current} (dwell)"


def decide_region(
    inputs: RegionInputs,
    previous: RegionDecision | None,
    region: RegionConfig,
    fleet: FleetConfig,
    calibration: Calibration,
) -> RegionDecision:
    """One region's decision: rung, knobs, batch permission, battery power and the power estimate."""
    policy = fleet.policy
    step, target, changed_at, lower_since, reason = next_step(inputs, previous, policy)
    defaults = fleet.serving.knobs
    knobs, batch = rung_settings(policy.steps[step], defaults, policy, calibration)

    # The load was measured under the knobs in force until now; the estimate describes that moment.
    ran_with = previous.knobs if previous is not None else defaults
    compute_cpus = fleet.serving.replicas_per_region * fleet.serving.torch_threads

    def estimate(battery_kw: float, available_kw: float) -> PowerEstimate:
        power_inputs = PowerInputs(
            load=inputs.load,
            knobs=ran_with,
            compute_cpus=compute_cpus,
            running_batch_jobs=inputs.running_batch_jobs,
            deferred_batch_jobs=inputs.deferred_batch_jobs,
            shifted_away_items_per_s=inputs.shifted_away_items_per_s,
            battery_kw=battery_kw,
            training=inputs.training,
        )
        return estimate_power(region, power_inputs, fleet.power, calibration, policy.quality_floor, available_kw)

    battery_state: BatteryState | None = None
    battery_reason = "no battery"
    battery_kw = 0.0
    available_kw = 0.0
    if region.battery is not None:
        config = region.battery
        if previous is not None and previous.battery is not None:
            battery_state = integrate(config, previous.battery, inputs.now_s - previous.decided_at_s)
        else:
            battery_state = initial_state(config)
        site_kw = estimate(0.0, 0.0).site_kw
        battery_kw, battery_reason = dispatch_kw(
            config,
            policy.battery,
            battery_state,
            stress_level=inputs.stress_level,
            headroom=inputs.headroom,
            site_kw=site_kw,
            limit_kw=inputs.power_limit_kw,
            stressed_s_ahead=inputs.stressed_s_ahead,
        )
        battery_state = BatteryState(battery_state.soc_kwh, battery_kw)
        available_kw = discharge_available_kw(config, battery_state)
    return RegionDecision(
        region=inputs.region,
        decided_at_s=inputs.now_s,
        step=step,
        target_step=target,
        changed_at_s=changed_at,
        lower_since_s=lower_since,
        reason=reason,
        knobs=knobs,
        batch=batch,
        battery=battery_state,
        battery_reason=battery_reason,
        power=estimate(battery_kw, available_kw),
    )


def decide_fleet(
    inputs: Mapping[str, RegionInputs],
    previous: Mapping[str, RegionDecision],
    fleet: FleetConfig,
    calibration: Calibration,
) -> dict[str, RegionDecision]:
    """One policy period: every region's decision from its inputs and its previous decision."""
    return {
        name: decide_region(region_inputs, previous.get(name), fleet.region(name), fleet, calibration)
        for name, region_inputs in inputs.items()
    }


def decision_to_dict(decision: RegionDecision, region: RegionConfig) -> dict[str, object]:
    """Stable JSON form (units in key names), for GET /v1/regions and `gridshift policy`."""
    battery = None
    if decision.battery is not None and region.battery is not None:
        battery = {
            "soc_kwh": round(decision.battery.soc_kwh, 1),
            "soc_fraction": round(decision.battery.soc_fraction(region.battery), 4),
            "power_kw": round(decision.battery.power_kw, 1),
            "capacity_kwh": region.battery.capacity_kwh,
            "max_power_kw": region.battery.max_power_kw,
            "reserve_soc": region.battery.reserve_soc,
            "why": decision.battery_reason,
        }
    return {
        "decided_at": iso(decision.decided_at_s),
        "step": decision.step,
        "target_step": decision.target_step,
        "step_since": iso(decision.changed_at_s),
        "reason": decision.reason,
        "knobs": decision.knobs.model_dump(mode="json"),
        "batch": {
            "batch_size": decision.batch.batch_size,
            "precision": decision.batch.precision.value,
            "may_run": decision.batch.may_run,
            "workers_fraction": decision.batch.workers_fraction,
        },
        "battery": battery,
        "power": decision.power.to_dict(),
    }
