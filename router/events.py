"""Demand-response events: an operator's or utility's statement that a region's grid is stressed from start to end."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from router.config import UtcDatetime


class DREvent(BaseModel):
    """A DR event on one region. Level uses the stress scale (0 normal .. 3 emergency), as OpenADR SIMPLE."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    region: str = Field(min_length=1, description="Region the event applies to.")
    level: int = Field(ge=0, le=3, description="0 normal, 1 elevated, 2 high, 3 emergency.")
    start: UtcDatetime = Field(description="When the event begins (UTC, inclusive).")
    end: UtcDatetime | None = Field(None, description="When the event ends (UTC, exclusive); null: until cleared.")
    source: Literal["operator", "utility", "trace"] = Field("operator", description="Who declared it.")
    event_id: str = Field(default_factory=lambda: uuid.uuid4().hex[:12], description="Identifier.")

    @model_validator(mode="after")
    def _ordered(self) -> DREvent:
        if self.end is not None and self.end <= self.start:
            raise ValueError(f"end ({self.end.isoformat()}) must be after start ({self.start.isoformat()})")
        return self

    def active_at(self, at_s: float) -> bool:
        return self.start.timestamp() <= at_s and (self.end is None or at_s < self.end.timestamp())


def active_event_level(events: Iterable[DREvent], region: str, at_s: float) -> int | None:
    """Highest level among the region's events active at `at_s`; None when none is active."""
    levels = [event.level for event in events if event.region == region and event.active_at(at_s)]
    return max(levels) if levels else None
