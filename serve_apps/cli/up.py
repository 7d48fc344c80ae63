"""`gridshift up`: start a local Ray cluster, deploy the fleet behind the gateway, and serve until interrupted."""

from __future__ import annotations

import argparse
import signal
import sys
import threading
import time
from typing import Any

from fleet.config import FleetConfig
from fleet.loaders import load_fleet, parse_fleet
from policies.control_api import ControlApi
from policies.control_history import operator_jobs
from serve_apps.admin_token import ADMIN_TOKEN_ENV, resolve_admin_token
from serve_apps.cli.fleet_panel import fleet_panel
from serve_apps.cli.live_view import LiveView
from serve_apps.ingress import check_ports_free
from serve_apps.up import deploy, start_local_ray

REDRAW_EVERY_S = 1.0
"""On a terminal the panel is redrawn in place this often; elsewhere a plain block every `summary_every_s`."""


def run_up(
    fleet: FleetConfig,
    *,
    summary_every_s: float = 10.0,
    duration_s: float | None = None,
    dashboard: bool = True,
    log_encoding: str = "TEXT",
) -> int:
    """Start, deploy, print the endpoint, then the live panel, and serve until Ctrl-C/SIGTERM (or `duration_s`)."""
    import ray
    from ray import serve

    from policies.actors.control import control_client

    token, generated = resolve_admin_token(fleet.gateway)
    stop = threading.Event()
    previous_handlers = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        check_ports_free(fleet.gateway, stop=stop)  # Ctrl-C ends a wait for a port
        print("gridshift: starting a local Ray cluster ...", flush=True)
        dashboard_url = start_local_ray(dashboard=dashboard, fleet=fleet)
        # Ray's core worker installs its own SIGTERM handler (it logs and aborts the driver, so nothing shuts down
        # cleanly): take SIGINT and SIGTERM back now that Ray is up.
        for sig in previous_handlers:
            signal.signal(sig, lambda *_: stop.set())
        control = control_client(fleet)
        print(f"gridshift: deploying {len(fleet.regions)} regions of fleet {fleet.name!r} ...", flush=True)
        deploy(fleet, token, log_encoding=log_encoding)
        endpoint = f"http://{fleet.gateway.host}:{fleet.gateway.port}"
        # deploy() returns once /readyz answers 200: every region warm, the first request served at once.
        print(f"gridshift: serving at {endpoint}  (OpenAI-compatible: POST {endpoint}/v1/embeddings)")
        print(f"gridshift: operator console at {endpoint}/console, docs at {endpoint}/docs")
        print(f"gridshift: Prometheus metrics at {endpoint}/metrics (control state); per replica: {_ray_metrics()}")
        if dashboard_url:
            print(f"gridshift: Ray dashboard and Jobs API at {dashboard_url} (batch jobs run as Ray Jobs)")
        else:
            print("gridshift: Ray dashboard off (--no-dashboard): batch jobs cannot be submitted as Ray Jobs")
        if generated:
            # Printed once, as Jupyter does; it is never logged.
            print(f"gridshift: admin token (set {ADMIN_TOKEN_ENV} to choose your own): {token}")
        print("gridshift: press Ctrl-C to stop", flush=True)
        started = time.monotonic()
        with LiveView() as view:
            every_s = REDRAW_EVERY_S if view.tty else summary_every_s
            next_draw = started
            while not stop.is_set():
                if duration_s is not None and time.monotonic() - started >= duration_s:
                    break
                if time.monotonic() >= next_draw:
                    samples = control.call_sync(ControlApi.history, None, 0.0, 1)
                    batch = control.call_sync(ControlApi.job_statuses)
                    training = control.call_sync(ControlApi.training_statuses)
                    if samples:
                        view.show(fleet_panel(fleet, samples[-1], operator_jobs(batch, training)))
                    next_draw += every_s
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


def _ray_metrics() -> str:
    """Where Ray exports the replicas' metrics (its Prometheus endpoint on this node)."""
    import ray

    nodes: list[dict[str, Any]] = ray.nodes()  # type: ignore[no-untyped-call]
    ports = sorted({int(node["MetricsExportPort"]) for node in nodes if node.get("Alive")})
    return ", ".join(f"http://127.0.0.1:{port}/metrics" for port in ports) or "Ray's metrics export is off"


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
    return run_up(
        parse_fleet(data, source="gridshift up flags"),
        duration_s=args.duration_s,
        dashboard=args.dashboard,
        log_encoding=args.log_format.upper(),
    )


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
    up.add_argument(
        "--dashboard",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="start Ray's dashboard and Jobs API (default: on; batch jobs need it)",
    )
    up.add_argument(
        "--log-format",
        choices=("text", "json"),
        default="text",
        help="Serve's logs: text, or structured JSON lines (Serve's logging_config encoding)",
    )
    up.set_defaults(func=cmd_up)
