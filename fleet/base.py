"""What every section of the fleet config shares: the strict base model, the URL pattern, UTC times and ranges."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

HTTP_URL_PATTERN = r"^https?://[^\s/]+(/\S*)?$"
"""An http(s) URL with a host and an optional path: what every URL field of the config accepts."""


class StrictModel(BaseModel):
    """A config section. Unknown keys are typos until proven otherwise: rejected, so a misspelt knob is not silently
    ignored; frozen, so a loaded config cannot drift."""

    model_config = ConfigDict(extra="forbid", frozen=True)


Fraction = Annotated[float, Field(ge=0.0, le=1.0)]


def require_utc(value: datetime) -> datetime:
    """The same moment in UTC; a naive time is refused (ValueError), never guessed."""
    # A naive time is ambiguous across regions; the contract is UTC, so demand an explicit offset.
    if value.tzinfo is None:
        raise ValueError("time must carry a UTC offset, e.g. 2022-09-07T01:00:00Z")
    try:
        return value.astimezone(UTC)
    except OverflowError:
        # 0001-01-01T00:00+00:01 is a valid time whose UTC moment falls before year 1: a bad value, not a crash.
        raise ValueError(f"time {value.isoformat()} is out of range in UTC") from None


UtcDatetime = Annotated[datetime, AfterValidator(require_utc)]


def _ascending_pair(value: tuple[float, float]) -> tuple[float, float]:
    if not value[0] < value[1]:
        raise ValueError(f"expected [low, high] with low < high, got {list(value)}")
    return value


Range = Annotated[tuple[float, float], AfterValidator(_ascending_pair)]
