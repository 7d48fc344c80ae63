"""The signal table: every grid signal column gridshift knows, with its unit, bounds and meaning, in one place.

Traces, live sources, the signal store, headroom, the fleet snapshot, metrics and the CLI all read this table; a
new signal is a new row here (plus, for a headroom signal, its term in grid/headroom.py and its weight in
fleet/headroom.py).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType


@dataclass(frozen=True)
class SignalColumn:
    """One signal column: what it measures and which values can be real."""

    name: str
    unit: str
    description: str
    non_negative: bool
    ceiling: float | None = None  # above this no real measurement in `unit` lies (a unit slip, kW read as MW)
    integer_range: tuple[int, int] | None = None  # a value on a fixed scale: an integer from low to high
    trace: bool = True  # a column of the trace-file contract; False: a feed-only extra, shown in health and metrics


# The lower-48 US peak is about 0.75 TW: a balancing authority above 1 TW is a unit slip (kW read as MW).
_MAX_MW = 1e6
# The dirtiest fuel (lignite) emits about 1,100 gCO2/kWh at the stack; 2,000 leaves room for any real mix.
CARBON_MAX_G_PER_KWH = 2000.0

SIGNAL_TABLE: tuple[SignalColumn, ...] = (
    SignalColumn("demand_mw", "MW", "Hourly demand of the balancing authority (EIA-930 D).", True, _MAX_MW),
    SignalColumn(
        "demand_forecast_mw", "MW", "The authority's own day-ahead demand forecast (EIA-930 DF).", True, _MAX_MW
    ),
    SignalColumn("carbon_g_per_kwh", "gCO2/kWh", "Carbon intensity of the zone's supply.", True, CARBON_MAX_G_PER_KWH),
    # Negative wholesale prices are real (surplus renewables), so price has no lower bound.
    SignalColumn("price_usd_per_mwh", "USD/MWh", "Wholesale energy price.", False),
    SignalColumn("dr_level", "level 0-3", "A demand-response level on the stress scale.", True, 3.0, (0, 3)),
    SignalColumn("net_generation_mw", "MW", "Net generation in the zone (EIA-930 NG).", True, _MAX_MW, trace=False),
    SignalColumn(
        "moer_percentile", "percentile 0-100", "WattTime's marginal-emissions percentile.", True, 100.0, trace=False
    ),
)
"""Every column, trace columns first in contract order (docs: trace files)."""

SIGNALS: Mapping[str, SignalColumn] = MappingProxyType({column.name: column for column in SIGNAL_TABLE})

SIGNAL_COLUMNS: tuple[str, ...] = tuple(column.name for column in SIGNAL_TABLE if column.trace)
"""Trace columns, in contract order."""

COLUMN_UNITS: Mapping[str, str] = MappingProxyType({column.name: column.unit for column in SIGNAL_TABLE})
"""Unit of every column a source may fill: the trace columns and the extra ones."""

EXTRA_COLUMNS: Mapping[str, str] = MappingProxyType(
    {column.name: column.unit for column in SIGNAL_TABLE if not column.trace}
)
"""Values a feed gives that no headroom term reads (shown in health and metrics only), with their units."""


def value_problem(column: str, value: float) -> tuple[str, str] | None:
    """Why `value` cannot be a real measurement of `column`, as (reason slug, explanation); None when it can.

    The reasons are stable strings (the signal store counts rejections under them): not_finite, negative,
    out_of_range (off a fixed scale), implausible (above the ceiling), unknown_column.
    """
    spec = SIGNALS.get(column)
    if spec is None:
        return "unknown_column", "no such column"
    if not math.isfinite(value):
        return "not_finite", "not a finite number"
    if spec.non_negative and value < 0:
        return "negative", "cannot be negative"
    if spec.integer_range is not None:
        low, high = spec.integer_range
        if not (value.is_integer() and low <= value <= high):
            return "out_of_range", f"must be an integer {low}..{high}"
    if spec.ceiling is not None and value > spec.ceiling:
        return "implausible", f"above {spec.ceiling:g} {spec.unit} (a unit slip?)"
    return None
