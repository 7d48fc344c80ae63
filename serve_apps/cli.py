"""The `gridshift` command line: one entry point whose verbs mirror the HTTP API."""

from __future__ import annotations

import argparse
import json
import os
import sys
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from urllib.error import URLError

from pydantic import ValidationError

from fleet.clock import FixedClock, clock_for_source
from fleet.errors import GridshiftError, UnknownRegionError
from fleet.loaders import load_fleet, parse_fleet
from fleet.sources import TraceSourceConfig
from fleet.times import iso, utc_now_from
from grid.context import FleetContext
from grid.headroom import STRESS_NAMES
from grid.sources.store import load_live_context
from router.routing import RouteRequest, choose_region, decision_to_dict, request_to_dict
from router.state import snapshot, snapshot_to_dict
from serve_apps.admin_token import ADMIN_TOKEN_ENV
from serve_apps.cli_openadr import register as add_openadr_verbs
from serve_apps.cli_policy import register as add_policy_verbs
from serve_apps.cli_signals import register as add_signals_verbs
from serve_apps.client import GridshiftClientError
from serve_apps.cluster import add_cluster_verbs

ROUTE_SCHEMA = "gridshift.route_explain/v1"


def _context(args: argparse.Namespace) -> FleetContext:
    return load_live_context(load_fleet(args.fleet), args.trace)[0]


def _at_s(args: argparse.Namespace, context: FleetContext) -> int:
    """--at if given, else the fleet's own clock (trace replay: the start of its window at launch)."""
    clock = FixedClock(utc_now_from(args.at).timestamp()) if args.at else clock_for_source(context.fleet.signal_source)
    return int(clock.now_s())


def _fmt(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def cmd_regions(args: argparse.Namespace) -> int:
    context = _context(args)
    snap = snapshot(context.fleet, context.trace, _at_s(args, context))
    if args.json:
        print(json.dumps(snapshot_to_dict(snap), indent=2))
        return 0
    print(f"fleet {context.fleet.name} at {iso(snap.at_s)} (trace {context.trace.source})")
    header = (
        f"{'region':<12} {'zone':<6} {'demand_MW':>10} {'peak_MW':>9} {'carbon_g/kWh':>12} "
        f"{'price_$/MWh':>11} {'headroom':>8} {'stress':>12}  signals"
    )
    print(header)
    for region in snap.regions:
        s, a = region.signals, region.assessment
        stress = f"{a.stress_level} {STRESS_NAMES[a.stress_level]}"
        oldest = max((c.age_s for c in a.components), default=0.0)
        freshness = f"stale ({oldest / 3600:.1f} h old)" if a.stale else "fresh"
        print(
            f"{region.config.name:<12} {region.config.zone:<6} "
            f"{_fmt(s.demand_mw.value if s.demand_mw else None, ',.0f'):>10} "
            f"{_fmt(s.reference_peak_mw, ',.0f'):>9} "
            f"{_fmt(s.carbon_g_per_kwh.value if s.carbon_g_per_kwh else None, '.1f'):>12} "
            f"{_fmt(s.price_usd_per_mwh.value if s.price_usd_per_mwh else None, '.2f'):>11} "
            f"{a.headroom:>8.3f} {stress:>12}  {freshness}"
        )
    return 0


def _route_request(args: argparse.Namespace, context: FleetContext) -> RouteRequest:
    fleet = context.fleet
    workload = fleet.workload_classes.get(args.workload_class)
    if workload is None:
        raise GridshiftError(
            f"--class: unknown workload class {args.workload_class!r}; known: {sorted(fleet.workload_classes)}"
        )
    budget = args.budget_ms if args.budget_ms is not None else workload.latency_budget_ms
    if budget is None:
        raise GridshiftError(f"--class {args.workload_class}: deferred (batch) classes are planned, not routed")
    if budget <= 0:
        raise GridshiftError(f"--budget-ms: must be positive, got {budget:g}")
    origin = args.origin or fleet.default_origin
    if origin not in context.rtt_ms:
        raise UnknownRegionError(f"--origin: {origin!r} is not in the latency matrix")
    return RouteRequest(origin, args.workload_class, workload.mode, float(budget))


def cmd_route_explain(args: argparse.Namespace) -> int:
    context = _context(args)
    request = _route_request(args, context)
    snap = snapshot(context.fleet, context.trace, _at_s(args, context))
    decision = choose_region(request, snap.states, context.rtt_ms, context.fleet.routing, draw=args.draw)
    if args.json:
        body = {
            "schema": ROUTE_SCHEMA,
            "at": iso(snap.at_s),
            "state_version": snap.version,
            "request": request_to_dict(request),
            "decision": decision_to_dict(decision),
        }
        print(json.dumps(body, indent=2))
        return 0
    print(
        f"at {iso(snap.at_s)}: {request.workload_class} request from {request.origin}, "
        f"budget {request.latency_budget_ms:g} ms"
    )
    print(f"-> {decision.region}  [{decision.reason.value}] {decision.detail}")
    if len(decision.eligible) > 1:
        split = ", ".join(f"{name} {p:.0%}" for name, p in decision.eligible)
        print(f"   split: {split}")
    print(f"   fallbacks: {' > '.join(decision.ranked[1:]) or 'none'}")
    print(f"{'region':<12} {'rtt_ms':>7} {'est_ms':>7} {'headroom':>8} {'stress':>6} {'score':>6}  {'verdict':<9} why")
    for c in decision.candidates:
        print(
            f"{c.region:<12} {_fmt(c.rtt_ms, '.1f'):>7} {_fmt(c.est_latency_ms, '.1f'):>7} "
            f"{c.headroom:>8.3f} {c.stress_level:>6} {c.score:>6.3f}  {c.verdict.value:<9} {c.why}"
        )
    return 0


def cmd_route_replay(args: argparse.Namespace) -> int:
    """Where one kind of request would go, hour by hour, over the fleet's replay window."""
    context = _context(args)
    request = _route_request(args, context)
    source = context.fleet.signal_source
    if isinstance(source, TraceSourceConfig):
        window = (source.start.timestamp(), (source.end or source.start).timestamp())
    elif not (args.start and args.end):
        raise GridshiftError("--start and --end: a live fleet has no replay window to default to")
    start = utc_now_from(args.start).timestamp() if args.start else window[0]
    end = utc_now_from(args.end).timestamp() if args.end else window[1]
    if end <= start:
        raise GridshiftError("replay window is empty: --end must be after --start")
    step = int(args.step_hours * 3600)
    if step <= 0:
        raise GridshiftError("--step-hours must be positive")
    previous: frozenset[str] = frozenset()
    rows = []
    at = int(start)
    while at <= end:
        snap = snapshot(context.fleet, context.trace, at)
        decision = choose_region(
            request, snap.states, context.rtt_ms, context.fleet.routing, previous_eligible=previous
        )
        previous = frozenset(name for name, _ in decision.eligible)
        rows.append((snap, decision))
        at += step
    if args.json:
        print(
            json.dumps(
                {
                    "schema": "gridshift.route_replay/v1",
                    "request": request_to_dict(request),
                    "steps": [
                        {
                            "at": iso(s.at_s),
                            "region": d.region,
                            "reason": d.reason.value,
                            "eligible": [{"region": n, "probability": round(p, 6)} for n, p in d.eligible],
                            "headroom": {r.config.name: round(r.assessment.headroom, 4) for r in s.regions},
                            "stress_level": {r.config.name: r.assessment.stress_level for r in s.regions},
                        }
                        for s, d in rows
                    ],
                },
                indent=2,
            )
        )
        return 0
    names = context.fleet.region_names
    print(f"{request.workload_class} from {request.origin}, budget {request.latency_budget_ms:g} ms")
    print(f"{'time (UTC)':<21} {'-> region':<12} " + " ".join(f"{n:>14}" for n in names) + "  reason")
    for snap, decision in rows:
        cells = " ".join(
            f"{r.assessment.headroom:>10.2f} s{r.assessment.stress_level}"
            + ("*" if r.config.name == decision.region else " ")
            for r in snap.regions
        )
        print(f"{iso(snap.at_s):<21} {decision.region:<12} {cells}  {decision.reason.value}")
    print("columns: headroom, s<stress level>, * = chosen region")
    return 0


def cmd_up(args: argparse.Namespace) -> int:
    from serve_apps.up import run_up

    # Flags override the fleet file, then everything is re-validated through the one schema.
    data = load_fleet(args.fleet).model_dump(mode="json")
    for section, key, value in (
        ("signal_source", "speedup", args.speedup),
        ("signal_source", "start", args.start),
        ("gateway", "port", args.port),
        ("gateway", "wan_emulation", args.wan_emulation),
    ):
        if value is not None:
            data[section][key] = value
    return run_up(parse_fleet(data, source="gridshift up flags"), duration_s=args.duration_s)


def cmd_batch_plan(args: argparse.Namespace) -> int:
    from policies.planner import forecast_signal, plan_to_dict, plan_windows

    context = _context(args)
    fleet = context.fleet
    if args.region not in fleet.region_names:
        raise GridshiftError(f"--region: {args.region!r} is not in the fleet {list(fleet.region_names)}")
    release = int(utc_now_from(args.release).timestamp())
    deadline = int(utc_now_from(args.deadline).timestamp())
    if deadline <= release:
        raise GridshiftError("--deadline must be after --release")
    if args.hours <= 0:
        raise GridshiftError("--hours must be positive")
    slots = list(range(release - release % 3600, deadline, 3600))
    try:
        forecast = forecast_signal(
            context.trace, fleet.region(args.region), args.signal, release, slots, fleet.headroom
        )
    except ValueError as error:
        raise GridshiftError(f"--signal {args.signal}: {error}") from None
    plan = plan_windows(release, deadline, int(args.hours * 3600), slots, forecast, args.signal, now_s=release)
    body = plan_to_dict(plan)
    if args.json:
        print(json.dumps(body, indent=2))
        return 0
    print(
        f"{args.signal} plan for {args.hours:g} h in {args.region}, released {body['release']}, due {body['deadline']}"
    )
    for interval in body["intervals"]:
        print(f"  run {interval['start']} -> {interval['end']}")
    unit = body["unit"]
    print(f"expected {body['expected_signal']} {unit} vs {body['run_now_signal']} {unit} running at once")
    print(f"savings {body['savings']} {unit} ({body['savings_pct']} %); {body['reason']}")
    return 0


def _admin_token() -> str:
    token = os.environ.get(ADMIN_TOKEN_ENV)
    if not token:
        raise GridshiftError(f"set {ADMIN_TOKEN_ENV} to the gateway's admin token (gridshift up prints it)")
    return token


def _client(args: argparse.Namespace) -> Any:
    from serve_apps.client import GridshiftClient

    return GridshiftClient(args.url)


def cmd_batch_submit(args: argparse.Namespace) -> int:
    from batch.spec import BatchJobSpec

    spec_data = {
        "job_id": args.job_id or uuid.uuid4().hex[:12],
        "pipeline": args.pipeline,
        # Absolute paths: the job may run in another process with another working directory.
        "input": str(Path(args.input).resolve()),
        "output": str(Path(args.output).resolve()),
        "deadline": args.deadline,
        "region": args.region,
        "signal": args.signal,
        "shard_rows": args.shard_rows,
    }
    try:
        spec = BatchJobSpec.model_validate(spec_data)
    except ValidationError as error:
        fields = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in error.errors())
        raise GridshiftError(f"invalid batch job: {fields}") from None
    if not args.local:
        answer = _client(args).submit_job(spec.model_dump(mode="json"), _admin_token())
        print(answer["job_id"])
        return 0
    import ray

    from batch.driver import run_local

    fleet = load_fleet(args.fleet)
    print(spec.job_id, flush=True)
    ray.init(address=args.ray_address or "local", namespace="gridshift", log_to_driver=False, include_dashboard=False)
    try:
        result = run_local(spec, fleet)
    finally:
        ray.shutdown()
    print(f"done: {result.rows} rows, {result.shards_run} shards run, {result.shards_skipped} already committed")
    return 0


def _bar(done: int, total: int, width: int = 24) -> str:
    filled = 0 if total <= 0 else round(width * done / total)
    return "[" + "#" * filled + "." * (width - filled) + "]"


def cmd_batch_status(args: argparse.Namespace) -> int:
    client = _client(args)
    jobs = [client.job(args.job)] if args.job else client.jobs()
    if args.json:
        print(json.dumps({"jobs": jobs}, indent=2))
        return 0
    if not jobs:
        print("no batch jobs")
    for job in jobs:
        print(
            f"{job['job_id']}  {job['state']:<8} {_bar(job['rows_done'], job['rows_total'])} "
            f"{job['rows_done']}/{job['rows_total']} rows  region {job['region']}"
        )
        if job["reason"]:
            print(f"  why: {job['reason']}")
        if job["state"] == "paused" and job["expected_resume"]:
            print(f"  expected resume: {job['expected_resume']}")
        track = "on track" if job["on_track"] else "AT RISK"
        print(f"  expected finish: {job['expected_finish'] or '-'}  deadline: {job['deadline']}  ({track})")
    return 0


def cmd_batch_control(args: argparse.Namespace) -> int:
    client = _client(args)
    token = _admin_token()
    answer = client.pause_job(args.job, token) if args.action == "pause" else client.resume_job(args.job, token)
    print(f"{answer['requested']} requested for {answer['job_id']}: it takes effect at the next shard boundary")
    return 0


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--fleet", help="fleet YAML (default: the packaged four-region AWS fleet)")
    parser.add_argument("--trace", help="trace file overriding the fleet's signal source")
    parser.add_argument("--json", action="store_true", help="stable JSON output (docs/cli-json.md)")


def _route_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--origin", help="origin region (default: the fleet's default_origin)")
    parser.add_argument("--class", dest="workload_class", default="tolerant", help="workload class (default tolerant)")
    parser.add_argument("--budget-ms", type=float, help="latency budget, ms (default: the class's)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="gridshift", description="Run AI compute as a dispatchable grid resource.")
    verbs = parser.add_subparsers(dest="verb", required=True)

    regions = verbs.add_parser("regions", help="the fleet's grid signals, headroom and stress")
    regions.add_argument("--at", help="ISO-8601 UTC time on the trace (default: the replay clock)")
    _common(regions)
    regions.set_defaults(func=cmd_regions)

    route = verbs.add_parser("route", help="explain or replay routing decisions")
    route_verbs = route.add_subparsers(dest="route_verb", required=True)
    explain = route_verbs.add_parser("explain", help="where one request would go and why")
    _route_args(explain)
    explain.add_argument("--at", help="ISO-8601 UTC time on the trace (default: the replay clock)")
    explain.add_argument("--draw", type=float, default=0.0, help="[0,1): which region a weighted spread picks")
    _common(explain)
    explain.set_defaults(func=cmd_route_explain)

    replay = route_verbs.add_parser("replay", help="where one kind of request goes, step by step, over a window")
    _route_args(replay)
    replay.add_argument("--start", help="window start (default: the fleet's replay start)")
    replay.add_argument("--end", help="window end (default: the fleet's replay end)")
    replay.add_argument("--step-hours", type=float, default=1.0, help="step between decisions, hours")
    _common(replay)
    replay.set_defaults(func=cmd_route_replay)

    up = verbs.add_parser("up", help="start a local Ray cluster and serve the fleet behind the gateway")
    up.add_argument("--fleet", help="fleet YAML (default: the packaged four-region AWS fleet)")
    up.add_argument("--port", type=int, help="gateway port (default: the fleet's, 8000)")
    up.add_argument("--speedup", type=float, help="trace seconds per wall second (default: the fleet's)")
    up.add_argument("--start", help="replay start time on the trace (default: the fleet's)")
    up.add_argument(
        "--wan-emulation",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="add real inter-region round trips to forwards (default: the fleet's setting)",
    )
    up.add_argument("--duration-s", type=float, help="serve this long, then stop (default: until Ctrl-C)")
    up.set_defaults(func=cmd_up)

    batch = verbs.add_parser("batch", help="time-shifted batch pipelines")
    batch_verbs = batch.add_subparsers(dest="batch_verb", required=True)
    plan = batch_verbs.add_parser("plan", help="when a job of H hours would run, from the forecast at release")
    plan.add_argument("--region", required=True)
    plan.add_argument("--release", required=True, help="ISO-8601 UTC release time")
    plan.add_argument("--deadline", required=True, help="ISO-8601 UTC deadline")
    plan.add_argument("--hours", type=float, required=True, help="estimated work, hours")
    plan.add_argument("--signal", choices=("carbon", "price", "headroom"), default="carbon")
    _common(plan)
    plan.set_defaults(func=cmd_batch_plan)

    submit = batch_verbs.add_parser("submit", help="run a Ray Data pipeline in good grid windows, exactly once")
    submit.add_argument("--pipeline", required=True, help="module:function taking (Dataset, knobs)")
    submit.add_argument("--input", required=True, help=".txt (a row a line) or .jsonl input")
    submit.add_argument("--output", required=True, help="output folder (part files and ledger)")
    submit.add_argument("--deadline", required=True, help="ISO-8601 UTC deadline on the control clock")
    submit.add_argument("--region", required=True)
    submit.add_argument("--signal", choices=("carbon", "price", "headroom"), default="carbon")
    submit.add_argument("--shard-rows", type=int, default=128, help="rows per shard (pause and commit unit)")
    submit.add_argument("--job-id", help="job id (default: random)")
    submit.add_argument("--url", default="http://127.0.0.1:8000", help="gateway to submit to")
    submit.add_argument("--local", action="store_true", help="run the driver here instead of in the cluster")
    submit.add_argument("--ray-address", help="with --local: join this Ray cluster (default: start one)")
    submit.add_argument("--fleet", help="with --local: fleet YAML (default: the packaged fleet)")
    submit.set_defaults(func=cmd_batch_submit)

    status = batch_verbs.add_parser("status", help="state, progress and expected finish of batch jobs")
    status.add_argument("job", nargs="?", help="one job (default: all)")
    status.add_argument("--url", default="http://127.0.0.1:8000")
    status.add_argument("--json", action="store_true")
    status.set_defaults(func=cmd_batch_status)
    for action in ("pause", "resume"):
        control = batch_verbs.add_parser(action, help=f"{action} a job at its next shard boundary")
        control.add_argument("job")
        control.add_argument("--url", default="http://127.0.0.1:8000")
        control.set_defaults(func=cmd_batch_control, action=action)
    add_cluster_verbs(verbs)
    add_openadr_verbs(verbs)
    add_policy_verbs(verbs)
    add_signals_verbs(verbs)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "draw", 0.0) is not None and not 0.0 <= getattr(args, "draw", 0.0) < 1.0:
        parser.error("--draw must be in [0, 1)")
    try:
        result: int = args.func(args)
    except GridshiftClientError as error:
        print(f"gridshift: error: the gateway answered {error}", file=sys.stderr)
        return 2
    except URLError as error:
        print(
            f"gridshift: error: cannot reach the gateway at {getattr(args, 'url', '?')}: {error.reason}",
            file=sys.stderr,
        )
        return 2
    except GridshiftError as error:
        print(f"gridshift: error: {error}", file=sys.stderr)
        return 2
    return result


if __name__ == "__main__":
    sys.exit(main())
