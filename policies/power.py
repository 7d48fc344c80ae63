"""Region power model (pure): estimated draw from measured load and knobs, the no-control baseline, and the
flexible kW each lever could still shed. docs/policy.md explains the model and its assumptions.

    utilisation u   = (model CPU-s/s measured at the replicas + running batch jobs x batch_job_cpus
                       + training workers' measured CPU-s/s) / compute
    IT power        = capacity_kw x (idle_fraction + (1 - idle_fraction) x u)
    site power      = IT power x PUE
    grid draw       = site power - battery power (discharge positive)

A region's replicas stand in for its fleet: `capacity_kw` is what the region draws when its compute is saturated,
so the replicas' busy fraction scales to the region. Where the replicas report GPU board power (NVML), u comes
from it instead: (measured - idle) / (limit - idle).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum

from fleet.power import PowerModelConfig
from fleet.regions import RegionConfig
from fleet.serving import Knobs, Precision
from policies.calibration import Calibration
from policies.load import RegionLoad


class Lever(StrEnum):
    """The ways a region's grid draw can come down (stable strings: API and OpenADR reports)."""

    SHIFT_AWAY = "shift_away"  # tolerant work served here could be routed elsewhere
    DEFER = "defer"  # running batch work could pause
    REDUCE = "reduce"  # the work served here could run at its classes' quality floors
    BATTERY = "battery"  # the battery could discharge more


@dataclass(frozen=True)
class TrainingLoad:
    """A region's training jobs as the power model sees them: measured CPU-s per s of their workers."""

    running_cpu: float = 0.0  # what their running workers use now
    full_cpu: float = 0.0  # what every unfinished one (running, or paused by the grid) would use at full size
    deferrable_cpu: float = 0.0  # of running_cpu, the jobs the grid may pause (flex tier 1 and up)
    reducible_cpu: float = 0.0  # what shrinking each running job to its tier's limit would shed


@dataclass(frozen=True)
class PowerInputs:
    """What the estimate needs besides config: measured load and what the policy knows of the region's work."""

    load: RegionLoad
    knobs: Knobs
    compute_cpus: float  # CPU-s per s the region's replicas can work (replicas x torch threads)
    running_batch_jobs: int = 0
    deferred_batch_jobs: int = 0  # paused by the grid gate or the policy (not by an operator)
    shifted_away_items_per_s: float = 0.0  # tolerant items from this origin served elsewhere
    battery_kw: float = 0.0
    training: TrainingLoad = field(default_factory=TrainingLoad)


@dataclass(frozen=True)
class PowerEstimate:
    """A region's power now, kW, with what it would be without control and what it could still shed."""

    source: str  # "estimate" (CPU-time model) or "nvml" (measured GPU board power)
    utilization: float
    it_kw: float
    site_kw: float
    battery_kw: float
    grid_kw: float
    baseline_kw: float
    flexible_kw: Mapping[Lever, float] = field(default_factory=dict)

    @property
    def saved_kw(self) -> float:
        return self.baseline_kw - self.grid_kw

    def to_dict(self) -> dict[str, object]:
        return {
            "source": self.source,
            "utilization": round(self.utilization, 4),
            "it_kw": round(self.it_kw, 1),
            "site_kw": round(self.site_kw, 1),
            "battery_kw": round(self.battery_kw, 1),
            "grid_kw": round(self.grid_kw, 1),
            "baseline_kw": round(self.baseline_kw, 1),
            "saved_kw": round(self.saved_kw, 1),
            "flexible_kw": {lever.value: round(kw, 1) for lever, kw in self.flexible_kw.items()},
            "flexible_kw_total": round(sum(self.flexible_kw.values()), 1),
        }


def floor_precisions(
    quality_floor: Mapping[str, float], calibration: Calibration, batch_size: float
) -> dict[str, Precision]:
    """Per workload class, the cheapest precision that still meets its quality floor."""
    return {name: calibration.cheapest_meeting(floor, batch_size) for name, floor in quality_floor.items()}


def estimate_power(
    region: RegionConfig,
    inputs: PowerInputs,
    config: PowerModelConfig,
    calibration: Calibration,
    quality_floor: Mapping[str, float],
    battery_available_kw: float = 0.0,
) -> PowerEstimate:
    load, knobs = inputs.load, inputs.knobs
    capacity = max(inputs.compute_cpus, 1e-9)
    batch_size = max(load.mean_batch_requests, 1.0)
    dynamic_kw = region.capacity_kw * (1.0 - config.idle_fraction)
    batch_cpu = inputs.running_batch_jobs * config.batch_job_cpus
    training = inputs.training

    def it_kw(cpu_s_per_s: float) -> float:
        return region.capacity_kw * config.idle_fraction + dynamic_kw * min(cpu_s_per_s / capacity, 1.0)

    source = "estimate"
    serving_cpu = load.busy_cpu_s_per_s
    gpu_span = None
    if load.gpu_power_w is not None and load.gpu_max_power_w and load.gpu_idle_power_w is not None:
        gpu_span = load.gpu_max_power_w - load.gpu_idle_power_w
    if gpu_span is not None and gpu_span > 0 and load.gpu_power_w is not None and load.gpu_idle_power_w is not None:
        # Real board power: the accelerator's own measure of how hard it works replaces the CPU-time estimate.
        source = "nvml"
        serving_cpu = min(max((load.gpu_power_w - load.gpu_idle_power_w) / gpu_span, 0.0), 1.0) * capacity

    # CPU per measured class at fp32: what the same work would cost uncontrolled. Classes ran at the knob's precision.
    scale = serving_cpu / load.busy_cpu_s_per_s if load.busy_cpu_s_per_s > 0 else 0.0
    fp32_cpu = 0.0
    floor_cpu = 0.0
    floors = floor_precisions(quality_floor, calibration, batch_size)
    for name, cpu in load.busy_by_class.items():
        ran_at = knobs.precision_for(name)
        fp32_cpu += cpu * scale * calibration.cost_ratio(Precision.FP32, ran_at, batch_size)
        floor = floors.get(name, ran_at)
        floor_cpu += cpu * scale * min(calibration.cost_ratio(floor, ran_at, batch_size), 1.0)
    fp32_item_cpu = calibration.cpu_ms_per_item(Precision.FP32, batch_size) / 1000.0
    baseline_cpu = (
        fp32_cpu
        + inputs.shifted_away_items_per_s * fp32_item_cpu
        + (inputs.running_batch_jobs + inputs.deferred_batch_jobs) * config.batch_job_cpus
        + training.full_cpu
    )

    now_cpu = serving_cpu + batch_cpu + training.running_cpu
    it_now = it_kw(now_cpu)
    site_now = it_now * config.pue
    tolerant_cpu = load.busy_by_class.get("tolerant", 0.0) * scale
    flexible = {
        Lever.SHIFT_AWAY: config.pue * (it_now - it_kw(now_cpu - tolerant_cpu)),
        Lever.DEFER: config.pue * (it_now - it_kw(now_cpu - batch_cpu - training.deferrable_cpu)),
        Lever.REDUCE: config.pue
        * max(it_now - it_kw(floor_cpu + batch_cpu + training.running_cpu - training.reducible_cpu), 0.0),
        Lever.BATTERY: battery_available_kw,
    }
    return PowerEstimate(
        source=source,
        utilization=min(now_cpu / capacity, 1.0),
        it_kw=it_now,
        site_kw=site_now,
        battery_kw=inputs.battery_kw,
        grid_kw=site_now - inputs.battery_kw,
        baseline_kw=it_kw(baseline_cpu) * config.pue,
        flexible_kw=flexible,
    )
