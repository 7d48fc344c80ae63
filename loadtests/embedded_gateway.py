"""Embedded gateway for load tests: a child process that owns a local Ray cluster and the fleet, and kills regions.

    python -m loadtests.embedded_gateway --port 18100 [--fleet FILE] [--start 2022-09-07T01:00:00Z]

The runner starts it (the admin token in GRIDSHIFT_ADMIN_TOKEN), reads one line `LOADTEST-GATEWAY ready URL`
from its stdout once the application is running, and then writes commands on its stdin, one per line:
`kill REGION` (every Serve replica of that region's deployment is killed; Serve starts new ones, as after a
crash) answered by `LOADTEST-GATEWAY killed REGION N`, and `stop`. End of input stops it too, so a runner that
dies never leaves a Ray cluster behind. Ray lives only here: the runner and the locust process never import it.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
from collections.abc import Sequence
from types import FrameType
from typing import Any

from fleet.config import FleetConfig
from fleet.loaders import load_fleet, parse_fleet
from loadtests.scenarios import PEAK
from serve_apps.admin_token import ADMIN_TOKEN_ENV

PREFIX = "LOADTEST-GATEWAY"
DESCRIPTION = "A load test's own gateway: owns a local Ray cluster and the fleet, and kills regions on command."
TOKEN_ENV = ADMIN_TOKEN_ENV


def loadtest_fleet(fleet_path: str | None, port: int, start: str, wan_emulation: bool) -> FleetConfig:
    """The fleet as a load test runs it: grid held at `start` (replayed in real time), on `port`, with WAN
    emulation on by default so latency budgets are real on one machine."""
    data = load_fleet(fleet_path).model_dump(mode="json")
    data["signal_source"].update(start=start, speedup=1.0)
    data["gateway"].update(host="127.0.0.1", port=port, wan_emulation=wan_emulation)
    return parse_fleet(data, source="load-test fleet")


def kill_region(region: str) -> int:
    """Kill every Serve replica of `region`'s deployment; returns how many were killed."""
    import ray

    from serve_apps.app import regional_deployment_name

    marker = f"#{regional_deployment_name(region)}#"  # replica actors are SERVE_REPLICA::<app>#<deployment>#<id>
    killed = 0
    actors: list[Any] = ray.util.list_named_actors(all_namespaces=True)
    for actor in actors:
        name, namespace = str(actor["name"]), str(actor["namespace"])
        if name.startswith("SERVE_REPLICA") and marker in name:
            ray.kill(ray.get_actor(name, namespace=namespace), no_restart=True)
            killed += 1
    return killed


def _say(message: str) -> None:
    print(f"{PREFIX} {message}", flush=True)


def _stop_on_sigterm(_signum: int, _frame: FrameType | None) -> None:
    raise SystemExit(0)  # unwinds through the finally below, which shuts Serve and Ray down


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m loadtests.embedded_gateway", description=DESCRIPTION)
    parser.add_argument("--port", type=int, required=True, help="gateway port on 127.0.0.1")
    parser.add_argument("--fleet", help="fleet YAML (default: the packaged four-region fleet)")
    parser.add_argument("--start", default=PEAK, help=f"trace time the grid is held at (default {PEAK})")
    parser.add_argument("--no-wan-emulation", action="store_true", help="forward without emulated round trips")
    args = parser.parse_args(argv)
    token = os.environ.get(TOKEN_ENV)
    if not token:
        parser.error(f"set {TOKEN_ENV}: the runner posts DR events with it")
    fleet = loadtest_fleet(args.fleet, args.port, args.start, not args.no_wan_emulation)
    signal.signal(signal.SIGTERM, _stop_on_sigterm)

    import ray
    from ray import serve

    from policies.actors.control import get_or_create_control_actor
    from serve_apps.up import deploy, start_local_ray

    try:
        start_local_ray(fleet=fleet)
        get_or_create_control_actor(fleet)
        deploy(fleet, token, blocking_timeout_s=300)
        _say(f"ready http://127.0.0.1:{args.port}")
        for line in sys.stdin:
            command = line.split()
            if not command:
                continue
            if command[0] == "stop":
                break
            if command[0] == "kill" and len(command) == 2 and command[1] in fleet.region_names:
                _say(f"killed {command[1]} {kill_region(command[1])}")
            else:
                _say(f"error unknown command {line.strip()!r}")
        return 0
    finally:
        if ray.is_initialized():
            try:
                serve.shutdown()  # type: ignore[no-untyped-call]
            finally:
                ray.shutdown()


if __name__ == "__main__":
    sys.exit(main())
