"""Regions: where each serving region is, which grid zones feed it, and how much it can do."""

from __future__ import annotations

from pydantic import (
    Field,
    PositiveFloat,
    PositiveInt,
    field_validator,
)

from fleet.base import HTTP_URL_PATTERN, StrictModel
from fleet.power import BatteryConfig
from fleet.signals import SIGNAL_COLUMNS


class RegionConfig(StrictModel):
    """One serving region: where it is, which grid feeds it, and how much it can do."""

    name: str = Field(min_length=1, description="Region name, also its key in the latency matrix.")
    zone: str = Field(min_length=1, description="Grid zone (balancing authority code) that feeds the region.")
    signal_zones: dict[str, str] = Field(
        default_factory=dict,
        description="Per trace column, a zone that overrides `zone` (e.g. demand from a sub-region).",
    )
    latitude: float = Field(ge=-90.0, le=90.0, description="Degrees north.")
    longitude: float = Field(ge=-180.0, le=180.0, description="Degrees east.")
    capacity_replicas: PositiveInt = Field(description="Model replicas the region can run.")
    capacity_kw: PositiveFloat = Field(description="IT power the region draws at full load, kW.")
    service_time_ms: PositiveFloat = Field(
        20.0, description="Expected model service time of one request when idle, ms."
    )
    battery: BatteryConfig | None = Field(None, description="On-site battery, if any.")
    endpoint_url: str | None = Field(
        None,
        pattern=HTTP_URL_PATTERN,
        description="Base URL of a remote gridshift or Ray Serve cluster serving this region "
        "(POST {url}/v1/embeddings); null: served by a deployment in this cluster.",
    )

    @field_validator("signal_zones")
    @classmethod
    def _known_columns(cls, value: dict[str, str]) -> dict[str, str]:
        unknown = sorted(set(value) - set(SIGNAL_COLUMNS))
        if unknown:
            raise ValueError(f"unknown trace column(s) {unknown}; expected some of {list(SIGNAL_COLUMNS)}")
        return value

    def zone_for(self, column: str) -> str:
        """The grid zone whose trace column feeds this region's `column` signal."""
        return self.signal_zones.get(column, self.zone)
