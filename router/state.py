"""Fleet snapshot: each region's signals, headroom, stress, health and load at one moment, ready for routing."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from fleet.config import FleetConfig
from fleet.events import DREvent, active_event_level
from fleet.headroom import HeadroomConfig
from fleet.regions import RegionConfig
from fleet.signals import SIGNAL_COLUMNS
from fleet.times import iso
from grid.headroom import STRESS_NAMES, Assessment, GridSignals, assess
from grid.trace import Observation, SignalReader
from router.routing import RegionState

_DAY_S = 86_400


@dataclass(frozen=True)
class RegionSnapshot:
    """A region at one moment: what the grid said, what the formula made of it, and the routing view."""

    config: RegionConfig
    signals: GridSignals
    assessment: Assessment
    state: RegionState


@dataclass(frozen=True)
class FleetSnapshot:
    """The whole fleet at one moment. `version` increases with every new snapshot a controller publishes."""

    at_s: int
    version: int
    regions: tuple[RegionSnapshot, ...]

    @property
    def states(self) -> tuple[RegionState, ...]:
        return tuple(region.state for region in self.regions)


def observe(region: RegionConfig, trace: SignalReader, at_s: int, config: HeadroomConfig) -> GridSignals:
    """Read a region's signals from the trace (or live store) as known at `at_s` (latest value at or before it)."""
    demand_zone = region.zone_for("demand_mw")
    peak = trace.trailing_quantile(
        demand_zone, "demand_mw", at_s, int(config.peak_lookback_days * _DAY_S), config.peak_quantile
    )
    observed = {column: trace.latest(region.zone_for(column), column, at_s) for column in SIGNAL_COLUMNS}
    return GridSignals(at_s=at_s, reference_peak_mw=peak, **observed)


def _overridden(signals: GridSignals, replaced: Mapping[str, Observation]) -> GridSignals:
    unknown = sorted(set(replaced) - set(SIGNAL_COLUMNS))
    if unknown:
        raise ValueError(f"cannot override {unknown}: not signal columns {list(SIGNAL_COLUMNS)}")
    changes: dict[str, Any] = dict(replaced)
    return replace(signals, **changes)


def snapshot(
    fleet: FleetConfig,
    trace: SignalReader,
    at_s: int,
    *,
    events: Iterable[DREvent] = (),
    healthy: Mapping[str, bool] | None = None,
    utilization: Mapping[str, float] | None = None,
    overrides: Mapping[str, Mapping[str, Observation]] | None = None,
    version: int = 0,
) -> FleetSnapshot:
    """Assess every region of the fleet at `at_s`. Regions absent from `healthy`/`utilization` are
    taken as healthy and idle (the CLI's view; the gateway passes measured figures). `overrides` replaces
    a region's observed signals by column (a utility's own price or carbon figure for the period, say)."""
    event_list = list(events)
    regions = []
    for region in fleet.regions:
        signals = observe(region, trace, at_s, fleet.headroom)
        replaced = (overrides or {}).get(region.name)
        if replaced:
            signals = _overridden(signals, replaced)
        assessment = assess(signals, fleet.headroom, active_event_level(event_list, region.name, at_s))
        state = RegionState(
            name=region.name,
            headroom=assessment.headroom,
            stress_level=assessment.stress_level,
            healthy=True if healthy is None else healthy.get(region.name, True),
            utilization=0.0 if utilization is None else utilization.get(region.name, 0.0),
            capacity_replicas=region.capacity_replicas,
            service_time_ms=region.service_time_ms,
        )
        regions.append(RegionSnapshot(region, signals, assessment, state))
    return FleetSnapshot(at_s, version, tuple(regions))


def _round(value: float | None, digits: int) -> float | None:
    return None if value is None else round(value, digits)


def snapshot_to_dict(snap: FleetSnapshot) -> dict[str, Any]:
    """Stable JSON form of a fleet snapshot (units in the key names)."""
    regions = []
    for region in snap.regions:
        signals, assessment = region.signals, region.assessment
        observed = {
            name: None
            if obs is None
            else {
                "value": obs.value,
                "observed_at": iso(obs.observed_at_s),
                "age_s": snap.at_s - obs.observed_at_s,
            }
            for name, obs in signals.observed().items()
        }
        regions.append(
            {
                "region": region.config.name,
                "zone": region.config.zone,
                "signals": observed,
                "reference_peak_mw": _round(signals.reference_peak_mw, 1),
                "headroom": round(assessment.headroom, 4),
                "grid_headroom": round(assessment.grid_headroom, 4),
                "reliability_headroom": _round(assessment.reliability_headroom, 4),
                "stress_level": assessment.stress_level,
                "stress": STRESS_NAMES[assessment.stress_level],
                "grid_stress_level": assessment.grid_stress,
                "event_level": assessment.event_level,
                "stale": assessment.stale,
                "components": [
                    {
                        "name": c.name,
                        "raw": round(c.raw, 4),
                        "trust": round(c.trust, 4),
                        "value": round(c.value, 4),
                        "weight": c.weight,
                        "age_s": c.age_s,
                    }
                    for c in assessment.components
                ],
                "healthy": region.state.healthy,
                "utilization": region.state.utilization,
                "capacity_replicas": region.config.capacity_replicas,
                "capacity_kw": region.config.capacity_kw,
            }
        )
    return {"schema": "gridshift.regions/v1", "at": iso(snap.at_s), "state_version": snap.version, "regions": regions}
