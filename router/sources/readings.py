"""What a signal source gives back: readings in trace columns and units, rejections with reasons, forecasts.

`SignalSource` is the one interface every adapter (trace replay, WattTime, Electricity Maps, EIA, generic HTTP)
implements; the poller and `gridshift signals check` use nothing else.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Protocol

from router.config import SIGNAL_COLUMNS

EXTRA_COLUMNS: Mapping[str, str] = MappingProxyType(
    {
        "net_generation_mw": "MW",
        "moer_percentile": "percentile 0-100",
    }
)
"""Values a feed gives that no headroom term reads (shown in health and metrics only), with their units."""

COLUMN_UNITS: Mapping[str, str] = MappingProxyType(
    {
        "demand_mw": "MW",
        "demand_forecast_mw": "MW",
        "carbon_g_per_kwh": "gCO2/kWh",
        "price_usd_per_mwh": "USD/MWh",
        "dr_level": "level 0-3",
        **EXTRA_COLUMNS,
    }
)
"""Unit of every column a source may fill: the trace columns (docs: trace files) and the extra ones."""

if set(SIGNAL_COLUMNS) - set(COLUMN_UNITS):  # pragma: no cover - a new trace column needs its unit here
    raise RuntimeError(f"COLUMN_UNITS lacks {sorted(set(SIGNAL_COLUMNS) - set(COLUMN_UNITS))}")

LBS_PER_MWH_TO_G_PER_KWH = 0.45359237
"""1 lb = 453.59237 g and 1 MWh = 1000 kWh, so x lbs/MWh = 0.45359237 x gCO2/kWh (WattTime's MOER unit)."""


@dataclass(frozen=True)
class Reading:
    """One value for one zone and column, in the column's unit, stamped when it was measured (epoch s, UTC)."""

    zone: str
    column: str
    value: float
    observed_at_s: int


@dataclass(frozen=True)
class Rejection:
    """A value a source gave that was not used, and why (`reason` is a short slug, `detail` says more)."""

    zone: str
    column: str
    reason: str
    detail: str


@dataclass(frozen=True)
class ForecastSeries:
    """A provider's forecast of one zone's column: target times (epoch s) and values, issued at `issued_at_s`."""

    zone: str
    column: str
    issued_at_s: int
    times_s: tuple[int, ...]
    values: tuple[float, ...]


@dataclass(frozen=True)
class SourceBatch:
    """Everything one fetch produced. `failures` are calls that failed while others succeeded (partial answer)."""

    readings: tuple[Reading, ...] = ()
    rejections: tuple[Rejection, ...] = ()
    forecasts: tuple[ForecastSeries, ...] = ()
    failures: tuple[str, ...] = field(default=())


class SignalSource(Protocol):
    """A feed of grid signals. `fetch` raises `SignalSourceError` when it got nothing usable at all."""

    @property
    def name(self) -> str: ...

    @property
    def provider(self) -> str: ...

    @property
    def required(self) -> bool: ...

    async def fetch(self, now_s: float) -> SourceBatch:
        """The source's latest values as of `now_s` (epoch s on the control clock)."""
        ...

    async def close(self) -> None:
        """Release connections; the source may not be used afterwards."""
        ...


def latest_at_or_before(points: list[tuple[int, float]], at_s: float) -> tuple[int, float] | None:
    """The (time, value) pair with the greatest time <= at_s; None when every point is later."""
    best: tuple[int, float] | None = None
    for point in points:
        if point[0] <= at_s and (best is None or point[0] > best[0]):
            best = point
    return best


Candidate = tuple[int, float | tuple[str, str]]
"""A row's time and either its value or why it is unusable (reason, detail)."""


def choose_latest(
    zones: tuple[str, ...], column: str, candidates: list[Candidate], now_s: float, what: str
) -> tuple[list[Reading], list[Rejection]]:
    """The newest usable value at or before now, for every zone a provider code feeds; newer unusable rows are
    listed as rejections (older ones were superseded and do not count), and no row at all is `missing`."""
    ordered = sorted((c for c in candidates if c[0] <= now_s), key=lambda c: c[0], reverse=True)
    rejections: list[Rejection] = []
    for at_s, outcome in ordered:
        if isinstance(outcome, tuple):
            rejections += [Rejection(zone, column, outcome[0], f"{what}: {outcome[1]}") for zone in zones]
            continue
        return [Reading(zone, column, outcome, at_s) for zone in zones], rejections
    if not ordered:
        rejections += [Rejection(zone, column, "missing", f"{what}: no row at or before now") for zone in zones]
    return [], rejections
