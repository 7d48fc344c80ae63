"""The pricing section: the documented price formula's coefficients (per unit of work, carbon, stress, tiers)."""

from __future__ import annotations

import itertools

from pydantic import Field, NonNegativeFloat, PositiveFloat, field_validator

from fleet.base import Fraction, StrictModel
from fleet.tenants import MAX_TIER


def _four(values: list[float], what: str) -> list[float]:
    if len(values) != MAX_TIER + 1:
        raise ValueError(f"{what}: expected {MAX_TIER + 1} values (0..{MAX_TIER}), got {len(values)}")
    return values


class PricingConfig(StrictModel):
    """Coefficients of the price formula (docs/tenants.md): compute + energy x (wholesale + carbon), times the
    stress markup, less the tier's discount."""

    compute_usd_per_1k_items: NonNegativeFloat = Field(0.01, description="Capacity share of 1,000 items, USD.")
    compute_usd_per_job_hour: NonNegativeFloat = Field(0.50, description="Capacity share of one job-hour, USD.")
    kwh_per_1k_items: PositiveFloat = Field(
        0.02, description="Energy estimate of 1,000 embedded items, kWh (facility, PUE included)."
    )
    job_kw: PositiveFloat = Field(0.4, description="Power of one running job, kW (energy of a job-hour, kWh).")
    carbon_usd_per_tonne: NonNegativeFloat = Field(
        50.0, description="Price put on emissions, USD per tonne CO2 (charged on the forecast carbon intensity)."
    )
    flat_energy_usd_per_mwh: NonNegativeFloat = Field(
        60.0, description="Energy price used where the trace has no wholesale price forecast, USD/MWh."
    )
    flat_carbon_g_per_kwh: NonNegativeFloat = Field(
        400.0, description="Carbon intensity used where the trace has no carbon forecast, gCO2/kWh."
    )
    stress_markup: list[NonNegativeFloat] = Field(
        default_factory=lambda: [0.0, 0.1, 0.3, 0.6],
        description="Fraction added at forecast stress level 0..3 (normal, elevated, high, emergency).",
    )
    tier_discount: list[Fraction] = Field(
        default_factory=lambda: [0.0, 0.05, 0.15, 0.30],
        description="Discount each flexibility tier 0..3 earns, as a fraction of the tier-0 price.",
    )
    max_quote_horizon_h: int = Field(168, ge=1, le=720, description="Latest deadline a quote accepts, hours ahead.")

    @field_validator("stress_markup")
    @classmethod
    def _four_levels(cls, value: list[float]) -> list[float]:
        return _four(value, "stress_markup")

    @field_validator("tier_discount")
    @classmethod
    def _four_tiers(cls, value: list[float]) -> list[float]:
        values = _four(value, "tier_discount")
        if any(later < earlier for earlier, later in itertools.pairwise(values)):
            raise ValueError(f"tier_discount: a more flexible tier must not earn less, got {values}")
        return values
