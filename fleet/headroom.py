"""The headroom section: weights and parameters of the one headroom and stress formula (docs/headroom.md)."""

from __future__ import annotations

from pydantic import (
    Field,
    NonNegativeFloat,
    PositiveFloat,
    field_validator,
    model_validator,
)

from fleet.base import Fraction, Range, StrictModel


class HeadroomWeights(StrictModel):
    """Relative weight of each headroom component; a component without a signal drops out."""

    capacity: NonNegativeFloat = Field(0.5, description="Demand against the zone's recent peak.")
    forecast: NonNegativeFloat = Field(0.15, description="Demand running above the day-ahead forecast.")
    carbon: NonNegativeFloat = Field(0.25, description="Average carbon intensity of the zone's supply.")
    price: NonNegativeFloat = Field(0.1, description="Wholesale energy price.")

    @model_validator(mode="after")
    def _some_weight(self) -> HeadroomWeights:
        if self.capacity + self.forecast + self.carbon + self.price <= 0:
            raise ValueError("at least one headroom weight must be positive")
        return self


class HeadroomConfig(StrictModel):
    """Parameters of the one headroom and stress formula (docs/headroom.md explains each)."""

    weights: HeadroomWeights = Field(default_factory=HeadroomWeights, description="Component weights.")
    peak_lookback_days: PositiveFloat = Field(
        365.0, description="Window over which the zone's reference peak demand is taken, days."
    )
    peak_quantile: float = Field(
        0.995, gt=0.5, le=1.0, description="Quantile of past demand used as the reference peak."
    )
    capacity_span: float = Field(
        0.4,
        gt=0.0,
        le=1.0,
        description="Demand/peak below 1 - span counts as full capacity headroom; at the peak it is zero.",
    )
    forecast_error_span: float = Field(
        0.1, gt=0.0, le=1.0, description="Demand this fraction above forecast counts as zero headroom."
    )
    carbon_range_g_per_kwh: Range = Field(
        (50.0, 600.0), description="[clean, dirty] carbon intensity mapped to headroom [1, 0], gCO2/kWh."
    )
    price_range_usd_per_mwh: Range = Field(
        (0.0, 250.0), description="[cheap, expensive] price mapped to headroom [1, 0], USD/MWh."
    )
    fresh_for_s: PositiveFloat = Field(
        5400.0, description="A signal younger than this is trusted fully, s (hourly data: 1.5 h)."
    )
    stale_decay_s: PositiveFloat = Field(
        3600.0, description="Past fresh_for_s, trust in a signal halves every this many seconds."
    )
    stale_headroom: Fraction = Field(
        0.25,
        description="Conservative value that stale signals decay toward (low enough that traffic is not "
        "drawn to a region nobody can see, high enough that a dead feed alone is no emergency).",
    )
    stress_thresholds: tuple[Fraction, Fraction, Fraction] = Field(
        (0.25, 0.12, 0.02),
        description="Grid-reliability headroom below each value raises stress to 1, 2, 3.",
    )
    event_headroom_cap: tuple[Fraction, Fraction, Fraction, Fraction] = Field(
        (1.0, 0.5, 0.2, 0.0), description="Ceiling on headroom while a DR event of level 0..3 is active."
    )

    @field_validator("stress_thresholds")
    @classmethod
    def _descending(cls, value: tuple[float, float, float]) -> tuple[float, float, float]:
        if not value[0] > value[1] > value[2]:
            raise ValueError(f"thresholds for stress 1, 2, 3 must strictly decrease, got {list(value)}")
        return value
