"""`gridshift policy [replay|calibration]`: the magnitude policy now, over a trace window, and what it decides with.

Live: what the policy is doing now (from a gateway); replay: what it would do over a trace window; calibration: the
measured cost and quality it decides with.
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

from fleet.errors import GridshiftError
from fleet.loaders import load_fleet
from fleet.serving import Precision
from fleet.sources import TraceSourceConfig
from fleet.times import iso, utc_now_from
from grid.headroom import STRESS_NAMES
from grid.sources.store import load_live_context
from policies.calibration import Calibration, calibration_to_dict, load_calibration
from policies.ladder import decision_to_dict
from policies.load import RegionLoad
from policies.outlook import replay_policy
from serve_apps.cli.live_view import LiveView
from serve_apps.client import GridshiftClient

POLICY_SCHEMA = "gridshift.policy/v1"
REPLAY_SCHEMA = "gridshift.policy_replay/v1"


def _kw(value: float | None) -> str:
    return "-" if value is None else f"{value:,.0f}"


def _precisions(knobs: dict[str, Any]) -> str:
    per_class = knobs.get("class_precision") or {}
    rest = knobs.get("precision", "fp32")
    return " ".join(f"{name}={per_class.get(name, rest)}" for name in ("realtime", "tolerant")) + f" other={rest}"


def cmd_policy(args: argparse.Namespace) -> int:
    with GridshiftClient(args.url) as client:
        body = client.regions()
    if args.json:
        keep = ("region", "stress_level", "knobs", "knob_source", "knob_reason", "load", "policy")
        regions = [{key: region.get(key) for key in keep} for region in body["regions"]]
        print(
            json.dumps(
                {
                    "schema": POLICY_SCHEMA,
                    "at": body["at"],
                    "policy": body.get("policy"),
                    "calibration": body.get("calibration"),
                    "regions": regions,
                },
                indent=2,
            )
        )
        return 0
    if not args.watch:
        print(policy_text(body))
        return 0
    # Redrawn in place on a terminal, a block per refresh elsewhere, until Ctrl-C.
    try:
        with GridshiftClient(args.url) as client, LiveView() as view:
            while True:
                view.show(policy_text(body))
                time.sleep(args.every)
                body = client.regions()
    except KeyboardInterrupt:
        return 0


def policy_text(body: dict[str, Any]) -> str:
    """The human view of `GET /v1/regions`' policy figures: rung, knobs, batch, power, battery and load per region."""
    out: list[str] = []
    status = body.get("policy") or {}
    fresh = "fresh" if status.get("fresh") else "NOT fresh (regions on safe defaults)"
    out.append(f"policy at {body['at']}: {fresh}, last decision {status.get('age_s', '-')} s ago")
    for region in body["regions"]:
        decision = region.get("policy") or {}
        power = decision.get("power") or {}
        load = region.get("load") or {}
        out.append(
            f"{region['region']:<12} stress {region['stress_level']} {STRESS_NAMES[region['stress_level']]:<9} "
            f"rung {decision.get('step', '-')}  knobs from {region.get('knob_source', '-')}: "
            f"{_precisions(region['knobs'])} batch<={region['knobs']['max_batch_size']} "
            f"concurrency<={region['knobs']['max_concurrency']}"
        )
        if decision:
            out.append(f"  why: {decision['reason']}")
            batch = decision["batch"]
            out.append(
                f"  batch runners: {'may run' if batch['may_run'] else 'PAUSED'}, batch {batch['batch_size']} at "
                f"{batch['precision']}"
            )
        if power:
            flexible = ", ".join(f"{lever} {_kw(kw)}" for lever, kw in power["flexible_kw"].items())
            out.append(
                f"  power ({power['source']}): grid {_kw(power['grid_kw'])} kW = site {_kw(power['site_kw'])} kW "
                f"- battery {_kw(power['battery_kw'])} kW; baseline {_kw(power['baseline_kw'])} kW "
                f"(saving {_kw(power['saved_kw'])} kW); flexible kW: {flexible}"
            )
        battery = decision.get("battery")
        if battery:
            out.append(
                f"  battery: {battery['soc_fraction']:.0%} of {_kw(battery['capacity_kwh'])} kWh, "
                f"{_kw(battery['power_kw'])} kW ({battery['why']})"
            )
        if load:
            out.append(
                f"  load: {load['requests_per_s']} req/s, {load['busy_cpu_s_per_s']} CPU-s/s, "
                f"queue {load['queued_requests']}, batch occupancy {load['batch_occupancy']:.0%}"
            )
    calibration = body.get("calibration")
    if calibration:
        out += ["", *_quality_lines(calibration)]
    return "\n".join(out)


def _quality_lines(calibration: dict[str, Any]) -> list[str]:
    out: list[str] = []
    out.append(f"calibration: {calibration['model']} on {calibration['machine']} ({calibration['measured_at']})")
    costs: dict[str, dict[str, float]] = calibration["cpu_ms_per_item"]
    sizes = sorted({int(size) for row in costs.values() for size in row})
    out.append(f"  {'precision':<9} {'mean cos':>9} {'min cos':>8}  " + " ".join(f"{'b' + str(s):>7}" for s in sizes))
    for precision, quality in calibration["quality"].items():
        row = costs.get(precision, {})
        cells = " ".join(f"{row.get(str(s), float('nan')):>7.2f}" for s in sizes)
        out.append(
            f"  {precision:<9} {quality['mean_cosine_to_fp32']:>9.5f} {quality['min_cosine_to_fp32']:>8.5f}  {cells}"
        )
    out.append("  (cosine to fp32 on the evaluation sentences; CPU ms per item at each batch size, one torch thread)")
    return out


def cmd_policy_calibration(args: argparse.Namespace) -> int:
    fleet = load_fleet(args.fleet)
    calibration = load_calibration(fleet.policy.calibration_file)
    data = calibration_to_dict(calibration)
    if args.json:
        print(json.dumps(data, indent=2))
        return 0
    print("\n".join(_quality_lines(data)))
    print(f"  quality floors (mean cosine): {dict(fleet.policy.quality_floor)}")
    print(f"  re-measure: {calibration.command}")
    return 0


def _offered_load(args: argparse.Namespace, calibration: Calibration) -> RegionLoad:
    """A constant offered load: `--requests-per-s` tolerant and real-time requests of one item, at fp32."""
    item_s = calibration.cpu_ms_per_item(Precision.FP32, args.batch) / 1000.0
    tolerant = args.requests_per_s * args.tolerant_share * item_s
    realtime = args.requests_per_s * (1.0 - args.tolerant_share) * item_s
    return RegionLoad(
        replicas=1,
        requests_per_s=args.requests_per_s,
        items_per_s=args.requests_per_s,
        busy_cpu_s_per_s=tolerant + realtime,
        busy_by_class={"tolerant": tolerant, "realtime": realtime},
        busy_by_precision={"fp32": tolerant + realtime},
        mean_batch_requests=args.batch,
    )


def cmd_policy_replay(args: argparse.Namespace) -> int:
    fleet = load_fleet(args.fleet)
    context, _ = load_live_context(fleet, args.trace)
    if args.region not in fleet.region_names:
        raise GridshiftError(f"--region: {args.region!r} is not in the fleet {list(fleet.region_names)}")
    source = fleet.signal_source
    window = (source.start, source.end or source.start) if isinstance(source, TraceSourceConfig) else None
    if window is None and not (args.start and args.end):
        raise GridshiftError("--start and --end: a live fleet has no replay window to default to")
    start = int((utc_now_from(args.start) if args.start else window[0]).timestamp())  # type: ignore[index]
    end = int((utc_now_from(args.end) if args.end else window[1]).timestamp())  # type: ignore[index]
    if end <= start:
        raise GridshiftError("replay window is empty: --end must be after --start")
    if not 0.0 <= args.tolerant_share <= 1.0:
        raise GridshiftError(f"--tolerant-share must be in [0, 1], got {args.tolerant_share}")
    calibration = load_calibration(fleet.policy.calibration_file)
    offered = _offered_load(args, calibration)
    hours = replay_policy(
        context, args.region, range(start, end, int(args.step_hours * 3600)), calibration, offered=offered
    )
    config = fleet.region(args.region)
    if args.json:
        rows = [
            {
                "at": iso(h.at_s),
                "stress_level": h.stress_level,
                "headroom": round(h.headroom, 4),
                **decision_to_dict(h.decision, config),
            }
            for h in hours
        ]
        print(json.dumps({"schema": REPLAY_SCHEMA, "region": args.region, "hours": rows}, indent=2))
        return 0
    print(
        f"policy replay for {args.region} ({config.zone}), offered {args.requests_per_s:g} req/s "
        f"({args.tolerant_share:.0%} tolerant) at fp32; kW are site figures (PUE {fleet.power.pue:g})"
    )
    print(
        f"{'time':<20} {'stress':>6} {'rung':>4} {'realtime':>8} {'tolerant':>8} {'batch':>6} {'soc':>5} "
        f"{'batt kW':>8} {'grid kW':>9} {'baseline':>9} {'flex kW':>8}"
    )
    for hour in hours:
        d = hour.decision
        soc = "-" if d.battery is None or config.battery is None else f"{d.battery.soc_fraction(config.battery):.0%}"
        print(
            f"{iso(hour.at_s):<20} {hour.stress_level:>6} {d.step:>4} {d.knobs.precision_for('realtime').value:>8} "
            f"{d.knobs.precision_for('tolerant').value:>8} {'run' if d.batch.may_run else 'pause':>6} {soc:>5} "
            f"{_kw(d.power.battery_kw):>8} {_kw(d.power.grid_kw):>9} {_kw(d.power.baseline_kw):>9} "
            f"{_kw(sum(d.power.flexible_kw.values())):>8}"
        )
    return 0


def register(verbs: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add `gridshift policy ...` to the CLI's verbs."""
    policy = verbs.add_parser("policy", help="the magnitude policy: rungs, knobs, power and battery per region")
    policy.add_argument("--url", default="http://127.0.0.1:8000", help="a running gateway")
    policy.add_argument("--json", action="store_true", help="stable JSON (schema gridshift.policy/v1)")
    policy.add_argument("--watch", action="store_true", help="redraw in place until Ctrl-C")
    policy.add_argument("--every", type=float, default=1.0, help="with --watch: seconds between refreshes")
    policy.set_defaults(func=cmd_policy)
    policy_verbs = policy.add_subparsers(dest="policy_verb")
    replay = policy_verbs.add_parser("replay", help="the policy's decisions for one region over a trace window")
    replay.add_argument("--region", required=True)
    replay.add_argument("--start", help="ISO time with offset (default: the fleet's replay window)")
    replay.add_argument("--end", help="ISO time with offset (default: the fleet's replay window)")
    replay.add_argument("--step-hours", type=float, default=1.0)
    replay.add_argument("--requests-per-s", type=float, default=100.0, help="offered load, one item per request")
    replay.add_argument("--tolerant-share", type=float, default=0.7)
    replay.add_argument("--batch", type=float, default=8.0, help="mean requests per model batch")
    replay.add_argument("--fleet", help="fleet YAML (default: the packaged default fleet)")
    replay.add_argument("--trace", help="trace file (default: the fleet's)")
    replay.add_argument("--json", action="store_true", help="stable JSON (schema gridshift.policy_replay/v1)")
    replay.set_defaults(func=cmd_policy_replay)
    calibration = policy_verbs.add_parser("calibration", help="measured cost and quality per precision")
    calibration.add_argument("--fleet", help="fleet YAML (default: the packaged default fleet)")
    calibration.add_argument("--json", action="store_true")
    calibration.set_defaults(func=cmd_policy_calibration)
