"""Grid events: demand-response events (a region's grid is stressed, or its import is limited, from start to end)
and the price and GHG signals a utility publishes for a region over an interval."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, PositiveFloat, model_validator

from fleet.base import UtcDatetime


class DREvent(BaseModel):
    """A DR event on one region: a stress level on the stress scale (0 normal .. 3 emergency, as OpenADR SIMPLE),
    an import limit in kW (as OpenADR IMPORT_CAPACITY_LIMIT), or both."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    region: str = Field(min_length=1, description="Region the event applies to.")
    level: int | None = Field(
        None, ge=0, le=3, description="0 normal, 1 elevated, 2 high, 3 emergency; null: a limit-only event."
    )
    power_limit_kw: PositiveFloat | None = Field(
        None, description="Most the region's site may draw from the grid while the event is active, kW."
    )
    start: UtcDatetime = Field(description="When the event begins (UTC, inclusive).")
    end: UtcDatetime | None = Field(None, description="When the event ends (UTC, exclusive); null: until cleared.")
    source: Literal["operator", "utility", "trace"] = Field("operator", description="Who declared it.")
    event_id: str = Field(default_factory=lambda: uuid.uuid4().hex[:12], description="Identifier.")

    @model_validator(mode="after")
    def _ordered(self) -> DREvent:
        if self.level is None and self.power_limit_kw is None:
            raise ValueError("an event needs a level, a power_limit_kw, or both")
        if self.end is not None and self.end <= self.start:
            raise ValueError(f"end ({self.end.isoformat()}) must be after start ({self.start.isoformat()})")
        return self

    def active_at(self, at_s: float) -> bool:
        return self.start.timestamp() <= at_s and (self.end is None or at_s < self.end.timestamp())


def active_event_level(events: Iterable[DREvent], region: str, at_s: float) -> int | None:
    """Highest level among the region's events active at `at_s`; None when none with a level is active."""
    levels = [e.level for e in events if e.region == region and e.level is not None and e.active_at(at_s)]
    return max(levels) if levels else None


def active_power_limit_kw(events: Iterable[DREvent], region: str, at_s: float) -> float | None:
    """The tightest import limit among the region's events active at `at_s`; None when none sets one."""
    limits = [
        e.power_limit_kw for e in events if e.region == region and e.power_limit_kw is not None and e.active_at(at_s)
    ]
    return min(limits) if limits else None


SignalKind = Literal["price", "ghg"]


@dataclass(frozen=True)
class GridSignal:
    """A price or GHG value a utility published for a region, with the level gridshift derives from it."""

    signal_id: str
    region: str
    kind: SignalKind
    value: float
    unit: str  # "USD/MWh" or "gCO2/kWh" once converted; the VTN's own units when they could not be
    level: int | None  # 0..3 from the configured thresholds; None when they cannot apply (another currency)
    start_s: float
    end_s: float | None
    source: str
