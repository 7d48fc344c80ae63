"""`gridshift simulate [sweep]`: the fleet what-if over a real trace window, and the fleet-mix sweep (simulate/)."""

from __future__ import annotations

import argparse
import json
from dataclasses import replace
from pathlib import Path
from typing import Any

from fleet.loaders import load_fleet
from fleet.times import utc_now_from
from simulate.arrivals import packaged_arrival_shape
from simulate.engine import SimulationSpec, simulate_fleet
from simulate.inputs import check_window, load_events, load_inputs
from simulate.mix import DEFAULT_MIX, LEVERS, SimulationInputError, parse_levers, parse_mix
from simulate.plots import simulation_report, sweep_report
from simulate.results import simulation_to_dict
from simulate.sweep import default_mixes, run_sweep


def _seconds(text: str, flag: str) -> int:
    try:
        return int(utc_now_from(text).timestamp())
    except (ValueError, TypeError) as error:
        raise SimulationInputError(f"{flag}: {error}") from None


def _spec(args: argparse.Namespace) -> SimulationSpec:
    if not 0.0 < args.utilization <= 1.0:
        raise SimulationInputError(f"--utilization must be in (0, 1], got {args.utilization}")
    return SimulationSpec(
        start_s=_seconds(args.start, "--from"),
        end_s=_seconds(args.end, "--to"),
        mix=parse_mix(args.mix),
        levers=parse_levers(args.levers),
        events=load_events(args.events) if args.events else (),
        utilization=args.utilization,
        seed=args.seed,
        peak_factor=packaged_arrival_shape().peak_factor,
    )


def _print_summary(body: dict[str, Any]) -> None:
    totals = body["fleet"]
    print(f"simulated {body['from']} .. {body['to']} ({body['hours']} h), mix {body['mix']}, levers {body['levers']}")
    print(
        f"  fleet: {totals['energy_mwh']:,.0f} MWh against {totals['baseline_energy_mwh']:,.0f} MWh without control; "
        f"mean shed in stress hours {totals['mean_shed_mw_in_stress']} MW over {totals['stressed_region_hours']} "
        "region-hours"
    )
    print(
        f"  flexible MW (mean, by lever): {totals['flexible_mw_mean']}; flexible fraction {totals['flexible_fraction']}"
    )
    print(
        f"  carbon {totals['carbon_t']} t (baseline {totals['baseline_carbon_t']} t); energy cost "
        f"{totals['energy_cost_usd']} USD (baseline {totals['baseline_energy_cost_usd']}; null: the trace has no price)"
    )
    print(
        f"  real-time SLO misses {totals['realtime_slo_misses']}; tolerant over budget "
        f"{totals['tolerant_items_over_budget']:,} of {totals['tolerant_items']:,} items "
        f"({totals['tolerant_items_moved']:,} moved); jobs missed deadline {totals['jobs_missed_deadline']} of "
        f"{totals['jobs_finished']} finished; quality-floor region-hours {totals['quality_floor_region_hours']}; "
        f"battery discharged {totals['battery_discharged_mwh']} MWh"
    )
    for region in body["regions"]:
        print(
            f"  {region['region']:<14} {region['zone']:<6} grid {region['mean_grid_mw']:>8.2f} MW vs "
            f"{region['mean_baseline_mw']:>8.2f}; stress h {region['stress_hours']:>4}; shed in stress "
            f"{region['mean_shed_mw_in_stress']} MW; battery cycles {region['battery_cycles']}"
        )
    for episode in body["episodes"][:20]:
        print(
            f"  {episode['kind']} {episode['region']} {episode['start']} {episode['hours']} h (stress "
            f"{episode['peak_stress']}): shed mean {episode['mean_shed_mw']} MW, max {episode['max_shed_mw']} MW, held "
            f"{episode['held_hours']} h, arrived after {episode['arrival_hours']} h"
        )
    gap = body.get("perfect_foresight", {}).get("gap")
    if gap:
        print(f"  gap to perfect foresight (perfect - ours): {gap}")


def cmd_simulate(args: argparse.Namespace) -> int:
    fleet = load_fleet(args.fleet)
    inputs = load_inputs(fleet, args.trace)
    spec = _spec(args)
    check_window(inputs.context, spec.start_s, spec.end_s)
    run = simulate_fleet(inputs.context, inputs.reader, inputs.calibration, spec)
    baseline = simulate_fleet(inputs.context, inputs.reader, inputs.calibration, replace(spec, levers=frozenset()))
    perfect = simulate_fleet(inputs.context, inputs.reader, inputs.calibration, replace(spec, foresight="perfect"))
    body = simulation_to_dict(run, baseline, fleet, perfect, hourly=args.json or bool(args.report))
    if args.report:
        page = simulation_report(Path(args.report), run, baseline, body)
        if not args.json:
            print(f"report: {page}")
    if args.json:
        print(json.dumps(body, indent=2))
    else:
        _print_summary(body)
    return 0


def cmd_sweep(args: argparse.Namespace) -> int:
    fleet = load_fleet(args.fleet)
    inputs = load_inputs(fleet, args.trace)
    spec = _spec(args)
    check_window(inputs.context, spec.start_s, spec.end_s)
    mixes = [parse_mix(text) for text in args.mixes.split(";")] if args.mixes else default_mixes()
    body = run_sweep(inputs.context, inputs.reader, inputs.calibration, spec, mixes)
    if args.report:
        page = sweep_report(Path(args.report), body)
        if not args.json:
            print(f"report: {page}")
    if args.json:
        print(json.dumps(body, indent=2))
        return 0
    print(f"mix sweep {body['from']} .. {body['to']}, levers {body['levers']}")
    print(f"{'realtime':>8} {'tolerant':>8} {'batch':>6} {'training':>8} {'flex frac':>9} {'shed MW':>8} {'missed':>6}")
    for row in body["rows"]:
        mix = row["mix"]
        print(
            f"{mix['realtime']:>8.2f} {mix['tolerant']:>8.2f} {mix['batch']:>6.2f} {mix['training']:>8.2f} "
            f"{row['flexible_fraction']:>9.4f} {row['mean_shed_mw_in_stress'] or 0.0:>8.2f} "
            f"{row['jobs_missed_deadline']:>6}"
        )
    return 0


def _add_window_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--fleet", help="fleet YAML (default: the packaged four-region AWS fleet)")
    parser.add_argument("--trace", help="trace file (default: the fleet's)")
    parser.add_argument("--from", dest="start", default="2022-09-05T00:00:00Z", help="window start, ISO with offset")
    parser.add_argument("--to", dest="end", default="2022-09-09T00:00:00Z", help="window end, ISO with offset")
    parser.add_argument("--levers", default=",".join(LEVERS), help=f"comma list of {','.join(LEVERS)}")
    parser.add_argument("--events", help="JSON list of DR events (region, level / power_limit_kw, start, end)")
    parser.add_argument("--utilization", type=float, default=0.6, help="offered work over compute, at fp32")
    parser.add_argument("--seed", type=int, default=0, help="seed of the job draws")
    parser.add_argument("--json", action="store_true", help="stable JSON")
    parser.add_argument("--report", help="write plots, the JSON and index.html to this folder")


def register(verbs: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add `gridshift simulate ...` to the CLI's verbs."""
    simulate = verbs.add_parser("simulate", help="fleet what-if over a real trace window (no Ray)")
    _add_window_args(simulate)
    simulate.add_argument("--mix", default=DEFAULT_MIX, help="workload shares, summing to 1")
    simulate.set_defaults(func=cmd_simulate)
    sub = simulate.add_subparsers(dest="simulate_verb")
    sweep = sub.add_parser("sweep", help="flexibility against the fleet's workload mix")
    _add_window_args(sweep)
    sweep.add_argument("--mix", default=DEFAULT_MIX, help=argparse.SUPPRESS)
    sweep.add_argument("--mixes", help="';'-separated mixes (default: real-time 0.9 .. 0.1)")
    sweep.set_defaults(func=cmd_sweep)
