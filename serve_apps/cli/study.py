"""`gridshift study curtailment`: curtailment-enabled headroom of balancing authorities (simulate/study.py)."""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from simulate.curtailment_data import STUDY_ZONES
from simulate.fleet_fit import FleetFit
from simulate.mix import parse_mix
from simulate.plots import study_report
from simulate.study import DEFAULT_RATES_PCT, CurtailmentStudy, parse_rates, parse_years, run_study

DEFAULT_FOLDER = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "eia930" / "demand_2015_2024"


def cmd_curtailment(args: argparse.Namespace) -> int:
    zones = tuple(z.strip() for z in args.zones.split(",") if z.strip()) if args.zones else STUDY_ZONES
    # Parsed before any data is read, so a bad mix is refused at once.
    fit = None if args.fleet_mix is None else FleetFit(parse_mix(args.fleet_mix), seed=args.seed)
    rates, years = parse_rates(args.rates), parse_years(args.years)
    if fit is None or args.workers == 1 or len(zones) == 1:
        study = run_study(Path(args.data), zones, rates, years, fit)
    else:
        # Spawned, not forked: a forked child inherits locks that other threads of this process may hold.
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max_workers=min(args.workers, len(zones)), mp_context=context) as pool:
            study = run_study(Path(args.data), zones, rates, years, fit, pool.map)
    body = study.to_dict()
    if args.report:
        page = study_report(Path(args.report), body)
        if not args.json:
            print(f"report: {page}")
    if args.json:
        print(json.dumps(body, indent=2))
        return 0
    rates = study.rates_pct
    print(f"curtailment-enabled headroom, {args.years}, GW (Norris et al. 2025 method; docs/simulate.md)")
    print(f"{'zone':<6} " + " ".join(f"{f'{r:g} %':>9}" for r in rates) + "   h/yr @" + f"{rates[0]:g}%  mean event h")
    for zone in study.zones:
        cells = " ".join(f"{r.headroom_mw / 1000:>9.2f}" for r in zone.results)
        first = zone.results[0]
        print(f"{zone.zone:<6} {cells}   {first.curtailed_hours_per_year:>8.1f}  {first.mean_event_hours:>12.2f}")
    print(f"{'total':<6} " + " ".join(f"{study.total_mw(r) / 1000:>9.2f}" for r in rates))
    for key, row in body["published_comparison"].items():  # type: ignore[attr-defined]
        print(f"  {key} %: ours {row['ours_gw']} GW, published {row['published_gw']} GW ({row['difference_pct']:+} %)")
    if study.mix_label is not None:
        _print_fleet_mix(study)
    return 0


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _print_fleet_mix(study: CurtailmentStudy) -> None:
    # Headline: the study's L with the firm backup each MW needs for the shed the fleet's own levers cannot make.
    print(f"fleet mix {study.mix_label}: absorbed with the firm backup each MW needs (docs/simulate.md)")
    print(
        f"  {'zone':<6} {'rate':>6} {'GW':>7} {'storage MWh/MW':>15} {'backup MW/MW':>13} {'fleet shed worst h':>19} "
        f"{'mean':>5} {'SLO-miss h':>10} {'missed dl':>9} {'w/o backup GW':>14}"
    )
    for zone in study.zones:
        if zone.fit is None:
            continue
        for fit in zone.fit.rates:
            backup = fit.backup_dict()
            alone = fit.load_mw if fit.deliverable else 0.0
            print(
                f"  {zone.zone:<6} {fit.rate_pct:>5g}% {fit.absorbable_mw_with_backup / 1000:>7.2f} "
                f"{backup['storage_mwh_per_mw']:>15.3f} {backup['backup_mw_per_mw']:>13.3f} "
                f"{backup['fleet_shed_share_worst_hour']:>19.0%} {backup['fleet_shed_share_mean']:>5.0%} "
                f"{fit.realtime_slo_miss_hours:>10} {fit.missed_deadlines:>9} {alone / 1000:>14.2f}"
            )
    for key, row in study.with_backup().items():
        print(
            f"  total at {key} %: {row['absorbable_mw_total'] / 1000:.2f} GW with backup "
            f"(at most {row['storage_mwh_per_mw_max']:.3f} MWh and {row['backup_mw_per_mw_max']:.3f} MW per MW)"
        )
    print(f"  total absorbable without backup: {study.absorbable_mw() / 1000:.2f} GW")


def register(verbs: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add `gridshift study ...` to the CLI's verbs."""
    study = verbs.add_parser("study", help="grid studies on real data (no Ray)")
    sub = study.add_subparsers(dest="study_verb", required=True)
    curtailment = sub.add_parser("curtailment", help="how much flexible load each authority absorbs at a curtailment")
    curtailment.add_argument("--zones", help=f"comma list (default: the 22 of the study: {','.join(STUDY_ZONES)})")
    curtailment.add_argument("--rates", default=",".join(f"{r:g}" for r in DEFAULT_RATES_PCT), help="percent")
    curtailment.add_argument("--years", default="2016-2024", help="FIRST-LAST")
    curtailment.add_argument("--data", default=str(DEFAULT_FOLDER), help="the eia930/demand_2015_2024 folder")
    curtailment.add_argument("--json", action="store_true", help="stable JSON (gridshift.curtailment_study/v1)")
    curtailment.add_argument("--report", help="write the plot, the JSON and index.html to this folder")
    curtailment.add_argument(
        "--fleet-mix",
        help="realtime=..,tolerant=..,batch=..,training=..: which rate new AI load of this mix delivers (simulated)",
    )
    curtailment.add_argument("--seed", type=int, default=0, help="job draws of the --fleet-mix simulation")
    curtailment.add_argument(
        "--workers",
        type=_positive,
        default=os.cpu_count() or 1,
        help="processes simulating --fleet-mix zones side by side (default: one per CPU; the answer is the same)",
    )
    curtailment.set_defaults(func=cmd_curtailment)
