"""Curtailment-study demand: one hourly series per balancing authority, 2015-2024, joined and cleaned by stated rules.

The raw files are parsed by grid.eia930.read_demand (the one EIA-930 parser), which already blanks non-positive
values, values at or above 10x the file's median (PJM's 2,147,480,000 MW hour) and single-hour spikes. This module
joins the 2015-2020 and 2020-2024 files onto one hourly axis and fills short gaps; every rule counts what it changed,
so the study can say so (docs/simulate.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Final

import numpy as np

from fleet.errors import GridshiftError, TraceFormatError
from grid.eia930 import RawSeries, read_demand, read_demand_with_forecast
from grid.trace import FloatArray, IntArray

HOUR_S: Final = 3600

STUDY_ZONES: Final[tuple[str, ...]] = (
    "PJM",
    "MISO",
    "ERCO",
    "SWPP",
    "CISO",
    "NYIS",
    "ISNE",
    "SOCO",
    "TVA",
    "FPL",
    "DUK",
    "FPC",
    "CPLE",
    "SC",
    "SCEG",
    "BPAT",
    "AZPS",
    "SRP",
    "PACE",
    "PSCO",
    "PACW",
    "PGE",
)
"""The 22 balancing authorities of Norris et al. (2025), in the shared data folder's order."""

MAX_FILLED_GAP_H: Final = 24
"""Gaps up to this many hours are filled linearly between the neighbouring hours: a day of load follows its
neighbours closely enough that the seasonal-peak comparison is not affected. Longer gaps stay gaps: those hours are
left out of their year, and the year's rate is taken over the hours it has (never read as zero load)."""


PEAK_SPIKE_FACTOR: Final = 1.2
"""An hour above both neighbours by more than this factor is a reporting glitch, not a peak. grid.eia930's spike
rule (1.5x, for traces) lets through PJM's 192,229 MW (2020-07-28 17:00 UTC, 1.41x its neighbours) and 176,085 MW
(2020-07-29 21:00, 1.24x), which would set PJM's summer ceiling 25 % above its real peak. Real load is smooth at its
peaks: in the well-behaved files no hour stands above both neighbours by more than 1.1x (BPAT 1.2x)."""


class StudyDataError(GridshiftError):
    """The study's input is missing or unusable (an unknown zone, a missing file, a year without data)."""


@dataclass(frozen=True)
class CleaningReport:
    """What each rule changed in one zone's series (hours)."""

    zone: str
    sources: tuple[str, ...]
    hours: int  # on the hourly axis over the study's years
    rejected_by_parser: int  # rows blank (EMPTY), flagged (cleaned files) or rejected by grid.eia930's rules
    missing_in_files: int  # hours the files have no row for
    filled: int  # gaps of at most MAX_FILLED_GAP_H hours filled linearly
    peak_spikes: int  # single-hour peaks above both neighbours by more than PEAK_SPIKE_FACTOR, blanked
    left_out: int  # hours in longer gaps, excluded from their year

    def to_dict(self) -> dict[str, object]:
        return {
            "zone": self.zone,
            "sources": list(self.sources),
            "hours": self.hours,
            "rejected_by_parser": self.rejected_by_parser,
            "missing_in_files": self.missing_in_files,
            "peak_spikes_removed": self.peak_spikes,
            "filled_hours": self.filled,
            "left_out_hours": self.left_out,
        }


@dataclass(frozen=True)
class ZoneDemand:
    """A zone's hourly demand on a regular axis (NaN: a gap left out), with what cleaning did."""

    zone: str
    times_s: IntArray
    demand_mw: FloatArray
    report: CleaningReport


def _files(folder: Path, zone: str) -> tuple[Path, Path]:
    early = folder / f"{zone}_2015_2020_cleaned.csv.gz"
    # Where the repackager published a cleaned 2020-2024 file its flags are used; else the raw file, which the
    # parser's rules clean.
    late = folder / f"{zone}_2020_2024_cleaned.csv.gz"
    if not late.exists():
        late = folder / f"{zone}_2020_2024_raw.csv.gz"
    for path in (early, late):
        if not path.exists():
            raise StudyDataError(f"zone {zone!r}: {path} is missing (expected in {folder})")
    return early, late


def check_zones(zones: tuple[str, ...]) -> None:
    unknown = [zone for zone in zones if zone not in STUDY_ZONES]
    if unknown:
        raise StudyDataError(f"unknown zone(s) {unknown}; the study covers {list(STUDY_ZONES)}")
    if not zones:
        raise StudyDataError("no zones to study")


def _fill_short_gaps(values: FloatArray, max_gap: int) -> tuple[FloatArray, int]:
    """Linear fill of interior NaN runs of at most `max_gap`; returns the filled copy and how many hours it filled."""
    out = values.copy()
    missing = np.isnan(out)
    if not missing.any():
        return out, 0
    edges = np.diff(np.concatenate(([0], missing.astype(np.int8), [0])))
    starts = np.flatnonzero(edges == 1)
    ends = np.flatnonzero(edges == -1)  # exclusive
    filled = 0
    for start, end in zip(starts, ends, strict=True):
        if start == 0 or end == len(out) or end - start > max_gap:
            continue  # an open end has no second neighbour; a long gap is not guessed
        left, right = out[start - 1], out[end]
        steps = np.arange(1, end - start + 1, dtype=np.float64) / (end - start + 1)
        out[start:end] = left + (right - left) * steps
        filled += int(end - start)
    return out, filled


def _read(path: Path) -> RawSeries:
    # The 2015-2020 files carry the authority's day-ahead forecast as a fifth column; the study uses demand only.
    try:
        return read_demand(path)
    except TraceFormatError as error:
        try:
            return read_demand_with_forecast(path)[0]
        except TraceFormatError:
            raise error from None


def load_zone_demand(folder: Path, zone: str, first_year: int, last_year: int) -> ZoneDemand:
    """The zone's demand for whole years first_year..last_year (UTC), joined, cleaned and gap-filled."""
    check_zones((zone,))
    early_path, late_path = _files(folder, zone)
    early, late = _read(early_path), _read(late_path)
    start = int(np.datetime64(f"{first_year}-01-01T00:00:00", "s").astype(np.int64))
    end = int(np.datetime64(f"{last_year + 1}-01-01T00:00:00", "s").astype(np.int64))
    times = np.arange(start, end, HOUR_S, dtype=np.int64)
    values = np.full(len(times), np.nan)
    present = np.zeros(len(times), dtype=bool)
    # The later file wins in the January-June 2020 overlap: it is the newer release of the same hours.
    for series in (early, late):
        inside = (series.times >= start) & (series.times < end) & (series.times % HOUR_S == 0)
        rows = ((series.times[inside] - start) // HOUR_S).astype(np.int64)
        vals = series.values[inside]
        keep = ~np.isnan(vals)
        values[rows[keep]] = vals[keep]
        present[rows] = True
    if not present.any():
        raise StudyDataError(f"zone {zone!r}: no data in {first_year}-{last_year}")
    missing_in_files = int(np.count_nonzero(~present))
    rejected = int(np.count_nonzero(present & np.isnan(values)))
    before = np.concatenate(([np.nan], values[:-1]))
    after = np.concatenate((values[1:], [np.nan]))
    with np.errstate(invalid="ignore"):
        spikes = values > PEAK_SPIKE_FACTOR * np.fmax(before, after)
    spikes &= np.isfinite(before) & np.isfinite(after)
    values[spikes] = np.nan
    filled_values, filled = _fill_short_gaps(values, MAX_FILLED_GAP_H)
    report = CleaningReport(
        zone=zone,
        sources=(early_path.name, late_path.name),
        hours=len(times),
        rejected_by_parser=rejected,
        missing_in_files=missing_in_files,
        peak_spikes=int(np.count_nonzero(spikes)),
        filled=filled,
        left_out=int(np.count_nonzero(np.isnan(filled_values))),
    )
    return ZoneDemand(zone, times, filled_values, report)
