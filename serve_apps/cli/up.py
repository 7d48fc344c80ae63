"""`gridshift up`: start a local Ray cluster, deploy the fleet behind the gateway, and serve until interrupted."""

from __future__ import annotations

import argparse
import signal
import sys
import threading
import time
from collections.abc import Mapping
from typing import Any

from fleet.config import FleetConfig
from fleet.loaders import load_fleet, load_rtt_matrix, parse_fleet
from fleet.times import iso
from grid.headroom import STRESS_NAMES
from policies.control_api import ControlApi
from router.routing import RouteRequest, choose_region
from serve_apps.admin_token import ADMIN_TOKEN_ENV, resolve_admin_token
from serve_apps.up import deploy, start_local_ray


def routing_summary(fleet: FleetConfig, state: Any, telemetry: Mapping[str, Any] | None = None) -> str:
    """One screen on what the fleet does now: each region's grid, the policy's rung, knobs, battery and power, and
    where tolerant work from each origin goes."""
    rtt = load_rtt_matrix(fleet.latency)
    lines = [f"trace time {iso(state.snapshot.at_s)}  (control state v{state.version})"]
    per_region = (telemetry or {}).get("regions", {})
    for region in state.snapshot.regions:
        a = region.assessment
        name = region.config.name
        knobs = state.knobs[name]
        lines.append(
            f"  {name:<12} {region.config.zone:<5} headroom {a.headroom:.2f}  "
            f"stress {a.stress_level} {STRESS_NAMES[a.stress_level]:<9} {'up' if region.state.healthy else 'DOWN'}  "
            f"knobs ({state.knob_sources.get(name, '-')}): tolerant {knobs.precision_for('tolerant').value}, "
            f"realtime {knobs.precision_for('realtime').value}, batch<={knobs.max_batch_size}"
        )
        decision = (per_region.get(name) or {}).get("policy")
        if decision:
            power, battery = decision["power"], decision.get("battery")
            line = (
                f"  {'':<12} rung {decision['step']}, batch jobs {'run' if decision['batch']['may_run'] else 'paused'}"
                f"; grid {power['grid_kw']:,.0f} kW vs baseline {power['baseline_kw']:,.0f} kW, "
                f"flexible {power['flexible_kw_total']:,.0f} kW"
            )
            if battery:
                line += f"; battery {battery['soc_fraction']:.0%}, {battery['power_kw']:,.0f} kW"
            lines.append(line)
    tolerant = fleet.workload_classes["tolerant"]
    for origin in fleet.region_names:
        request = RouteRequest(origin, "tolerant", tolerant.mode, tolerant.latency_budget_ms or 0.0)
        decision = choose_region(request, state.snapshot.states, rtt, fleet.routing, explain=False)
        lines.append(f"  tolerant from {origin:<12} -> {decision.region:<12} ({decision.reason.value})")
    return "\n".join(lines)


def run_up(fleet: FleetConfig, *, summary_every_s: float = 10.0, duration_s: float | None = None) -> int:
    """Start, deploy, print the endpoint and summaries, and serve until Ctrl-C/SIGTERM (or `duration_s`)."""
    import ray
    from ray import serve

    from policies.actors.control import control_client

    token, generated = resolve_admin_token(fleet.gateway)
    stop = threading.Event()
    previous_handlers = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        print("gridshift: starting a local Ray cluster ...", flush=True)
        dashboard = start_local_ray()
        # Ray's core worker installs its own SIGTERM handler (it logs and aborts the driver, so nothing shuts down
        # cleanly): take SIGINT and SIGTERM back now that Ray is up.
        for sig in previous_handlers:
            signal.signal(sig, lambda *_: stop.set())
        control = control_client(fleet)
        print(f"gridshift: deploying {len(fleet.regions)} regions of fleet {fleet.name!r} ...", flush=True)
        deploy(fleet, token)
        endpoint = f"http://{fleet.gateway.host}:{fleet.gateway.port}"
        # deploy() returns once /readyz answers 200: every region warm, the first request served at once.
        print(f"gridshift: serving at {endpoint}  (OpenAI-compatible: POST {endpoint}/v1/embeddings)")
        print(f"gridshift: docs at {endpoint}/docs, regions at {endpoint}/v1/regions")
        if dashboard:
            print(f"gridshift: Ray dashboard and Jobs API at {dashboard} (batch jobs run as Ray Jobs)")
        if generated:
            # Printed once, as Jupyter does; it is never logged.
            print(f"gridshift: admin token (set {ADMIN_TOKEN_ENV} to choose your own): {token}")
        print("gridshift: press Ctrl-C to stop", flush=True)
        started = time.monotonic()
        next_summary = started
        while not stop.is_set():
            if duration_s is not None and time.monotonic() - started >= duration_s:
                break
            if time.monotonic() >= next_summary:
                state = control.call_sync(ControlApi.state)
                telemetry = control.call_sync(ControlApi.telemetry)
                print(routing_summary(fleet, state, telemetry), flush=True)
                next_summary += summary_every_s
            stop.wait(0.2)
        print("gridshift: shutting down ...", flush=True)
        return 0
    finally:
        for sig, handler in previous_handlers.items():
            signal.signal(sig, handler)
        if ray.is_initialized():
            try:
                serve.shutdown()  # type: ignore[no-untyped-call]
            finally:
                ray.shutdown()
        sys.stdout.flush()


def cmd_up(args: argparse.Namespace) -> int:
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


def register(verbs: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add `gridshift up` to the CLI's verbs."""
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
