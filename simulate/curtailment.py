"""Curtailment-enabled headroom (the method of Norris et al. 2025): how much constant new load a balancing authority
absorbs if that load accepts a given average annual curtailment below seasonal historic peaks.

Per zone: a constant load L MW is added to every hour; in April-October the ceiling is the highest summer peak
(June-August, over all study years), in November-March the highest winter peak (December-February). Where the
application window itself holds a higher peak than its core months (a heat wave in September, a cold snap in
March or November: the study's documented exceptions, here one general rule) that peak is the ceiling instead, so
the zone's own historic demand is never curtailed. Curtailed MWh in an hour = the excess of demand + L over the
ceiling, at most L. Each year's rate = curtailed MWh / (L x 8760); L is solved so the mean over years equals the rate.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

import numpy as np

from grid.trace import FloatArray, IntArray
from simulate.curtailment_data import ZoneDemand

SUMMER_CORE: Final = (6, 7, 8)
SUMMER_WINDOW: Final = (4, 5, 6, 7, 8, 9, 10)
WINTER_CORE: Final = (12, 1, 2)
WINTER_WINDOW: Final = (11, 12, 1, 2, 3)
KEEP_SHARES: Final = (0.5, 0.75, 0.9)
"""Curtailed hours are also sorted by how much of the new load they keep: at least 50 / 75 / 90 %."""
_TOLERANCE_MW: Final = 0.01


def months_of(times_s: IntArray) -> IntArray:
    return (times_s.astype("datetime64[s]").astype("datetime64[M]").astype(np.int64) % 12 + 1).astype(np.int64)


def years_of(times_s: IntArray) -> IntArray:
    return (times_s.astype("datetime64[s]").astype("datetime64[Y]").astype(np.int64) + 1970).astype(np.int64)


@dataclass(frozen=True)
class Thresholds:
    summer_mw: float
    winter_mw: float
    summer_exception: bool  # the summer window's peak lay outside June-August
    winter_exception: bool

    def to_dict(self) -> dict[str, object]:
        return {
            "summer_mw": round(self.summer_mw, 1),
            "winter_mw": round(self.winter_mw, 1),
            "summer_peak_outside_core_months": self.summer_exception,
            "winter_peak_outside_core_months": self.winter_exception,
        }


def seasonal_thresholds(times_s: IntArray, demand_mw: FloatArray) -> Thresholds:
    months = months_of(times_s)

    def peak(selected: tuple[int, ...]) -> float:
        values = demand_mw[np.isin(months, selected)]
        values = values[~np.isnan(values)]
        return float(values.max()) if len(values) else float("nan")

    summer_core, summer_window = peak(SUMMER_CORE), peak(SUMMER_WINDOW)
    winter_core, winter_window = peak(WINTER_CORE), peak(WINTER_WINDOW)
    return Thresholds(
        summer_mw=max(summer_core, summer_window),
        winter_mw=max(winter_core, winter_window),
        summer_exception=summer_window > summer_core,
        winter_exception=winter_window > winter_core,
    )


def threshold_series(times_s: IntArray, thresholds: Thresholds) -> FloatArray:
    summer = np.isin(months_of(times_s), SUMMER_WINDOW)
    return np.where(summer, thresholds.summer_mw, thresholds.winter_mw)


@dataclass(frozen=True)
class _Year:
    gaps: FloatArray  # ceiling - demand of each observed hour, sorted ascending
    prefix: FloatArray  # cumulative sums of gaps, with a leading 0
    over_mw: float  # sum of the negative gaps: demand already above the ceiling (curtails the whole load)
    scale: float  # 8760 x observed / hours in the year: the denominator's hours


class ZoneModel:
    """One zone's hours against its ceilings, ready to evaluate any load L in O(years x log hours)."""

    def __init__(self, zone: ZoneDemand, years: Sequence[int]) -> None:
        self.zone = zone.zone
        self.thresholds = seasonal_thresholds(zone.times_s, zone.demand_mw)
        self.ceiling = threshold_series(zone.times_s, self.thresholds)
        self.gap_mw = self.ceiling - zone.demand_mw  # NaN where the hour is left out
        self.times_s = zone.times_s
        year_of = years_of(zone.times_s)
        self.years: list[_Year] = []
        for year in years:
            in_year = year_of == year
            gaps = self.gap_mw[in_year]
            observed = gaps[~np.isnan(gaps)]
            if len(observed) == 0:
                continue
            observed.sort()
            scale = 8760.0 * len(observed) / int(np.count_nonzero(in_year))
            prefix = np.concatenate(([0.0], np.cumsum(observed)))
            self.years.append(_Year(observed, prefix, float(observed[observed < 0].sum()), scale))

    def rate(self, load_mw: float) -> float:
        """Mean over years of curtailed MWh / (L x 8760)."""
        if load_mw <= 0:
            return 0.0
        total = 0.0
        for year in self.years:
            below = int(np.searchsorted(year.gaps, load_mw, side="left"))  # hours with gap < L: some curtailment
            # Each such hour curtails L - max(gap, 0): below x L, less the positive gaps' sum.
            curtailed = load_mw * below - float(year.prefix[below]) + year.over_mw
            total += curtailed / (load_mw * year.scale)
        return total / len(self.years)

    def solve(self, rate: float) -> float:
        """The largest L (MW) whose mean annual curtailment rate does not exceed `rate` (a fraction)."""
        low, high = 0.0, max(float(np.nanmax(self.ceiling)), 1.0)
        while self.rate(high) < rate:
            high *= 2.0
        while high - low > _TOLERANCE_MW:
            middle = (low + high) / 2.0
            if self.rate(middle) <= rate:
                low = middle
            else:
                high = middle
        return low

    def curtailed_mw(self, load_mw: float) -> FloatArray:
        """Hour by hour, the MW of the new load curtailed (NaN where the hour is left out)."""
        return np.clip(load_mw - self.gap_mw, 0.0, load_mw)


@dataclass(frozen=True)
class RateResult:
    rate_pct: float
    headroom_mw: float
    achieved_rate_pct: float
    curtailed_hours_per_year: float
    mean_event_hours: float
    max_event_hours: int
    keep_shares: dict[str, float]  # "50" -> share of curtailed hours keeping at least 50 % of the load

    def to_dict(self) -> dict[str, object]:
        return {
            "rate_pct": self.rate_pct,
            "headroom_mw": round(self.headroom_mw, 1),
            "achieved_rate_pct": round(self.achieved_rate_pct, 4),
            "curtailed_hours_per_year": round(self.curtailed_hours_per_year, 1),
            "mean_event_hours": round(self.mean_event_hours, 2),
            "max_event_hours": self.max_event_hours,
            "share_of_curtailed_hours_keeping_pct": {k: round(v, 4) for k, v in self.keep_shares.items()},
        }


def event_lengths(curtailed: FloatArray) -> IntArray:
    """Lengths (hours) of runs of consecutive curtailed hours; a left-out hour ends a run."""
    on = np.nan_to_num(curtailed, nan=0.0) > 0
    edges = np.diff(np.concatenate(([0], on.astype(np.int8), [0])))
    return (np.flatnonzero(edges == -1) - np.flatnonzero(edges == 1)).astype(np.int64)


def rate_result(model: ZoneModel, rate_pct: float) -> RateResult:
    load = model.solve(rate_pct / 100.0)
    curtailed = model.curtailed_mw(load)
    hours = curtailed[np.nan_to_num(curtailed, nan=0.0) > 0]
    lengths = event_lengths(curtailed)
    years = max(len(model.years), 1)
    keep = {
        f"{round(share * 100)}": float(np.mean(hours <= (1 - share) * load)) if len(hours) else 1.0
        for share in KEEP_SHARES
    }
    return RateResult(
        rate_pct=rate_pct,
        headroom_mw=load,
        achieved_rate_pct=100.0 * model.rate(load),
        curtailed_hours_per_year=len(hours) / years,
        mean_event_hours=float(lengths.mean()) if len(lengths) else 0.0,
        max_event_hours=int(lengths.max()) if len(lengths) else 0,
        keep_shares=keep,
    )
