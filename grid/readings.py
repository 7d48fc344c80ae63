"""What a signal source gives back, as values: readings in the signal table's columns and units, rejections with
reasons, forecasts; and the one check of whether a reading can be accepted.

Pure: the adapters in grid/sources produce these, the live store keeps them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from fleet.signals import value_problem
from fleet.times import iso
from grid.signal_health import HeldValue

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


def check_reading(
    reading: Reading, now_s: float, held: HeldValue | None, max_age_s: float, max_skew_s: float
) -> tuple[str, str]:
    """('accept' | 'unchanged' | a rejection reason, detail) for one reading against what the store holds."""
    value = reading.value
    where = f"{reading.zone} {reading.column} = {value!r}"
    problem = value_problem(reading.column, value)
    if problem is not None:
        return problem[0], f"{where}: {problem[1]}"
    age_s = now_s - reading.observed_at_s
    if age_s < -max_skew_s:
        return "future", f"{where}: stamped {iso(reading.observed_at_s)}, {-age_s:.0f} s after now"
    if age_s > max_age_s:
        return "stale", f"{where}: stamped {iso(reading.observed_at_s)}, {age_s:.0f} s old"
    if held is not None:
        if reading.observed_at_s < held.observed_at_s:
            return "older_than_held", f"{where}: stamped before the held value ({iso(held.observed_at_s)})"
        if reading.observed_at_s == held.observed_at_s and value == held.value:
            return "unchanged", where
    return "accept", where
