"""The `gridshift up` panel: regions (grid, rung, knobs, draw against baseline, flexible kW, battery, request rate),
where tolerant work from each origin goes, DR events and jobs, drawn from one control-history sample."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from fleet.config import FleetConfig
from fleet.times import iso
from grid.headroom import STRESS_NAMES
from policies.control_history import ControlSample

STRESS_STYLES = {0: "green", 1: "yellow", 2: "dark_orange", 3: "bold red"}


def _kw(value: float | None) -> str:
    return "-" if value is None else f"{value:,.0f}"


def split_line(origin: str, pairs: Sequence[tuple[str, float]]) -> str:
    targets = ", ".join(f"{region} {share:.0%}" for region, share in pairs)
    return f"tolerant from {origin:<12} -> {targets}"


def fleet_panel(fleet: FleetConfig, sample: ControlSample, jobs: Sequence[Mapping[str, Any]] = ()) -> RenderableType:
    """One screen on what the fleet does now."""
    fresh = any(r.rung is not None for r in sample.regions)
    total_rps = sum(r.requests_per_s for r in sample.regions)
    header = Text.assemble(
        ("gridshift ", "bold"),
        f"{fleet.name}  trace time {iso(sample.at_s)}  control state v{sample.version}  ",
        ("policy fresh" if fresh else "policy NOT fresh (safe defaults)", "green" if fresh else "bold red"),
        f"  {total_rps:,.1f} req/s in all",
    )
    table = Table(box=None, pad_edge=False, header_style="dim")
    for column in ("region", "zone", "headroom", "stress", "rung", "knobs (source)", "grid / baseline kW"):
        table.add_column(column)
    for column in ("flexible kW", "battery", "req/s", "health"):
        table.add_column(column)
    zones = {region.name: region.zone for region in fleet.regions}
    for r in sample.regions:
        stress = Text(f"{r.stress_level} {STRESS_NAMES[r.stress_level]}", style=STRESS_STYLES[r.stress_level])
        if r.event_level is not None:
            stress.append(f" (DR {r.event_level})", style="bold red")
        knobs = (
            f"tol {r.precision['tolerant']} rt {r.precision['realtime']} b<={r.max_batch_size} "
            f"c<={r.max_concurrency} ({r.knob_source})"
        )
        battery = "-" if r.battery_soc is None else f"{r.battery_soc:.0%} {_kw(r.battery_kw)} kW"
        health = ("up" if r.healthy else "DOWN") + (" stale" if r.stale else "")
        table.add_row(
            r.region,
            zones.get(r.region, "-"),
            f"{r.headroom:.3f}",
            stress,
            "-" if r.rung is None else str(r.rung),
            knobs,
            f"{_kw(r.grid_kw)} / {_kw(r.baseline_kw)}",
            _kw(sum(r.flexible_kw.values())) if r.flexible_kw else "-",
            battery,
            f"{r.requests_per_s:,.1f}",
            health,
        )
    lines: list[RenderableType] = [header, table]
    for origin, pairs in sample.split.items():
        moved = sample.shifted_items_per_s.get(origin)
        lines.append(Text(split_line(origin, pairs) + (f"  ({moved:,.1f} items/s moved)" if moved else "")))
    events = ", ".join(f"{region} level {level} ({event_id})" for event_id, region, level in sample.events)
    lines.append(Text(f"DR events: {events or 'none'}"))
    for job in jobs:  # in policies.control_history.operator_jobs' shape
        done, total = int(job["done"]), int(job["total"])
        share = f"{done / total:.0%}" if total else "-"
        why = f" ({job['reason']})" if job["reason"] else ""
        lines.append(
            Text(
                f"job {job['job_id']} {job['kind']} in {job['region']}: {job['state']} {share} of {total:,} "
                f"{job['unit']}, {float(job['per_second']):,.1f}/s{why}"
            )
        )
    return Group(*lines)
