"""`gridshift regions` and `gridshift route explain|replay`: the grid picture, and where requests go and why."""

from __future__ import annotations

import argparse
import json

from fleet.clock import FixedClock, clock_for_source
from fleet.errors import GridshiftError, UnknownRegionError
from fleet.sources import TraceSourceConfig
from fleet.times import iso, utc_now_from
from grid.context import FleetContext
from grid.headroom import STRESS_NAMES
from router.route_types import decision_to_dict, request_to_dict
from router.routing import RouteRequest, choose_region
from router.state import snapshot, snapshot_to_dict
from serve_apps.cli.common import add_common_args, fleet_context

ROUTE_SCHEMA = "gridshift.route_explain/v1"


def _at_s(args: argparse.Namespace, context: FleetContext) -> int:
    """--at if given, else the fleet's own clock (trace replay: the start of its window at launch)."""
    clock = FixedClock(utc_now_from(args.at).timestamp()) if args.at else clock_for_source(context.fleet.signal_source)
    return int(clock.now_s())


def _fmt(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def cmd_regions(args: argparse.Namespace) -> int:
    context = fleet_context(args)
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
    context = fleet_context(args)
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
    context = fleet_context(args)
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


def _route_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--origin", help="origin region (default: the fleet's default_origin)")
    parser.add_argument("--class", dest="workload_class", default="tolerant", help="workload class (default tolerant)")
    parser.add_argument("--budget-ms", type=float, help="latency budget, ms (default: the class's)")


def register(verbs: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add `gridshift regions` and `gridshift route ...` to the CLI's verbs."""
    regions = verbs.add_parser("regions", help="the fleet's grid signals, headroom and stress")
    regions.add_argument("--at", help="ISO-8601 UTC time on the trace (default: the replay clock)")
    add_common_args(regions)
    regions.set_defaults(func=cmd_regions)

    route = verbs.add_parser("route", help="explain or replay routing decisions")
    route_verbs = route.add_subparsers(dest="route_verb", required=True)
    explain = route_verbs.add_parser("explain", help="where one request would go and why")
    _route_args(explain)
    explain.add_argument("--at", help="ISO-8601 UTC time on the trace (default: the replay clock)")
    explain.add_argument("--draw", type=float, default=0.0, help="[0,1): which region a weighted spread picks")
    add_common_args(explain)
    explain.set_defaults(func=cmd_route_explain)

    replay = route_verbs.add_parser("replay", help="where one kind of request goes, step by step, over a window")
    _route_args(replay)
    replay.add_argument("--start", help="window start (default: the fleet's replay start)")
    replay.add_argument("--end", help="window end (default: the fleet's replay end)")
    replay.add_argument("--step-hours", type=float, default=1.0, help="step between decisions, hours")
    add_common_args(replay)
    replay.set_defaults(func=cmd_route_replay)
