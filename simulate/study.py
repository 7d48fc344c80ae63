"""The curtailment study over zones and rates: per zone headroom, curtailment hours and event lengths; totals; the
published figures it is compared with; the stable JSON (schema gridshift.curtailment_study/v1)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Final

from simulate.curtailment import RateResult, Thresholds, ZoneModel, rate_result
from simulate.curtailment_data import CleaningReport, StudyDataError, check_zones, load_zone_demand
from simulate.fleet_fit import LEVERS, FleetFit, RateFit, ZoneFit

STUDY_SCHEMA: Final = "gridshift.curtailment_study/v1"
DEFAULT_RATES_PCT: Final = (0.25, 0.5, 1.0, 5.0)
DEFAULT_YEARS: Final = (2016, 2024)
PUBLISHED_TOTAL_GW: Final[dict[float, float]] = {0.25: 76.0, 0.5: 98.0, 1.0: 126.0}
"""Norris et al., "Rethinking Load Growth" (Duke Nicholas Institute, February 2025): 22 authorities, 2016-2024."""


@dataclass(frozen=True)
class ZoneStudy:
    zone: str
    thresholds: Thresholds
    cleaning: CleaningReport
    years: tuple[int, ...]
    results: tuple[RateResult, ...]
    fit: ZoneFit | None = None  # with --fleet-mix: what that mix delivers here

    def to_dict(self) -> dict[str, object]:
        body: dict[str, object] = {
            "zone": self.zone,
            "years": list(self.years),
            "thresholds": self.thresholds.to_dict(),
            "cleaning": self.cleaning.to_dict(),
            "results": [result.to_dict() for result in self.results],
        }
        if self.fit is not None:
            body["fleet_mix"] = self.fit.to_dict()
        return body


@dataclass(frozen=True)
class CurtailmentStudy:
    zones: tuple[ZoneStudy, ...]
    rates_pct: tuple[float, ...]
    years: tuple[int, int]
    mix_label: str | None = None

    def absorbable_mw(self) -> float:
        return sum(zone.fit.absorbable_mw for zone in self.zones if zone.fit is not None)

    def with_backup(self) -> dict[str, dict[str, float]]:
        """Per rate, over zones: the MW absorbed when each MW carries the backup its zone needs, and the most any
        zone needs (the mix's fits of that rate)."""
        fits = [fit for zone in self.zones if zone.fit is not None for fit in zone.fit.rates]
        body: dict[str, dict[str, float]] = {}
        for rate in self.rates_pct:
            of_rate = [fit for fit in fits if fit.rate_pct == rate]
            if not of_rate:
                continue
            body[_key(rate)] = {
                "absorbable_mw_total": round(sum(fit.absorbable_mw_with_backup for fit in of_rate), 1),
                "storage_mwh_per_mw_max": round(max(_storage(fit) for fit in of_rate), 4),
                "backup_mw_per_mw_max": round(max(_rating(fit) for fit in of_rate), 4),
            }
        return body

    def total_mw(self, rate_pct: float) -> float:
        return sum(r.headroom_mw for zone in self.zones for r in zone.results if r.rate_pct == rate_pct)

    def to_dict(self) -> dict[str, object]:
        totals = {_key(rate): round(self.total_mw(rate), 1) for rate in self.rates_pct}
        comparison = {
            _key(rate): {
                "published_gw": PUBLISHED_TOTAL_GW[rate],
                "ours_gw": round(self.total_mw(rate) / 1000.0, 2),
                "difference_pct": round(100.0 * (self.total_mw(rate) / 1000.0 / PUBLISHED_TOTAL_GW[rate] - 1.0), 2),
            }
            for rate in self.rates_pct
            if rate in PUBLISHED_TOTAL_GW
        }
        body: dict[str, object] = {
            "schema": STUDY_SCHEMA,
            "method": "Norris et al. 2025 (docs/simulate.md)",
            "years": list(self.years),
            "rates_pct": list(self.rates_pct),
            "zones": [zone.to_dict() for zone in self.zones],
            "total_headroom_mw": totals,
            "published_comparison": comparison,
        }
        if self.mix_label is not None:
            # Additive to v1: present only with --fleet-mix.
            body["fleet_mix"] = {
                "mix": self.mix_label,
                "levers": sorted(LEVERS),
                "absorbable_mw_total": round(self.absorbable_mw(), 1),
                "with_backup": self.with_backup(),
                "method": "the study's curtailed hours as import-limit events on a simulated region (docs/simulate.md)",
            }
        return body


def _key(rate_pct: float) -> str:
    return f"{rate_pct:g}"


def _storage(fit: RateFit) -> float:
    return 0.0 if fit.backup is None else fit.backup.storage_mwh_per_mw


def _rating(fit: RateFit) -> float:
    return 0.0 if fit.backup is None else fit.backup.backup_mw_per_mw


def parse_rates(text: str) -> tuple[float, ...]:
    try:
        rates = tuple(float(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise StudyDataError(f"--rates: not a list of numbers: {text!r}") from None
    if not rates or any(not 0.0 < rate < 100.0 for rate in rates):
        raise StudyDataError(f"--rates: every rate must be a percentage in (0, 100), got {text!r}")
    return rates


def parse_years(text: str) -> tuple[int, int]:
    first, _, last = text.partition("-")
    try:
        span = (int(first), int(last or first))
    except ValueError:
        raise StudyDataError(f"--years: expected FIRST-LAST, e.g. 2016-2024, got {text!r}") from None
    if not 2015 <= span[0] <= span[1] <= 2024:
        raise StudyDataError(f"--years: the data covers 2015 (from July) to 2024, got {text!r}")
    return span


ZoneMap = Callable[[Callable[[str], "ZoneStudy"], Sequence[str]], Iterable["ZoneStudy"]]
"""How the zones are studied: the builtin `map` (one after another), or a process pool's `map` (the CLI's
--workers): each zone is independent, and with a fleet mix its simulation is most of the time."""


def run_study(
    folder: Path,
    zones: Sequence[str],
    rates_pct: Sequence[float] = DEFAULT_RATES_PCT,
    years: tuple[int, int] = DEFAULT_YEARS,
    fit: FleetFit | None = None,
    map_zones: ZoneMap = map,
) -> CurtailmentStudy:
    check_zones(tuple(zones))
    if not folder.is_dir():
        raise StudyDataError(f"demand folder {folder} does not exist (the shared data's eia930/demand_2015_2024)")
    if fit is not None and zones:
        # The mix's unit-scale draw is measured once, on the first zone, before the zones part ways: the answer is
        # then the same whichever process studies which zone.
        fit.ensure_baseline(load_zone_demand(folder, zones[0], years[0], years[1]))
    one_zone = partial(zone_study, folder, rates_pct=tuple(rates_pct), years=years, fit=fit)
    studies = tuple(map_zones(one_zone, zones))
    return CurtailmentStudy(studies, tuple(rates_pct), years, None if fit is None else fit.mix.label)


def zone_study(
    folder: Path, zone: str, *, rates_pct: tuple[float, ...], years: tuple[int, int], fit: FleetFit | None
) -> ZoneStudy:
    year_list = tuple(range(years[0], years[1] + 1))
    demand = load_zone_demand(folder, zone, years[0], years[1])
    model = ZoneModel(demand, year_list)
    if not model.years:
        raise StudyDataError(f"zone {zone!r}: no observed hour in {years[0]}-{years[1]}")
    results = tuple(rate_result(model, rate) for rate in rates_pct)
    used = tuple(year for year in year_list if year in set(_years_with_data(model)))
    zone_fit = None if fit is None else fit.check_zone(demand, model, [(r.rate_pct, r.headroom_mw) for r in results])
    return ZoneStudy(zone, model.thresholds, demand.report, used, results, zone_fit)


def _years_with_data(model: ZoneModel) -> list[int]:
    from simulate.curtailment import years_of

    observed = model.times_s[~(model.gap_mw != model.gap_mw)]
    return sorted({int(y) for y in years_of(observed)})
