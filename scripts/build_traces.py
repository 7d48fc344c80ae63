"""Build the committed grid traces and the AWS latency matrix from the raw shared data, reproducibly.

Usage: python scripts/build_traces.py [--shared ../shared/data] [--out grid/data/traces]
                                      [--latency-out fleet/data/aws_interregion_p50_ms.json]

Every output is a pure function of the input files: gzip is written with mtime 0 and no file
name, and nothing in the output depends on the paths given, so a rebuild is byte-identical.
"""

from __future__ import annotations

import argparse
import gzip
import io
import json
import math
import os
import sys
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Final

import numpy as np
import numpy.typing as npt

# Run as a plain script (python scripts/build_traces.py), Python puts scripts/ on sys.path, not
# the repository root, so the router package would only import once installed.
_REPO_ROOT: Final = Path(__file__).resolve().parent.parent
if str(_REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(_REPO_ROOT))

from grid.eia930 import (  # noqa: E402
    FORECAST_RATIO_MAX,
    FORECAST_RATIO_MIN,
    GLOBAL_OUTLIER_FACTOR,
    SPIKE_FACTOR,
    RawSeries,
    forecast_blanked_lines,
    read_demand,
    read_demand_with_forecast,
    read_fuelmix_carbon,
    read_price,
)

HOUR: Final = 3600

# Public trace contract: the column order, and how each column is rounded.
CONTRACT_COLUMNS: Final = (
    "demand_mw",
    "demand_forecast_mw",
    "carbon_g_per_kwh",
    "price_usd_per_mwh",
    "dr_level",
)
DECIMALS: Final[dict[str, int]] = {
    "demand_mw": 0,
    "demand_forecast_mw": 0,
    "carbon_g_per_kwh": 1,
    "price_usd_per_mwh": 2,
}

# Attribution, worded as in the shared data README (folder, what, resolution, source, licence).
_CREDIT_EIA: Final = (
    "EIA-930 is US public domain; repackaging CC-BY-4.0 (credit: Ruggles et al., EIA cleaned hourly demand data)"
)
ATTRIBUTION: Final[dict[str, tuple[str, ...]]] = {
    "eia930/demand_2020_2024": (
        "balancing-authority demand, MW, UTC; PJM-DOM is the Dominion (northern Virginia) sub-region: raw, "
        "anomaly category, cleaned",
        "hourly, 2020-01-01 .. 2024-12-31",
        "truggles/EIA_Cleaned_Hourly_Electricity_Demand_Data, data/release_2025_Jan_include_subregions/...",
        _CREDIT_EIA,
    ),
    "eia930/demand_forecast_2015_2019": (
        "demand plus the balancing authority's own day-ahead demand forecast, MW",
        "hourly, 2015-07 .. 2019-07",
        "truggles/EIA_Cleaned_Hourly_Electricity_Demand_Data, data/release_2019_Oct/balancing_authorities/",
        _CREDIT_EIA,
    ),
    "eia930/fuelmix_2022": (
        "net generation by fuel, MW, and average carbon intensity avg_CI, gCO2/kWh, UTC",
        "hourly, 2022",
        "HewlettPackard/dc-rl, data/CarbonIntensity/",
        "MIT; source EIA-930",
    ),
    "prices_2023": (
        "wholesale electricity price, USD/MWh (CAISO day-ahead NP15; ERCOT day-ahead hub average; "
        "PJM real-time Dominion zone); negative prices occur",
        "hourly, 2023",
        "HewlettPackard/sustain-cluster, data/electricity_prices/standardized/",
        "MIT; underlying ISO market data",
    ),
    "latency/aws_interregion_p50_1y_ms.json": (
        "median round-trip time between 32 AWS regions, ms, one-year window",
        "snapshot",
        "oaustegard/oaustegard.github.io (snapshot of the public cloudping.co figures)",
        "Apache-2.0",
    ),
}

_DEMAND: Final = "eia930/demand_2020_2024"
_FORECAST: Final = "eia930/demand_forecast_2015_2019"
_FUELMIX: Final = "eia930/fuelmix_2022"
_PRICES: Final = "prices_2023"
_LATENCY: Final = "latency/aws_interregion_p50_1y_ms.json"


def _hour(stamp: str) -> int:
    return int(datetime.fromisoformat(stamp).replace(tzinfo=UTC).timestamp())


@dataclass(frozen=True)
class Feed:
    """One column of one zone: which reader, which file, and which hours of it to use."""

    zone: str
    column: str
    folder: str
    filename: str
    first: int
    last: int


@dataclass(frozen=True)
class TraceSpec:
    """One output trace: its span (inclusive hour starts), zones, columns and feeds."""

    filename: str
    title: str
    first: int
    last: int
    zones: tuple[str, ...]
    columns: tuple[str, ...]
    feeds: tuple[Feed, ...]


def _grid_2022() -> TraceSpec:
    first, last = _hour("2021-01-01 00:00"), _hour("2022-12-31 23:00")
    carbon_first = _hour("2022-01-01 00:00")
    zones = ("AZPS", "BPAT", "CISO", "ERCO", "MISO", "NYIS", "PJM", "PJM-DOM", "SOCO")
    feeds: list[Feed] = []
    for zone in zones:
        demand_file = "PJM-DOM_cleaned_demand.csv.gz" if zone == "PJM-DOM" else f"{zone}_raw_demand.csv.gz"
        feeds.append(Feed(zone, "demand_mw", _DEMAND, demand_file, first, last))
        if zone != "PJM-DOM":  # the fuel-mix files have no Dominion sub-region
            feeds.append(Feed(zone, "carbon_g_per_kwh", _FUELMIX, f"{zone}_NG_avgCI_2022.csv.gz", carbon_first, last))
    return TraceSpec(
        filename="grid_2022.csv.gz",
        title="hourly demand (MW) and average carbon intensity (gCO2/kWh) per balancing authority; "
        "2021 rows are demand-only warm-up history for the trailing 365-day peak",
        first=first,
        last=last,
        zones=zones,
        columns=("demand_mw", "carbon_g_per_kwh"),
        feeds=tuple(feeds),
    )


def _prices_2023() -> TraceSpec:
    first, last = _hour("2022-01-01 00:00"), _hour("2023-12-31 23:00")
    price_first = _hour("2023-01-01 00:00")
    price_files = {
        "CISO": "US-CAL-CISO_electricity_prices_2023.csv.gz",
        "ERCO": "US-TEX-ERCO_electricity_prices_2023.csv.gz",
        "PJM-DOM": "US-MIDA-PJM_electricity_prices_2023.csv.gz",
    }
    demand_files = {
        "CISO": "CISO_raw_demand.csv.gz",
        "ERCO": "ERCO_raw_demand.csv.gz",
        "PJM-DOM": "PJM-DOM_cleaned_demand.csv.gz",
    }
    feeds: list[Feed] = []
    for zone in sorted(price_files):
        feeds.append(Feed(zone, "demand_mw", _DEMAND, demand_files[zone], first, last))
        feeds.append(Feed(zone, "price_usd_per_mwh", _PRICES, price_files[zone], price_first, last))
    return TraceSpec(
        filename="prices_2023.csv.gz",
        title="hourly demand (MW) and wholesale price (USD/MWh): CISO = CAISO day-ahead NP15, "
        "ERCO = ERCOT day-ahead hub average, PJM-DOM = PJM real-time Dominion zone; 2022 rows are "
        "demand-only warm-up history",
        first=first,
        last=last,
        zones=tuple(sorted(price_files)),
        columns=("demand_mw", "price_usd_per_mwh"),
        feeds=tuple(feeds),
    )


def _demand_forecast() -> TraceSpec:
    # The files' own span; _load checks that every feed covers exactly this.
    first, last = _hour("2015-07-02 00:00"), _hour("2019-07-01 23:00")
    zones = ("CISO", "ERCO", "PJM")
    feeds: list[Feed] = []
    for zone in zones:
        feeds.append(Feed(zone, "demand_mw", _FORECAST, f"{zone}.csv.gz", first, last))
        feeds.append(Feed(zone, "demand_forecast_mw", _FORECAST, f"{zone}.csv.gz", first, last))
    return TraceSpec(
        filename="demand_forecast_2015_2019.csv.gz",
        title="hourly demand and the balancing authority's own day-ahead demand forecast (MW)",
        first=first,
        last=last,
        zones=zones,
        columns=("demand_mw", "demand_forecast_mw"),
        feeds=tuple(feeds),
    )


TRACES: Final[tuple[Callable[[], TraceSpec], ...]] = (_grid_2022, _prices_2023, _demand_forecast)

_RULES: Final = (
    f"screening: EMPTY/MISSING cells; demand <= 0 or >= {GLOBAL_OUTLIER_FACTOR:g}x the file median; "
    f"single-hour demand spikes or dips beyond {SPIKE_FACTOR:g}x both neighbours; rows of the PJM-DOM "
    f"file whose category is not OKAY; forecasts outside {FORECAST_RATIO_MIN:g}..{FORECAST_RATIO_MAX:g}x "
    "the hour's cleaned demand: all become empty cells (see grid/eia930.py)"
)


class _Loader:
    """Reads each raw file once, whichever columns of it are used."""

    def __init__(self, shared: Path) -> None:
        self.shared = shared
        self._cache: dict[tuple[str, str, str], RawSeries] = {}

    def series(self, feed: Feed) -> RawSeries:
        key = (feed.folder, feed.filename, feed.column)
        if key not in self._cache:
            path = self.shared / feed.folder / feed.filename
            if feed.folder == _FORECAST:
                demand, forecast = read_demand_with_forecast(path)
                self._cache[(feed.folder, feed.filename, "demand_mw")] = demand
                self._cache[(feed.folder, feed.filename, "demand_forecast_mw")] = forecast
            elif feed.column == "demand_mw":
                self._cache[key] = read_demand(path)
            elif feed.column == "carbon_g_per_kwh":
                self._cache[key] = read_fuelmix_carbon(path)
            elif feed.column == "price_usd_per_mwh":
                self._cache[key] = read_price(path)
            else:
                raise ValueError(f"no reader for column {feed.column!r}")
        return self._cache[key]


def _place(spec: TraceSpec, feed: Feed, series: RawSeries) -> npt.NDArray[np.float64]:
    """Put a series on the trace's hourly grid: NaN outside the feed's hours or where missing."""
    hours = (spec.last - spec.first) // HOUR + 1
    out = np.full(hours, np.nan)
    if np.any(series.times % HOUR != 0):
        raise SystemExit(f"{series.source}: timestamps not on whole hours; the traces are hourly")
    keep = (series.times >= feed.first) & (series.times <= feed.last)
    # A gap in the file itself would leave a silently empty hour: the trace is meant to show
    # every gap, but the feed should cover its whole period, so say so.
    expected = (feed.last - feed.first) // HOUR + 1
    if int(np.count_nonzero(keep)) != expected:
        raise SystemExit(f"{series.source}: covers {int(np.count_nonzero(keep))} of the {expected} hours needed")
    out[(series.times[keep] - spec.first) // HOUR] = series.values[keep]
    return out


def _cell(value: float, decimals: int) -> str:
    if math.isnan(value):
        return ""  # contract: missing is an empty cell, never 0
    text = f"{value:.{decimals}f}"
    # Rounding a tiny negative price gives "-0.00"; it is the same number as "0.00".
    if text.startswith("-") and float(text) == 0.0:
        text = text[1:]
    return text


def _stamp(epoch: int) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _comments(spec: TraceSpec) -> list[str]:
    folders = sorted({feed.folder for feed in spec.feeds})
    lines = [
        f"gridshift trace {spec.filename}: {spec.title}",
        "built by scripts/build_traces.py (python scripts/build_traces.py) from the shared data folder; "
        "times are UTC hour starts; a missing or rejected value is an empty cell, never 0",
        _RULES,
    ]
    for folder in folders:
        what, resolution, repository, licence = ATTRIBUTION[folder]
        lines.append(f"source {folder}: {what}; {resolution}; repository {repository}; licence: {licence}")
    return [f"# {line}" for line in lines]


@dataclass(frozen=True)
class Built:
    """What one trace came out as, for the summary."""

    path: Path
    size: int
    rows: int
    zone_rows: dict[str, int]
    missing: dict[tuple[str, str], tuple[int, int]]
    """(zone, column) -> (empty cells in the column's source period, hours in that period)."""


def build_trace(spec: TraceSpec, loader: _Loader, out_dir: Path) -> Built:
    columns = tuple(c for c in CONTRACT_COLUMNS if c in spec.columns)
    hours = (spec.last - spec.first) // HOUR + 1
    grid: dict[tuple[str, str], npt.NDArray[np.float64]] = {}
    missing: dict[tuple[str, str], tuple[int, int]] = {}
    for feed in spec.feeds:
        values = _place(spec, feed, loader.series(feed))
        grid[(feed.zone, feed.column)] = values
        period = slice((feed.first - spec.first) // HOUR, (feed.last - spec.first) // HOUR + 1)
        missing[(feed.zone, feed.column)] = (
            int(np.count_nonzero(np.isnan(values[period]))),
            period.stop - period.start,
        )
    empty = np.full(hours, np.nan)
    cells = {
        key: [_cell(float(v), DECIMALS[key[1]]) for v in grid.get(key, empty)]
        for key in ((zone, column) for zone in spec.zones for column in columns)
    }
    zones = sorted(spec.zones)  # contract: rows sorted by time, then zone
    lines = [*_comments(spec), ",".join(("time", "zone", *columns))]
    for i in range(hours):
        stamp = _stamp(spec.first + i * HOUR)
        for zone in zones:
            lines.append(",".join((stamp, zone, *(cells[(zone, column)][i] for column in columns))))
    payload = _gzip(("\n".join(lines) + "\n").encode("utf-8"))
    path = out_dir / spec.filename
    _write_atomically(path, payload)
    return Built(path, len(payload), hours * len(zones), dict.fromkeys(zones, hours), missing)


def _gzip(data: bytes) -> bytes:
    buffer = io.BytesIO()
    # mtime=0 and an empty name keep the gzip header free of build time and output path.
    with gzip.GzipFile(filename="", mode="wb", fileobj=buffer, compresslevel=9, mtime=0) as stream:
        stream.write(data)
    return buffer.getvalue()


def _write_atomically(path: Path, payload: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    # Readers (and a concurrent test run) never see a half-written file.
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(payload)
        # mkstemp creates the file 0600; a committed data file should be world-readable.
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def build_latency(shared: Path, out_path: Path) -> int:
    """Write the AWS p50 RTT matrix in the project's shape; return the number of regions."""
    raw = json.loads((shared / _LATENCY).read_text(encoding="utf-8"))
    meta = raw["metadata"]
    if meta.get("percentile") != "p_50" or meta.get("unit") != "milliseconds":
        raise SystemExit(f"{_LATENCY}: expected p_50 in milliseconds, found {meta}")
    data: dict[str, dict[str, float]] = raw["data"]
    regions = sorted(data)
    rtt: dict[str, dict[str, float]] = {}
    for src in regions:
        if sorted(data[src]) != regions:
            raise SystemExit(f"{_LATENCY}: row {src!r} does not list every region")
        row = {dst: float(data[src][dst]) for dst in regions}
        if not all(math.isfinite(v) and v >= 0.0 for v in row.values()):
            raise SystemExit(f"{_LATENCY}: row {src!r} has a negative or non-finite RTT")
        rtt[src] = row
    what, resolution, repository, licence = ATTRIBUTION[_LATENCY]
    document = {
        "attribution": f"{what} ({resolution}); source: {repository}; licence: {licence}; "
        "derived copy (values as given) built by scripts/build_traces.py",
        "unit": "ms",
        "percentile": "p50",
        "rtt_ms": rtt,
    }
    text = json.dumps(document, indent=1, sort_keys=True, ensure_ascii=False) + "\n"
    _write_atomically(out_path, text.encode("utf-8"))
    return len(regions)


def _summary(built: Built, columns: Sequence[str], blanked: dict[str, int]) -> str:
    out = [f"{built.path}: {built.size} bytes, {built.rows} rows"]
    for zone, rows in built.zone_rows.items():
        parts = []
        for column in columns:
            if (zone, column) in built.missing:
                gaps, period = built.missing[(zone, column)]
                parts.append(f"{column} missing {gaps}/{period}")
            else:
                parts.append(f"{column} (no source)")
        extra = f", forecasts blanked by ratio rule {blanked[zone]}" if zone in blanked else ""
        out.append(f"  {zone:8s} {rows} rows; " + "; ".join(parts) + extra)
    return "\n".join(out)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--shared", type=Path, default=_REPO_ROOT.parent / "shared" / "data")
    parser.add_argument("--out", type=Path, default=_REPO_ROOT / "grid" / "data" / "traces")
    parser.add_argument(
        "--latency-out", type=Path, default=_REPO_ROOT / "fleet" / "data" / "aws_interregion_p50_ms.json"
    )
    args = parser.parse_args(argv)
    shared: Path = args.shared
    if not (shared / "README.md").is_file():
        parser.error(f"{shared} does not look like the shared data folder (no README.md)")
    loader = _Loader(shared)
    for make in TRACES:
        spec = make()
        built = build_trace(spec, loader, args.out)
        blanked = {}
        if any(feed.column == "demand_forecast_mw" for feed in spec.feeds):
            blanked = {zone: len(forecast_blanked_lines(shared / _FORECAST / f"{zone}.csv.gz")) for zone in spec.zones}
        print(_summary(built, tuple(c for c in CONTRACT_COLUMNS if c in spec.columns), blanked))
    regions = build_latency(shared, args.latency_out)
    print(f"{args.latency_out}: {regions} regions")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
