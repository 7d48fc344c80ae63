"""Load-test runner: starts (or finds) a gateway, runs locust headless on a scenario, drives its grid changes and
writes the routing summary. Exits 1 on any routing violation, 2 on bad arguments.

    python -m loadtests.run --scenario smoke|steady|dr_event|region_kill [--url URL | --fake-gateway]
        [--users N] [--duration S] [--results DIR]
    python -m loadtests.run --scenario trace_replay|overload [--rate R] [--trace FILE] [--duration S]

Without --url it starts the embedded default fleet itself (`loadtests.embedded_gateway`, a child process that
owns Ray), holding the grid at the 2022-09-07T01:00Z heat-wave peak with WAN emulation on. Locust runs in a
child process too: the runner imports neither Ray nor locust. docs/loadtests.md explains the rules and reports.

This module is the command line; `loadtests.gateways` starts and stops the gateway, `loadtests.actions` makes the
grid changes and `loadtests.locust_run` runs locust and writes the result files.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from loadtests.azure_trace import TRACE_FILE
from loadtests.embedded_gateway import TOKEN_ENV
from loadtests.gateways import gateway_for
from loadtests.locust_run import run
from loadtests.run_settings import RunError, RunSettings, say
from loadtests.scenarios import (
    MAX_DURATION_S,
    MAX_SPAWN_RATE,
    MAX_USER_RPS,
    MAX_USERS,
    MIN_ACTION_DURATION_S,
    PEAK,
    SCENARIOS,
    LoadPlan,
    StagePlan,
    check_caps,
    check_loopback,
)


def _weights(text: str) -> dict[str, float]:
    """`a=3,b=1` into {'a': 3.0, 'b': 1.0}."""
    weights = {}
    for item in text.split(","):
        name, sep, value = item.partition("=")
        if not sep:
            raise argparse.ArgumentTypeError(f"expected name=weight, got {item!r}")
        try:
            weights[name.strip()] = float(value)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a number: {value!r}") from None
    return weights


DEFAULT_TRACE = Path(__file__).resolve().parents[2] / "shared" / "data" / "workloads" / TRACE_FILE


def parser() -> argparse.ArgumentParser:
    cli = argparse.ArgumentParser(
        prog="python -m loadtests.run",
        description="Run a gridshift load-test scenario headless and check routing on every answer.",
    )
    cli.add_argument("--scenario", required=True, choices=sorted(SCENARIOS), help="what to run")
    target = cli.add_mutually_exclusive_group()
    target.add_argument("--url", help="a running gateway on loopback (default: start the embedded default fleet)")
    target.add_argument("--fake-gateway", action="store_true", help="run against a deliberately wrong gateway")
    cli.add_argument("--users", type=int, help=f"concurrent users, at most {MAX_USERS} (default: the scenario's)")
    cli.add_argument("--duration", type=float, help=f"seconds, at most {MAX_DURATION_S:g} (default: the scenario's)")
    cli.add_argument("--spawn-rate", type=float, help=f"users started per second, at most {MAX_SPAWN_RATE:g}")
    cli.add_argument("--rate-per-user", type=float, help=f"requests per second per user, at most {MAX_USER_RPS:g}")
    cli.add_argument("--results", type=Path, help="results folder (default: results/<scenario>-<UTC time>)")
    cli.add_argument("--fleet", help="the gateway's fleet YAML (default: the packaged fleet)")
    cli.add_argument("--mix", type=_weights, help="workload class weights, e.g. realtime=3,tolerant=7")
    cli.add_argument("--origins", type=_weights, help="origin weights, e.g. us-west-1=3,us-east-1=1 (default: even)")
    cli.add_argument("--event-region", default="us-west-2", help="region of the DR event or kill (default us-west-2)")
    cli.add_argument("--event-level", type=int, default=3, choices=(1, 2, 3), help="DR event level (default 3)")
    cli.add_argument("--max-reaction-s", type=float, default=2.0, help="reaction time limit, s (default 2)")
    cli.add_argument("--start", default=PEAK, help=f"embedded gateway: trace time the grid is held at (default {PEAK})")
    cli.add_argument("--no-wan-emulation", action="store_true", help="embedded gateway: no emulated round trips")
    cli.add_argument("--port", type=int, help="port for the gateway this runner starts (default: a free one)")
    cli.add_argument("--rate", type=float, help="trace scenarios: mean requests per second (default: the scenario's)")
    cli.add_argument("--trace", type=Path, default=DEFAULT_TRACE, help="trace scenarios: the Azure LLM trace (csv.gz)")
    return cli


def settings_from(args: argparse.Namespace, cli: argparse.ArgumentParser) -> RunSettings:
    scenario = SCENARIOS[args.scenario]
    if scenario.trace_rate_per_s is None and args.rate is not None:
        cli.error(f"--rate is for the trace scenarios; scenario {scenario.name} runs users (--users, --rate-per-user)")
    if scenario.trace_rate_per_s is not None and args.users not in (None, 1):
        cli.error(f"scenario {scenario.name} replays a trace open-loop: set --rate, not --users")
    users = args.users if args.users is not None else scenario.users
    duration_s = args.duration if args.duration is not None else scenario.duration_s
    user_rps = args.rate_per_user if args.rate_per_user is not None else scenario.user_rps
    spawn_rate = args.spawn_rate if args.spawn_rate is not None else float(min(users, MAX_SPAWN_RATE))
    try:
        check_caps(users, duration_s, spawn_rate, user_rps)
    except ValueError as error:
        cli.error(str(error))
    if scenario.actions and duration_s < MIN_ACTION_DURATION_S:
        cli.error(f"scenario {scenario.name} changes the grid mid-run: --duration must be >= {MIN_ACTION_DURATION_S:g}")
    if args.max_reaction_s <= 0:
        cli.error("--max-reaction-s must be positive")
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    results = args.results or Path("results") / f"{scenario.name}-{stamp}"
    results.mkdir(parents=True, exist_ok=True)
    records = results / "records.jsonl"
    records.unlink(missing_ok=True)
    plan_fields: dict[str, Any] = {
        "scenario": scenario.name,
        "fleet_path": args.fleet,
        "records_path": str(records),
        "user_rps": user_rps,
        "stages": [
            StagePlan(until_fraction=s.until_fraction, users_fraction=s.users_fraction) for s in scenario.stages
        ],
    }
    if scenario.trace_rate_per_s is not None:
        if not args.trace.is_file():
            cli.error(f"--trace {args.trace}: not a file (the Azure LLM trace is in ../shared/data/workloads/)")
        rate = args.rate if args.rate is not None else scenario.trace_rate_per_s
        plan_fields["trace"] = {"path": str(args.trace), "rate_per_s": rate}
    plan_fields["allow_overload"] = scenario.allow_overload
    if args.mix:
        plan_fields["workload_mix"] = args.mix
    if args.origins:
        plan_fields["origins"] = args.origins
    try:
        plan = LoadPlan(**plan_fields)
    except ValueError as error:
        cli.error(str(error))
    return RunSettings(
        scenario,
        users,
        spawn_rate,
        duration_s,
        user_rps,
        results,
        args.fleet,
        args.event_region,
        args.event_level,
        args.max_reaction_s,
        plan,
    )


def main(argv: Sequence[str] | None = None) -> int:
    cli = parser()
    args = cli.parse_args(argv)
    if args.url:
        try:
            check_loopback(args.url)
        except ValueError as error:
            cli.error(str(error))
    scenario = SCENARIOS[args.scenario]
    if scenario.kills_region and (args.url or args.fake_gateway):
        cli.error(f"scenario {scenario.name} kills Ray Serve replicas: it needs the embedded gateway (no --url)")
    if scenario.needs_admin and args.url and not os.environ.get(TOKEN_ENV):
        cli.error(f"scenario {scenario.name} posts DR events: set {TOKEN_ENV} to the gateway's admin token")
    settings = settings_from(args, cli)
    try:
        with gateway_for(args, settings) as gateway:
            return run(settings, gateway)
    except RunError as error:
        say(f"FAILED: {error}")
        return 1
    except KeyboardInterrupt:
        say("interrupted")
        return 130


if __name__ == "__main__":
    sys.exit(main())
