"""Grid-aware prices: per region and hour ahead, from forecasts only, per unit of work and per flexibility tier.

Pure given a loaded trace. The formula (docs/tenants.md), for one region-hour and tier t:

    grid_usd_per_kwh = max(wholesale, 0) / 1000 + carbon_g_per_kwh / 1e6 x carbon_usd_per_tonne
    tier-0 price     = (compute share + kWh of the unit x grid_usd_per_kwh) x (1 + stress_markup[stress])
    tier-t price     = tier-0 price x (1 - tier_discount[t])

per 1,000 inference items and per job-hour. Wholesale, carbon and stress are forecasts issued at the quoting
moment (policies/plan_forecast.py), never the trace's actuals; where a forecast is missing the configured flat
value stands in, and the hour says so.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from fleet.config import FleetConfig
from fleet.pricing import PricingConfig
from fleet.regions import RegionConfig
from fleet.tenants import MAX_TIER
from fleet.times import iso
from grid.trace import FloatArray, IntArray, Trace
from policies.plan import HOUR_S, PlanSignal
from policies.plan_forecast import forecast_signal, iter_assessments


@dataclass(frozen=True)
class HourConditions:
    """What the forecast says of one region-hour, and where a flat stand-in replaced a missing forecast."""

    region: str
    at_s: int  # the hour's start, epoch s
    wholesale_usd_per_mwh: float
    wholesale_forecast: bool  # False: the trace had no price forecast; the flat energy price stands in
    carbon_g_per_kwh: float
    carbon_forecast: bool
    stress_level: int  # 0..3; 0 where nothing could be forecast


@dataclass(frozen=True)
class TierPrice:
    tier: int
    discount: float  # fraction of the tier-0 price
    usd_per_1k_items: float
    usd_per_job_hour: float


def grid_usd_per_kwh(hour: HourConditions, pricing: PricingConfig) -> float:
    """Energy and carbon cost of one kWh in this hour. Negative wholesale prices count as zero: a customer is never
    paid to compute."""
    return max(hour.wholesale_usd_per_mwh, 0.0) / 1000.0 + hour.carbon_g_per_kwh / 1e6 * pricing.carbon_usd_per_tonne


def tier_prices(hour: HourConditions, pricing: PricingConfig) -> tuple[TierPrice, ...]:
    """The hour's price per unit of work at every tier 0..3."""
    energy = grid_usd_per_kwh(hour, pricing)
    markup = 1.0 + pricing.stress_markup[hour.stress_level]
    per_1k = (pricing.compute_usd_per_1k_items + pricing.kwh_per_1k_items * energy) * markup
    per_job_hour = (pricing.compute_usd_per_job_hour + pricing.job_kw * energy) * markup
    return tuple(
        TierPrice(tier, pricing.tier_discount[tier], per_1k * (1 - d), per_job_hour * (1 - d))
        for tier, d in enumerate(pricing.tier_discount[: MAX_TIER + 1])
    )


def _forecast_or_nan(
    trace: Trace, region: RegionConfig, signal: PlanSignal, issued_at_s: int, slots: IntArray, fleet: FleetConfig
) -> FloatArray:
    try:
        return forecast_signal(trace, region, signal, issued_at_s, slots, fleet.headroom)
    except ValueError:  # the trace has no such column (or no value yet) for the region: the flat value stands in
        return np.full(len(slots), np.nan)


def forecast_hours(
    trace: Trace, fleet: FleetConfig, region_name: str, issued_at_s: int, hours: int
) -> list[HourConditions]:
    """The region's conditions for `hours` whole hours from the one holding `issued_at_s`, forecast at that moment."""
    if hours < 1:
        raise ValueError(f"hours must be >= 1, got {hours}")
    region = fleet.region(region_name)
    first = issued_at_s - issued_at_s % HOUR_S
    slots = np.arange(first, first + hours * HOUR_S, HOUR_S, dtype=np.int64)
    price = _forecast_or_nan(trace, region, PlanSignal.PRICE, issued_at_s, slots, fleet)
    carbon = _forecast_or_nan(trace, region, PlanSignal.CARBON, issued_at_s, slots, fleet)
    try:
        assessments = list(iter_assessments(trace, region, issued_at_s, slots, fleet.headroom))
    except ValueError:
        assessments = [None] * len(slots)
    pricing = fleet.pricing
    result = []
    for index, at_s in enumerate(int(s) for s in slots):
        wholesale, grams = float(price[index]), float(carbon[index])
        assessment = assessments[index]
        result.append(
            HourConditions(
                region=region_name,
                at_s=at_s,
                wholesale_usd_per_mwh=pricing.flat_energy_usd_per_mwh if math.isnan(wholesale) else wholesale,
                wholesale_forecast=not math.isnan(wholesale),
                carbon_g_per_kwh=pricing.flat_carbon_g_per_kwh if math.isnan(grams) else grams,
                carbon_forecast=not math.isnan(grams),
                stress_level=0 if assessment is None else assessment.grid_stress,
            )
        )
    return result


def hour_to_dict(hour: HourConditions, pricing: PricingConfig) -> dict[str, object]:
    """One region-hour of `GET /v1/prices` (schema gridshift.prices/v1)."""
    return {
        "hour": iso(hour.at_s),
        "wholesale_usd_per_mwh": round(hour.wholesale_usd_per_mwh, 2),
        "wholesale_source": "forecast" if hour.wholesale_forecast else "flat",
        "carbon_g_per_kwh": round(hour.carbon_g_per_kwh, 1),
        "carbon_source": "forecast" if hour.carbon_forecast else "flat",
        "stress_level": hour.stress_level,
        "tiers": [
            {
                "tier": price.tier,
                "discount": price.discount,
                "usd_per_1k_items": round(price.usd_per_1k_items, 6),
                "usd_per_job_hour": round(price.usd_per_job_hour, 6),
            }
            for price in tier_prices(hour, pricing)
        ],
    }
