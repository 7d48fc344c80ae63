"""Headroom and stress: the one formula that turns a region's grid signals into headroom in [0, 1] and 0..3.

See docs/headroom.md for the reasoning. Pure: values in, values out, no clock and no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields

from fleet.headroom import HeadroomConfig
from fleet.signals import SIGNAL_COLUMNS
from grid.trace import Observation

STRESS_NORMAL, STRESS_ELEVATED, STRESS_HIGH, STRESS_EMERGENCY = 0, 1, 2, 3
STRESS_NAMES: Mapping[int, str] = {0: "normal", 1: "elevated", 2: "high", 3: "emergency"}

# Components that speak to supply adequacy; carbon does not (a coal-heavy grid is dirty, not short).
RELIABILITY_COMPONENTS = frozenset({"capacity", "forecast", "price"})


@dataclass(frozen=True)
class GridSignals:
    """What is known of a region's grid at `at_s`; None means no such signal (never zero). One field per trace
    column of the signal table (fleet/signals.py), plus the demand peak the capacity term compares against."""

    at_s: int
    demand_mw: Observation | None = None
    reference_peak_mw: float | None = None
    demand_forecast_mw: Observation | None = None
    carbon_g_per_kwh: Observation | None = None
    price_usd_per_mwh: Observation | None = None
    dr_level: Observation | None = None

    def observed(self) -> dict[str, Observation | None]:
        """Each trace column's observation, in the signal table's order."""
        return {column: getattr(self, column) for column in SIGNAL_COLUMNS}


if missing_fields := set(SIGNAL_COLUMNS) - {f.name for f in fields(GridSignals)}:  # pragma: no cover - a new column
    raise RuntimeError(f"GridSignals lacks a field for signal column(s) {sorted(missing_fields)}")


@dataclass(frozen=True)
class Component:
    """One term of the headroom mean."""

    name: str
    raw: float  # from the signal alone, in [0, 1]
    trust: float  # 1 when fresh, decaying toward 0 as the signal ages
    value: float  # raw blended toward the conservative value by (1 - trust)
    weight: float
    age_s: float


@dataclass(frozen=True)
class Assessment:
    """A region's headroom and stress, with the terms that produced them."""

    headroom: float  # what routing uses: grid headroom capped by any active DR event
    grid_headroom: float
    reliability_headroom: float | None  # None: no supply-adequacy signal at all
    grid_stress: int
    stress_level: int  # grid stress, or the active DR event's level, which overrides it
    event_level: int | None
    components: tuple[Component, ...]

    @property
    def stale(self) -> bool:
        return any(component.trust < 1.0 for component in self.components)


def _clip01(value: float) -> float:
    return 0.0 if value < 0.0 else 1.0 if value > 1.0 else value


def trust_after(age_s: float, config: HeadroomConfig) -> float:
    """1 while a signal is fresh, then halving every `stale_decay_s`: old news is worth less."""
    if age_s <= config.fresh_for_s:
        return 1.0
    return float(0.5 ** ((age_s - config.fresh_for_s) / config.stale_decay_s))


def _component(name: str, raw: float, weight: float, age_s: float, config: HeadroomConfig) -> Component:
    trust = trust_after(age_s, config)
    value = config.stale_headroom + trust * (raw - config.stale_headroom)
    return Component(name, raw, trust, value, weight, age_s)


def components(signals: GridSignals, config: HeadroomConfig) -> list[Component]:
    """The headroom terms that the available signals support."""
    weights = config.weights
    at = signals.at_s
    terms: list[Component] = []
    demand = signals.demand_mw
    if demand is not None and signals.reference_peak_mw:
        # Capacity margin: demand as a share of the zone's recent peak. At or above the peak the grid
        # has no margin left; below (1 - span) of it there is plenty.
        utilisation = demand.value / signals.reference_peak_mw
        raw = _clip01((1.0 - utilisation) / config.capacity_span)
        terms.append(_component("capacity", raw, weights.capacity, at - demand.observed_at_s, config))
    forecast = signals.demand_forecast_mw
    if demand is not None and forecast is not None and forecast.value > 0:
        # Demand running above the operator's own day-ahead forecast means reserves are being used.
        excess = demand.value / forecast.value - 1.0
        raw = _clip01(1.0 - excess / config.forecast_error_span)
        age = at - min(demand.observed_at_s, forecast.observed_at_s)
        terms.append(_component("forecast", raw, weights.forecast, age, config))
    carbon = signals.carbon_g_per_kwh
    if carbon is not None:
        clean, dirty = config.carbon_range_g_per_kwh
        raw = _clip01((dirty - carbon.value) / (dirty - clean))
        terms.append(_component("carbon", raw, weights.carbon, at - carbon.observed_at_s, config))
    price = signals.price_usd_per_mwh
    if price is not None:
        cheap, expensive = config.price_range_usd_per_mwh
        raw = _clip01((expensive - price.value) / (expensive - cheap))
        terms.append(_component("price", raw, weights.price, at - price.observed_at_s, config))
    return [term for term in terms if term.weight > 0]


def _weighted_mean(terms: list[Component]) -> float | None:
    total = sum(term.weight for term in terms)
    if total <= 0:
        return None
    return sum(term.weight * term.value for term in terms) / total


def stress_from_headroom(reliability_headroom: float | None, config: HeadroomConfig) -> int:
    """0..3 from supply-adequacy headroom; with no adequacy signal there is no evidence of stress."""
    if reliability_headroom is None:
        return STRESS_NORMAL
    level = STRESS_NORMAL
    for threshold in config.stress_thresholds:
        if reliability_headroom < threshold:
            level += 1
    return level


def assess(signals: GridSignals, config: HeadroomConfig, event_level: int | None = None) -> Assessment:
    """Headroom and stress of one region. `event_level` is the level of the active DR event, if any.

    A DR event overrides the grid-derived stress (an operator or utility knows more than the trace) and
    caps headroom, so tolerant traffic leaves a region under an event even when its signals look fine.
    """
    terms = components(signals, config)
    grid_headroom = _weighted_mean(terms)
    if grid_headroom is None:
        grid_headroom = config.stale_headroom  # nothing known: assume little room rather than plenty
    reliability = _weighted_mean([term for term in terms if term.name in RELIABILITY_COMPONENTS])
    grid_stress = stress_from_headroom(reliability, config)
    if signals.dr_level is not None and trust_after(signals.at_s - signals.dr_level.observed_at_s, config) >= 1:
        trace_level = int(signals.dr_level.value)
        event_level = trace_level if event_level is None else max(event_level, trace_level)
    if event_level is None:
        return Assessment(grid_headroom, grid_headroom, reliability, grid_stress, grid_stress, None, tuple(terms))
    headroom = min(grid_headroom, config.event_headroom_cap[event_level])
    return Assessment(headroom, grid_headroom, reliability, grid_stress, event_level, event_level, tuple(terms))
