"""`gridshift signals check`: probe each configured grid signal source once and show its health and last values."""

from __future__ import annotations

import argparse
import asyncio
import json
from typing import Any

from fleet.clock import clock_for_source
from fleet.config import FleetConfig
from fleet.loaders import load_fleet
from fleet.signals import COLUMN_UNITS, SIGNAL_COLUMNS
from fleet.sources import LiveSourceConfig
from fleet.times import iso
from grid.context import load_context
from grid.signal_health import SignalsStatus, SourceHealth, required_down, status_to_dict
from grid.sources.base import SignalSource
from grid.sources.poller import build_sources, fleet_reads, fleet_zones, probe_once
from grid.sources.store import SignalStore
from grid.sources.trace_replay import TraceReplaySource

SCHEMA = "gridshift.signals_check/v1"


def _probe(fleet: FleetConfig, trace_path: str | None) -> tuple[SignalsStatus, str]:
    source = fleet.signal_source
    now_s = clock_for_source(source).now_s()
    sources: list[SignalSource]
    if isinstance(source, LiveSourceConfig):
        sources = build_sources(source, fleet_zones(fleet))
        store = SignalStore.for_config(source, None)
        kind = "live"
    else:
        context = load_context(fleet, trace_path)
        sources = [TraceReplaySource(context.trace, fleet_reads(fleet))]
        store = SignalStore()
        kind = "trace"
    asyncio.run(probe_once(sources, store, now_s))
    return store.status(now_s), kind


def coverage(fleet: FleetConfig, status: SignalsStatus) -> list[dict[str, Any]]:
    """Per region and trace column: the zone it reads and the source holding a value for it (None: no value)."""
    held = {(value.zone, value.column): value.source for value in status.held}
    return [
        {
            "region": region.name,
            "column": column,
            "zone": region.zone_for(column),
            "source": held.get((region.zone_for(column), column)),
        }
        for region in fleet.regions
        for column in SIGNAL_COLUMNS
    ]


def _ago(at_s: float, moment: float | None) -> str:
    if moment is None:
        return "never"
    seconds = at_s - moment
    return f"{seconds:.0f} s ago" if abs(seconds) < 5400 else f"{seconds / 3600:.1f} h ago"


def _health_lines(health: SourceHealth, at_s: float) -> list[str]:
    need = "required" if health.required else "optional"
    success = _ago(at_s, health.last_success_s)
    lines = [f"{health.name} ({health.provider}, {need}): {health.state.upper()}, last success {success}"]
    if health.last_error:
        lines.append(f"  error: {health.last_error}")
    for value in health.values:
        unit = COLUMN_UNITS.get(value.column, "?")
        lines.append(
            f"  {value.zone:<8} {value.column:<20} {value.value:>12,.2f} {unit:<16} "
            f"at {iso(value.observed_at_s)} ({_ago(at_s, value.observed_at_s)})"
        )
    for forecast in health.forecasts:
        lines.append(
            f"  {forecast.zone:<8} {forecast.column:<20} forecast of {forecast.points} points, "
            f"{iso(forecast.first_s)} .. {iso(forecast.last_s)}"
        )
    if health.rejected:
        counts = ", ".join(f"{reason} {count}" for reason, count in health.rejected)
        lines.append(f"  rejected: {counts}")
        if health.last_rejection:
            lines.append(f"  last rejected: {health.last_rejection}")
    return lines


def cmd_signals_check(args: argparse.Namespace) -> int:
    fleet = load_fleet(args.fleet)
    status, kind = _probe(fleet, args.trace)
    down = required_down(status.sources)
    covered = coverage(fleet, status)
    if args.json:
        body = {
            "schema": SCHEMA,
            "fleet": fleet.name,
            "kind": kind,
            "ok": not down,
            "required_down": down,
            **status_to_dict(status),
            "coverage": covered,
        }
        print(json.dumps(body, indent=2))
        return 1 if down else 0
    print(f"fleet {fleet.name}: {kind} signals, probed at {iso(status.at_s)}")
    for health in status.sources:
        print("\n".join(_health_lines(health, status.at_s)))
    unfed: dict[str, list[str]] = {}
    for entry in covered:
        if entry["source"] is None:
            unfed.setdefault(entry["column"], []).append(f"{entry['region']} ({entry['zone']})")
    for column, where in unfed.items():
        print(f"no {column}: {', '.join(where)}")
    if down:
        print(f"required source(s) down: {', '.join(down)}")
        return 1
    return 0


def register(verbs: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add `gridshift signals check` to the CLI's verbs."""
    signals = verbs.add_parser("signals", help="grid signal sources: health and last values")
    signal_verbs = signals.add_subparsers(dest="signals_verb", required=True)
    check = signal_verbs.add_parser(
        "check", help="probe each configured source once; exit 1 if a required source is down"
    )
    check.add_argument("--fleet", help="fleet YAML (default: the packaged four-region AWS fleet)")
    check.add_argument("--trace", help="trace file overriding the fleet's (trace fleets only)")
    check.add_argument("--json", action="store_true", help="stable JSON output (docs/signals.md)")
    check.set_defaults(func=cmd_signals_check)
