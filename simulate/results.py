"""What a simulation reports: per region and fleet-wide draw against the no-control baseline, flexible MW by lever,
stress episodes and events (shed, how long held, how fast), service costs, carbon, energy cost, battery cycles, the
shift map and the gap to perfect foresight. The stable JSON is schema gridshift.simulation/v1 (docs/simulate.md)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

import numpy as np

from fleet.config import FleetConfig
from fleet.events import DREvent
from fleet.times import iso
from grid.trace import FloatArray
from simulate.engine import LEVER_ORDER, SimulationRun
from simulate.jobs import HOUR_S

SIMULATION_SCHEMA: Final = "gridshift.simulation/v1"
EPISODE_STRESS: Final = 2
"""A stress episode: consecutive hours at stress 2 (high) or above, DR events included (the headroom formula's
stress counts an active event's level)."""


@dataclass(frozen=True)
class Episode:
    region: str
    start_s: int
    hours: int
    peak_stress: int
    mean_shed_mw: float
    max_shed_mw: float
    held_hours: int  # hours shedding at least half the episode's largest shed
    arrival_hours: int  # hours from the start until the shed first reached half its largest (0: the first hour)
    label: str = "stress"

    def to_dict(self) -> dict[str, object]:
        return {
            "region": self.region,
            "kind": self.label,
            "start": iso(self.start_s),
            "end": iso(self.start_s + self.hours * HOUR_S),
            "hours": self.hours,
            "peak_stress": self.peak_stress,
            "mean_shed_mw": round(self.mean_shed_mw, 3),
            "max_shed_mw": round(self.max_shed_mw, 3),
            "held_hours": self.held_hours,
            "arrival_hours": self.arrival_hours,
        }


def _episode(region: str, start_s: int, stress: FloatArray, shed_mw: FloatArray, label: str) -> Episode:
    peak = float(shed_mw.max()) if len(shed_mw) else 0.0
    half = shed_mw >= 0.5 * peak if peak > 0 else np.zeros(len(shed_mw), dtype=bool)
    return Episode(
        region=region,
        start_s=start_s,
        hours=len(shed_mw),
        peak_stress=int(stress.max()) if len(stress) else 0,
        mean_shed_mw=float(shed_mw.mean()) if len(shed_mw) else 0.0,
        max_shed_mw=peak,
        held_hours=int(half.sum()),
        arrival_hours=int(np.argmax(half)) if half.any() else len(shed_mw),
        label=label,
    )


def episodes(run: SimulationRun, baseline: SimulationRun, events: Sequence[DREvent] = ()) -> list[Episode]:
    """Stress episodes of every region, then each input event's window, with the shed against the baseline."""
    found: list[Episode] = []
    shed = (baseline.series["grid_kw"] - run.series["grid_kw"]) / 1000.0
    for i, name in enumerate(run.regions):
        stressed = run.series["stress"][i] >= EPISODE_STRESS
        edges = np.diff(np.concatenate(([0], stressed.astype(np.int8), [0])))
        for start, end in zip(np.flatnonzero(edges == 1), np.flatnonzero(edges == -1), strict=True):
            found.append(
                _episode(
                    name, int(run.times_s[start]), run.series["stress"][i, start:end], shed[i, start:end], "stress"
                )
            )
    for event in events:
        if event.region not in run.regions:
            continue
        i = run.regions.index(event.region)
        end_s = event.end.timestamp() if event.end is not None else float(run.times_s[-1] + HOUR_S)
        inside = (run.times_s >= event.start.timestamp()) & (run.times_s < end_s)
        if inside.any():
            first = int(np.argmax(inside))
            found.append(
                _episode(
                    event.region, int(run.times_s[first]), run.series["stress"][i][inside], shed[i][inside], "event"
                )
            )
    return found


def _energy_mwh(kw: FloatArray) -> float:
    return float(kw.sum()) / 1000.0  # hourly steps: kW x 1 h


def _carbon_t(kw: FloatArray, carbon: FloatArray) -> float | None:
    known = ~np.isnan(carbon)
    return float((kw[known] * carbon[known]).sum() / 1e6) if known.any() else None


def _cost_usd(kw: FloatArray, price: FloatArray) -> float | None:
    known = ~np.isnan(price)
    return float((kw[known] * price[known]).sum() / 1000.0) if known.any() else None


def _round(value: float | None, digits: int = 3) -> float | None:
    return None if value is None else round(value, digits)


def _region_dict(run: SimulationRun, baseline: SimulationRun, fleet: FleetConfig, i: int) -> dict[str, Any]:
    name = run.regions[i]
    config = fleet.region(name)
    grid, base = run.series["grid_kw"][i], baseline.series["grid_kw"][i]
    carbon, price = run.series["carbon_g_per_kwh"][i], run.series["price_usd_per_mwh"][i]
    stressed = run.series["stress"][i] >= EPISODE_STRESS
    discharged = float(np.clip(run.series["battery_kw"][i], 0.0, None).sum())
    return {
        "region": name,
        "zone": config.zone,
        "energy_mwh": round(_energy_mwh(grid), 3),
        "baseline_energy_mwh": round(_energy_mwh(base), 3),
        "mean_grid_mw": round(float(grid.mean()) / 1000.0, 3),
        "mean_baseline_mw": round(float(base.mean()) / 1000.0, 3),
        "stress_hours": int(stressed.sum()),
        "mean_shed_mw_in_stress": round(float((base - grid)[stressed].mean()) / 1000.0, 3) if stressed.any() else None,
        "flexible_mw_mean": {
            lever.value: round(float(run.flexible_kw[lever][i].mean()) / 1000.0, 3) for lever in LEVER_ORDER
        },
        "carbon_t": _round(_carbon_t(grid, carbon)),
        "baseline_carbon_t": _round(_carbon_t(base, carbon)),
        "energy_cost_usd": _round(_cost_usd(grid, price), 2),
        "baseline_energy_cost_usd": _round(_cost_usd(base, price), 2),
        "hours_without_carbon": int(np.isnan(carbon).sum()),
        "hours_without_price": int(np.isnan(price).sum()),
        "battery_cycles": round(discharged / config.battery.capacity_kwh, 3) if config.battery else None,
        "rung_hours": {str(k): int((run.series["rung"][i] == k).sum()) for k in range(4)},
    }


def fleet_totals(run: SimulationRun, baseline: SimulationRun) -> dict[str, Any]:
    grid, base = run.series["grid_kw"], baseline.series["grid_kw"]
    stressed = run.series["stress"] >= EPISODE_STRESS
    shed_in_stress = (base - grid)[stressed]
    counters = run.counters
    carbon = run.series["carbon_g_per_kwh"]
    price = run.series["price_usd_per_mwh"]
    total_flex = np.sum([run.flexible_kw[lever] for lever in LEVER_ORDER], axis=0)
    return {
        "energy_mwh": round(_energy_mwh(grid), 3),
        "baseline_energy_mwh": round(_energy_mwh(base), 3),
        "carbon_t": _round(_carbon_t(grid, carbon)),
        "baseline_carbon_t": _round(_carbon_t(base, carbon)),
        "energy_cost_usd": _round(_cost_usd(grid, price), 2),
        "baseline_energy_cost_usd": _round(_cost_usd(base, price), 2),
        "stressed_region_hours": int(stressed.sum()),
        "mean_shed_mw_in_stress": round(float(shed_in_stress.mean()) / 1000.0, 3) if stressed.any() else None,
        "flexible_mw_mean": {
            lever.value: round(float(run.flexible_kw[lever].sum(axis=0).mean()) / 1000.0, 3) for lever in LEVER_ORDER
        },
        "flexible_fraction": round(float(total_flex.sum() / max(grid.sum(), 1e-9)), 4),
        "realtime_slo_misses": int(counters["realtime_slo_miss_hours"]),
        "tolerant_items": int(counters["tolerant_items"]),
        "tolerant_items_over_budget": int(counters["tolerant_items_over_budget"]),
        "tolerant_items_moved": int(counters["tolerant_items_moved"]),
        "jobs_released": int(counters["jobs_total"]),
        "jobs_finished": int(counters["jobs_finished"]),
        "jobs_missed_deadline": int(counters["jobs_missed_deadline"]),
        "job_unit_hours_deferred": int(counters["job_unit_hours_deferred"]),
        "quality_floor_region_hours": {c: int(counters[f"floor_hours_{c}"]) for c in ("realtime", "tolerant", "batch")},
        "battery_discharged_mwh": round(counters["battery_discharged_kwh"] / 1000.0, 3),
    }


def simulation_to_dict(
    run: SimulationRun,
    baseline: SimulationRun,
    fleet: FleetConfig,
    perfect: SimulationRun | None = None,
    *,
    hourly: bool = True,
) -> dict[str, Any]:
    spec = run.spec
    totals = fleet_totals(run, baseline)
    moved = run.moved_cpu_h
    origin_tolerant = (
        spec.utilization
        * spec.mix.tolerant
        * len(run.times_s)
        * float(fleet.serving.replicas_per_region * fleet.serving.torch_threads)
    )
    shift_map = [
        {"from": a, "to": b, "share_of_origin_tolerant": round(float(moved[i, j]) / origin_tolerant, 4)}
        for i, a in enumerate(run.regions)
        for j, b in enumerate(run.regions)
        if moved[i, j] > 0 and origin_tolerant > 0
    ]
    body: dict[str, Any] = {
        "schema": SIMULATION_SCHEMA,
        "from": iso(spec.start_s),
        "to": iso(spec.end_s),
        "hours": len(run.times_s),
        "mix": spec.mix.as_dict(),
        "levers": sorted(spec.levers),
        "utilization": spec.utilization,
        "seed": spec.seed,
        "foresight": spec.foresight,
        "fleet": totals,
        "regions": [_region_dict(run, baseline, fleet, i) for i in range(len(run.regions))],
        "episodes": [e.to_dict() for e in episodes(run, baseline, spec.events)],
        "shift_map": shift_map,
        "missed_jobs": run.missed_jobs[:50],
    }
    if perfect is not None:
        ideal = fleet_totals(perfect, baseline)
        body["perfect_foresight"] = {
            "fleet": ideal,
            "gap": {
                key: None if totals[key] is None or ideal[key] is None else round(ideal[key] - totals[key], 3)
                for key in ("mean_shed_mw_in_stress", "carbon_t", "energy_cost_usd", "jobs_missed_deadline")
            },
        }
    if hourly:
        body["hourly"] = {
            "times": [iso(int(t)) for t in run.times_s],
            "grid_mw": [round(float(v) / 1000.0, 3) for v in run.series["grid_kw"].sum(axis=0)],
            "baseline_mw": [round(float(v) / 1000.0, 3) for v in baseline.series["grid_kw"].sum(axis=0)],
            "max_stress": [int(v) for v in run.series["stress"].max(axis=0)],
        }
    return body
