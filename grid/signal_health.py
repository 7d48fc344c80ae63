"""Signal-source health as values: what each live source last gave, how it fared, and their stable JSON forms.

Pure data: the live store (grid/sources/store.py) builds these under its lock; the control state carries them to
the gateway, metrics and the CLI.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from fleet.signals import COLUMN_UNITS
from fleet.times import iso

UP, DEGRADED, DOWN, UNKNOWN = "up", "degraded", "down", "unknown"


@dataclass(frozen=True)
class HeldValue:
    """The value the store answers for one zone and column, and which source gave it."""

    zone: str
    column: str
    value: float
    observed_at_s: int
    source: str


@dataclass(frozen=True)
class ForecastSummary:
    """The shape of a forecast a source gave: how many points, and the span they cover."""

    zone: str
    column: str
    issued_at_s: int
    points: int
    first_s: int
    last_s: int


@dataclass(frozen=True)
class SourceHealth:
    """One source as of its last poll. `state`: up (all usable), degraded (values, but some calls failed or some
    values were rejected), down (nothing usable), unknown (never polled)."""

    name: str
    provider: str
    required: bool
    state: str
    polls: int
    last_poll_s: float | None
    last_success_s: float | None
    last_error_s: float | None
    last_error: str | None
    consecutive_failures: int
    rejected: tuple[tuple[str, int], ...]  # (reason, count) since start, sorted by reason
    last_rejection: str | None
    values: tuple[HeldValue, ...]  # the last value this source gave per zone and column
    forecasts: tuple[ForecastSummary, ...]

    @property
    def up(self) -> bool:
        return self.state in (UP, DEGRADED)

    @property
    def rejected_total(self) -> int:
        return sum(count for _, count in self.rejected)


@dataclass(frozen=True)
class SignalsStatus:
    """Every source's health and every held value, at `at_s` (control clock); `revision` grows on any change."""

    at_s: float
    revision: int
    sources: tuple[SourceHealth, ...]
    held: tuple[HeldValue, ...]


def _age(at_s: float, moment: float | None) -> float | None:
    return None if moment is None else round(at_s - moment, 1)


def _value_dict(value: HeldValue, at_s: float) -> dict[str, Any]:
    return {
        "zone": value.zone,
        "column": value.column,
        "value": value.value,
        "unit": COLUMN_UNITS.get(value.column, "?"),
        "observed_at": iso(value.observed_at_s),
        "age_s": _age(at_s, value.observed_at_s),
        "source": value.source,
    }


def health_to_dict(health: SourceHealth, at_s: float) -> dict[str, Any]:
    """Stable JSON form of one source's health (ages in seconds at `at_s`; no credential can be in it)."""
    return {
        "name": health.name,
        "provider": health.provider,
        "required": health.required,
        "state": health.state,
        "up": health.up,
        "polls": health.polls,
        "last_poll": None if health.last_poll_s is None else iso(health.last_poll_s),
        "last_success": None if health.last_success_s is None else iso(health.last_success_s),
        "last_success_age_s": _age(at_s, health.last_success_s),
        "last_error": health.last_error,
        "last_error_at": None if health.last_error_s is None else iso(health.last_error_s),
        "consecutive_failures": health.consecutive_failures,
        "rejected": dict(health.rejected),
        "rejected_total": health.rejected_total,
        "last_rejection": health.last_rejection,
        "values": [_value_dict(value, at_s) for value in health.values],
        "forecasts": [
            {
                "zone": f.zone,
                "column": f.column,
                "issued_at": iso(f.issued_at_s),
                "points": f.points,
                "from": iso(f.first_s),
                "to": iso(f.last_s),
            }
            for f in health.forecasts
        ],
    }


def status_to_dict(status: SignalsStatus) -> dict[str, Any]:
    """Stable JSON form of the store's status: sources' health and the held value of every zone and column."""
    return {
        "at": iso(status.at_s),
        "revision": status.revision,
        "sources": [health_to_dict(health, status.at_s) for health in status.sources],
        "held": [_value_dict(value, status.at_s) for value in status.held],
    }


def required_down(sources: Iterable[SourceHealth]) -> list[str]:
    """Names of required sources whose last poll got nothing usable (or that were never polled)."""
    return [health.name for health in sources if health.required and not health.up]
