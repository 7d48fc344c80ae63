"""Battery and power sections: a region's on-site battery, how the policy dispatches it, and the power model."""

from __future__ import annotations

from pydantic import (
    Field,
    PositiveFloat,
    model_validator,
)

from fleet.base import Fraction, StrictModel


class BatteryConfig(StrictModel):
    """An on-site battery that can carry part of a region's load through a grid peak."""

    capacity_kwh: PositiveFloat = Field(description="Usable energy capacity, kWh.")
    max_power_kw: PositiveFloat = Field(description="Maximum charge or discharge power, kW.")
    round_trip_efficiency: float = Field(
        0.9, gt=0.0, le=1.0, description="Energy out divided by energy in over a full cycle."
    )
    initial_soc: Fraction = Field(0.8, description="State of charge at start, fraction of capacity.")
    reserve_soc: Fraction = Field(
        0.2, description="Charge kept for outages; discharge for grid support never goes below it."
    )

    @model_validator(mode="after")
    def _reserve_below_initial(self) -> BatteryConfig:
        if self.reserve_soc > self.initial_soc:
            raise ValueError(f"reserve_soc ({self.reserve_soc}) must not exceed initial_soc ({self.initial_soc})")
        return self


class BatteryDispatchConfig(StrictModel):
    """When the policy discharges and recharges a region's battery."""

    discharge_at_stress: int = Field(
        2, ge=1, le=3, description="Discharge while the region's stress level is at or above this."
    )
    charge_max_stress: int = Field(0, ge=0, le=2, description="Recharge only at or below this stress level.")
    charge_min_headroom: Fraction = Field(0.5, description="Recharge only while grid headroom is at least this.")
    horizon_s: PositiveFloat = Field(
        43_200.0,
        description="Look-ahead over the stress forecast, s: discharge is sized to last the forecast stressed hours.",
    )


class PowerModelConfig(StrictModel):
    """The region power estimate (docs/policy.md): idle plus utilisation-proportional IT power, times PUE."""

    pue: float = Field(1.2, ge=1.0, le=3.0, description="Power usage effectiveness: facility power / IT power.")
    idle_fraction: Fraction = Field(0.35, description="IT power at zero load, as a fraction of capacity_kw.")
    batch_job_cpus: PositiveFloat = Field(
        1.0, description="CPUs a running batch job keeps busy (its pipeline's own CPU time is not measured)."
    )
