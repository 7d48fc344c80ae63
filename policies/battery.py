"""On-site battery (pure): state of charge under power and energy limits, round-trip losses, an outage reserve, and
the dispatch rule the policy applies (docs/policy.md).

Sign convention: positive power discharges (the battery carries part of the site's load, so the grid sees less);
negative power charges. Energy is integrated over control-clock seconds (trace time under replay), so a replayed
day drains and fills the battery as a real day would.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from fleet.power import BatteryConfig, BatteryDispatchConfig

_S_PER_H = 3600.0


@dataclass(frozen=True)
class BatteryState:
    """Stored energy, and the power applied since the last step (+ discharge, - charge)."""

    soc_kwh: float
    power_kw: float = 0.0

    def soc_fraction(self, config: BatteryConfig) -> float:
        return self.soc_kwh / config.capacity_kwh


def initial_state(config: BatteryConfig) -> BatteryState:
    return BatteryState(config.initial_soc * config.capacity_kwh)


def _leg_efficiency(config: BatteryConfig) -> float:
    # Round-trip losses split evenly between charging and discharging.
    return math.sqrt(config.round_trip_efficiency)


def deliverable_kwh(config: BatteryConfig, state: BatteryState) -> float:
    """Energy the site can still draw before the battery reaches its outage reserve, kWh (after losses)."""
    above_reserve = state.soc_kwh - config.reserve_soc * config.capacity_kwh
    return max(above_reserve, 0.0) * _leg_efficiency(config)


def integrate(config: BatteryConfig, state: BatteryState, dt_s: float) -> BatteryState:
    """Apply `state.power_kw` for `dt_s` seconds; the limits cut it short where the reserve or full charge is hit.
    The returned state's power is the average actually delivered over the step."""
    if dt_s <= 0 or state.power_kw == 0:
        return BatteryState(state.soc_kwh, 0.0 if dt_s > 0 else state.power_kw)
    hours = dt_s / _S_PER_H
    leg = _leg_efficiency(config)
    if state.power_kw > 0:
        drawn = min(state.power_kw * hours / leg, deliverable_kwh(config, state) / leg)
        return BatteryState(state.soc_kwh - drawn, drawn * leg / hours)
    room = config.capacity_kwh - state.soc_kwh
    stored = min(-state.power_kw * hours * leg, max(room, 0.0))
    return BatteryState(state.soc_kwh + stored, -stored / leg / hours)


def dispatch_kw(
    config: BatteryConfig,
    dispatch: BatteryDispatchConfig,
    state: BatteryState,
    *,
    stress_level: int,
    headroom: float,
    site_kw: float,
    limit_kw: float | None,
    stressed_s_ahead: float,
) -> tuple[float, str]:
    """The power to apply until the next decision, and why.

    Under stress, discharge at the rate that lasts through the forecast stressed hours (at least one hour), so the
    battery carries the whole peak rather than its first hour; over an import limit, at least the excess. Never
    more than the site draws (no export) or the reserve allows. In a headroom window, recharge at full power.
    """
    deliverable = deliverable_kwh(config, state)
    over_limit_kw = 0.0 if limit_kw is None else max(site_kw - limit_kw, 0.0)
    if stress_level >= dispatch.discharge_at_stress or over_limit_kw > 0:
        if deliverable <= 0:
            return 0.0, "reserve reached: holding the outage reserve"
        hours = max(stressed_s_ahead, _S_PER_H) / _S_PER_H
        # Only a limit, no stress: cover the excess and keep the rest for the peak.
        spread_kw = deliverable / hours if stress_level >= dispatch.discharge_at_stress else 0.0
        power = min(config.max_power_kw, max(spread_kw, over_limit_kw), site_kw)
        if over_limit_kw > spread_kw:
            return power, f"discharging {power:.0f} kW: site over its {limit_kw:.0f} kW import limit"
        return power, f"discharging {power:.0f} kW to last {hours:.1f} h of forecast stress"
    full = state.soc_kwh >= config.capacity_kwh - 1e-6
    if stress_level <= dispatch.charge_max_stress and headroom >= dispatch.charge_min_headroom and not full:
        return -config.max_power_kw, f"recharging {config.max_power_kw:.0f} kW in a headroom window"
    return 0.0, "full" if full else "idle: neither stressed nor in a headroom window"


def discharge_available_kw(config: BatteryConfig, state: BatteryState) -> float:
    """Further discharge power available now (the battery lever's flexible kW)."""
    if deliverable_kwh(config, state) <= 0:
        return 0.0
    return max(config.max_power_kw - max(state.power_kw, 0.0), 0.0)
