"""The fleet-mix sweep: the same fleet and window under mixes from mostly real-time to mostly training and batch,
with and without gridshift's levers, tabulating flexible fraction and sustained shed against the mix."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any, Final

from fleet.times import iso
from grid.context import FleetContext
from grid.trace import SignalReader
from policies.calibration import Calibration
from simulate.engine import SimulationSpec, simulate_fleet
from simulate.mix import WorkloadMix, mix_from
from simulate.results import fleet_totals

SWEEP_SCHEMA: Final = "gridshift.simulation_sweep/v1"
REALTIME_SHARES: Final = (0.9, 0.7, 0.5, 0.3, 0.1)
FLEXIBLE_SPLIT: Final = {"tolerant": 0.25, "batch": 0.4, "training": 0.35}
"""How the non-real-time share divides in the default sweep (documented in docs/simulate.md)."""


def default_mixes() -> list[WorkloadMix]:
    return [
        mix_from({"realtime": r, **{name: (1.0 - r) * part for name, part in FLEXIBLE_SPLIT.items()}})
        for r in REALTIME_SHARES
    ]


def run_sweep(
    context: FleetContext,
    reader: SignalReader,
    calibration: Calibration,
    spec: SimulationSpec,
    mixes: Sequence[WorkloadMix],
) -> dict[str, Any]:
    rows = []
    for mix in mixes:
        controlled = simulate_fleet(context, reader, calibration, replace(spec, mix=mix))
        baseline = simulate_fleet(context, reader, calibration, replace(spec, mix=mix, levers=frozenset()))
        totals = fleet_totals(controlled, baseline)
        rows.append(
            {
                "mix": mix.as_dict(),
                "flexible_share": round(mix.flexible_share, 4),
                "flexible_fraction": totals["flexible_fraction"],
                "mean_shed_mw_in_stress": totals["mean_shed_mw_in_stress"],
                "flexible_mw_mean": totals["flexible_mw_mean"],
                "carbon_t": totals["carbon_t"],
                "baseline_carbon_t": totals["baseline_carbon_t"],
                "realtime_slo_misses": totals["realtime_slo_misses"],
                "jobs_missed_deadline": totals["jobs_missed_deadline"],
            }
        )
    return {
        "schema": SWEEP_SCHEMA,
        "from": iso(spec.start_s),
        "to": iso(spec.end_s),
        "levers": sorted(spec.levers),
        "utilization": spec.utilization,
        "seed": spec.seed,
        "rows": rows,
    }
