"""Benchmark: requests through the gateway against the same requests sent straight to a regional app.

    python -m benchmarks.bench_gateway [--requests N] [--concurrency 1,4,16] [--inputs 1,8] [--hints realtime|tolerant]
        [--port 18200] [--json]
    python -m benchmarks.bench_gateway --smoke    # toy sizes, what CI runs: the output's shape is checked

One run, one local Ray cluster (a fresh one: `address="local"`, never an existing cluster), two Serve
applications on one HTTP proxy:

- `gridshift` (route prefix `/`): the default fleet as `gridshift up` deploys it, replaying the heat-wave
  peak (2022-09-07T01:00Z) in real time, without WAN emulation (no emulated round-trip sleeps);
- `direct` (route prefix `/direct`): a minimal Starlette ingress defined here. It parses the same
  OpenAI-style JSON body, awaits the *same* regional deployment (`region-us-west-2`, through a deployment
  handle, as the gateway does) and answers the same OpenAI JSON, serialised the same way. No routing,
  no validation beyond parsing, no failover.

Both paths get the same request bytes (body and headers; the direct app ignores the hints). By default the
hints are `realtime` from `us-west-2` with a 1,000 ms budget, so the gateway serves every request in
us-west-2, the region the direct path calls, at every concurrency. Every answer's `X-Gridshift-Region` is
checked. (`--hints tolerant` sends tolerant work from us-west-1: the gateway shifts it to us-west-2 while
that region looks idle, but it reports its own in-flight requests to the control state, and from about
half of one full batch in flight (8 requests) it spreads the work to us-east-2; answers served elsewhere
are counted and flagged, as such a level is not like for like.)

For each payload and concurrency level: a warm-up, then ROUNDS alternating rounds per path (gateway
first in even rounds, direct first in odd ones) from one aiohttp session whose connection limit is the
concurrency. Latency is per request (perf_counter, send to last body byte); throughput is requests over
the rounds' wall time. Ratios are gateway / direct. Each request carries a fresh X-Request-Id, so after the
run Serve's own access logs (proxy, ingress replica, regional replica) split each request's time by hop;
the regional replica's batch counters, read between rounds, give the batch sizes each path produced.

Then, in this process and the same run, where the gateway's extra time goes: both ASGI apps (the real
`serve_apps.http_api.create_app` over a real `GatewayCore` and the live control state, and the direct
app) are called without sockets against one instant fake deployment handle, and the gateway-only pieces
(routing decision, request validation, routing headers) and the shared response building are timed
alone. The control-state refresh the gateway runs in the background is timed as a round trip from here.

This module is the entry point, the orchestration and the report; `benchmarks.gateway_paths` holds the shared
settings and the direct app, `benchmarks.gateway_load` the HTTP rounds and access logs, and
`benchmarks.gateway_fixtures` the in-process attribution.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import json
import os
import platform
import shlex
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ray import serve

from benchmarks.gateway_fixtures import Attribution, attribute
from benchmarks.gateway_load import LevelResult, Round, hops, measure_level, read_access_logs, serve_logs_dir
from benchmarks.gateway_paths import (
    DEFAULT_PORT,
    HINTS,
    PATHS,
    REGION,
    ROUNDS,
    SENTENCES,
    TARGET_P50_RATIO,
    TARGET_THROUGHPUT_RATIO,
    bench_fleet,
    deploy_direct,
    positive_ints,
)
from fleet.config import FleetConfig
from policies.control_state import ControlState
from serve_apps.up import start_local_ray


@dataclass
class RefreshCost:
    refresh_period_s: float
    unchanged_ms: float  # control actor round trip when the state has not changed (answer: None)
    full_state_ms: float  # round trip carrying the whole state (after any routing-relevant change)


def refresh_cost(control: Any, version: int, fleet: FleetConfig, calls: int = 40) -> RefreshCost:
    """The gateway's background refresh, timed as a round trip from this driver to the control actor."""
    import ray

    def trip(known: int) -> float:
        started = time.perf_counter()
        for _ in range(calls):
            ray.get(control.state.remote(known))
        return (time.perf_counter() - started) / calls * 1000.0

    trip(-1)
    return RefreshCost(fleet.gateway.state_refresh_s, trip(version), trip(-1))


# Orchestration ----------------------------------------------------------------------------------------


@dataclass
class Summary:
    benchmark: str
    command: str
    hints: dict[str, str]
    region: str
    rounds: int
    requests_per_path_per_level: int
    targets: dict[str, float]
    levels: list[LevelResult]
    attribution: list[Attribution]
    refresh: RefreshCost
    deploy_s: float
    total_s: float
    python: str
    cpus: int | None
    ray_cpus: int


async def _measure_all(
    port: int,
    inputs_list: Sequence[int],
    levels: Sequence[int],
    requests: int,
    rounds_per_path: int,
    headers: dict[str, str],
) -> tuple[list[tuple[LevelResult, dict[str, list[Round]]]], dict[int, bytes]]:
    base_url = f"http://127.0.0.1:{port}"
    results: list[tuple[LevelResult, dict[str, list[Round]]]] = []
    samples: dict[int, bytes] = {}
    for inputs in inputs_list:
        for concurrency in levels:
            result, rounds, sample = await measure_level(
                base_url, inputs, concurrency, requests, rounds_per_path, headers
            )
            samples[inputs] = sample
            results.append((result, rounds))
            print(
                f"  inputs {inputs} concurrency {concurrency}: p50 x{result.p50_ratio:.2f} "
                f"throughput x{result.throughput_ratio:.2f}",
                file=sys.stderr,
                flush=True,
            )
    return results, samples


def run_benchmark(args: argparse.Namespace, command: str) -> Summary:
    import ray

    from policies.actors.control import get_or_create_control_actor
    from serve_apps.up import deploy

    started = time.perf_counter()
    headers = {"Content-Type": "application/json", **HINTS[args.hints]}
    fleet = bench_fleet(args.port)
    print(f"bench_gateway: starting a local Ray cluster ({args.ray_cpus} CPUs) ...", file=sys.stderr, flush=True)
    start_local_ray(args.ray_cpus)
    logs_dir = serve_logs_dir()
    try:
        control: Any = get_or_create_control_actor(fleet)  # untyped: Ray's stubs mistype `.remote()` results
        deploy(fleet, "bench-gateway-admin-token-unused-0123456789", blocking_timeout_s=300)
        deploy_direct(fleet)
        deploy_s = time.perf_counter() - started
        print(f"bench_gateway: deployed in {deploy_s:.0f} s; measuring ...", file=sys.stderr, flush=True)
        measured, samples = asyncio.run(
            _measure_all(args.port, args.inputs, args.concurrency, args.requests, args.rounds, headers)
        )
        state: ControlState = ray.get(control.state.remote())
        attribution = [
            asyncio.run(attribute(fleet, state, inputs, samples[inputs], headers, args.attribution_calls))
            for inputs in args.inputs
        ]
        refresh = refresh_cost(control, state.version, fleet)
    finally:
        try:
            serve.shutdown()  # type: ignore[no-untyped-call]
        finally:
            ray.shutdown()  # after Serve's replicas have flushed their access logs
    records = read_access_logs(logs_dir)
    levels = []
    for level, rounds in measured:
        level.hops = {path: hops(rounds[path], records) for path in PATHS}
        levels.append(level)
    return Summary(
        benchmark="bench_gateway",
        command=command,
        hints=HINTS[args.hints],
        region=REGION,
        rounds=args.rounds,
        requests_per_path_per_level=max(1, args.requests // args.rounds) * args.rounds,
        targets={"p50_ratio_max": TARGET_P50_RATIO, "throughput_ratio_min": TARGET_THROUGHPUT_RATIO},
        levels=levels,
        attribution=attribution,
        refresh=refresh,
        deploy_s=deploy_s,
        total_s=time.perf_counter() - started,
        python=platform.python_version(),
        cpus=os.cpu_count(),
        ray_cpus=args.ray_cpus,
    )


def render_table(summary: Summary) -> str:
    lines = [
        f"$ {summary.command}",
        f"gateway vs direct to {summary.region}: {summary.requests_per_path_per_level} requests per path per level "
        f"in {summary.rounds} alternating rounds; hints {summary.hints}; Ray {summary.ray_cpus} CPUs on a "
        f"{summary.cpus}-CPU machine (Python {summary.python})",
        "",
        "| inputs | conc | gw p50 ms | direct p50 ms | p50 × | gw p99 ms | direct p99 ms | p99 × "
        "| gw req/s | direct req/s | req/s × | p50 × by round | req/s × by round | batch gw / direct | target |",
        "|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--|--|--|--|",
    ]
    for level in summary.levels:
        g, d = level.gateway, level.direct
        note = "met" if level.target_met else "MISSED"
        if not level.like_for_like:
            note += f" (not like for like: {g.served_elsewhere} gateway answers not from {summary.region})"
        lines.append(
            f"| {level.inputs} | {level.concurrency} | {g.p50_ms:.1f} | {d.p50_ms:.1f} | {level.p50_ratio:.2f} "
            f"| {g.p99_ms:.1f} | {d.p99_ms:.1f} | {level.p99_ratio:.2f} | {g.throughput_rps:.0f} "
            f"| {d.throughput_rps:.0f} | {level.throughput_ratio:.2f} "
            f"| {' '.join(f'{r:.2f}' for r in level.round_p50_ratios)} "
            f"| {' '.join(f'{r:.2f}' for r in level.round_throughput_ratios)} "
            f"| {g.mean_batch:.2f} / {d.mean_batch:.2f} | {note} |"
        )
    lines += [
        "",
        "per-request time by hop, from Serve's access logs joined by request id (medians, ms; gw / direct / delta;",
        "outside proxy = client − proxy figure, negative where the proxy's timer runs past the client's last byte)",
        "",
        "| inputs | conc | matched | client | outside proxy | proxy hop | ingress app + handle hop | regional embed |",
        "|--:|--:|--:|--|--|--|--|",
    ]
    for level in summary.levels:
        hg, hd = level.hops.get("gateway"), level.hops.get("direct")
        if hg is None or hd is None:
            lines.append(f"| {level.inputs} | {level.concurrency} | unknown (access logs not found) | | | | | |")
            continue
        cells = [
            f"{getattr(hg, name):.1f} / {getattr(hd, name):.1f} / {getattr(hg, name) - getattr(hd, name):+.1f}"
            for name in ("client_ms", "outside_proxy_ms", "proxy_hop_ms", "ingress_ms", "regional_ms")
        ]
        lines.append(f"| {level.inputs} | {level.concurrency} | {hg.matched}+{hd.matched} | {' | '.join(cells)} |")
    lines += [
        "",
        f"targets: gateway p50 ≤ {summary.targets['p50_ratio_max']:g}× direct and throughput ≥ "
        f"{summary.targets['throughput_ratio_min']:g}× direct. × = gateway / direct. batch: requests per batch "
        "the regional replica ran during each path's rounds (its stats method, read between rounds).",
        "",
        "where the gateway's extra time goes: one request through each ASGI app in this process, backend "
        "answering at once (median of 7 interleaved rounds, µs per request)",
        "",
        "| inputs | gateway app | direct app | delta | decide (sent hints) | decide (tolerant) | validate "
        "| routing headers | forward | FastAPI | rest | response build (both) | same body |",
        "|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--|",
    ]
    for a in summary.attribution:
        lines.append(
            f"| {a.inputs} | {a.gateway_app_us:.0f} | {a.direct_app_us:.0f} | {a.app_delta_us:.0f} "
            f"| {a.decide_us:.1f} | {a.decide_tolerant_us:.1f} | {a.validate_us:.1f} | {a.routing_headers_us:.1f} "
            f"| {a.forward_us:.0f} | {a.fastapi_us:.0f} | {a.rest_us:.0f} | {a.response_build_us:.0f} "
            f"| {'yes' if a.identical_body else 'NO'} |"
        )
    r = summary.refresh
    lines += [
        "",
        "forward: GatewayCore.serve less decide less a bare `await handle.embed.remote()` (failover loop, "
        "bookkeeping, asyncio.wait_for task). FastAPI: the direct app's work behind FastAPI with the gateway "
        "route's signature (three header parameters), less the Starlette direct app. rest: delta less all the "
        "above: hint parsing, the bounded body read, error handlers (a remainder, not timed one by one).",
        f"background control-state refresh every {r.refresh_period_s:g} s: {r.unchanged_ms:.2f} ms round trip "
        f"when unchanged, {r.full_state_ms:.2f} ms with the full state (driver → control actor).",
        f"deploy {summary.deploy_s:.0f} s; total wall time {summary.total_s:.0f} s",
    ]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench_gateway", description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=200, help="requests per path per level (default 200)")
    parser.add_argument("--rounds", type=int, default=ROUNDS, help=f"alternating rounds per path (default {ROUNDS})")
    parser.add_argument("--concurrency", type=positive_ints, default=[1, 4, 16], help="levels (default 1,4,16)")
    parser.add_argument(
        "--inputs",
        type=positive_ints,
        default=[1, 8],
        help=f"sentences per request, payloads run in turn, each ≤ {len(SENTENCES)} (default 1,8)",
    )
    parser.add_argument("--hints", choices=sorted(HINTS), default="realtime", help="gateway hints (default realtime)")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"Serve HTTP port (default {DEFAULT_PORT})")
    parser.add_argument("--ray-cpus", type=int, default=2, help="CPUs of the local Ray cluster (default 2)")
    parser.add_argument(
        "--attribution-calls", type=int, default=300, help="in-process calls per timed batch (default 300)"
    )
    parser.add_argument("--json", action="store_true", help="print the results as JSON instead of a table")
    parser.add_argument("--smoke", action="store_true", help="toy sizes, for CI: the output shape is checked")
    args = parser.parse_args(argv)
    if args.smoke:
        args.requests, args.rounds, args.concurrency, args.inputs, args.attribution_calls = 20, 2, [1, 4], [1], 20
    if min(args.requests, args.rounds, args.attribution_calls, args.ray_cpus) < 1:
        parser.error("--requests, --rounds, --attribution-calls and --ray-cpus must be positive")
    if max(args.inputs) > len(SENTENCES):
        parser.error(f"--inputs: at most {len(SENTENCES)} sentences")
    command = shlex.join(["python", "-m", "benchmarks.bench_gateway", *(sys.argv[1:] if argv is None else argv)])
    # Ray prints its own notices (e.g. from the raylet at shutdown) to sys.stdout: keep stdout for the result.
    with contextlib.redirect_stdout(sys.stderr):
        summary = run_benchmark(args, command)
    print(json.dumps(dataclasses.asdict(summary), indent=2) if args.json else render_table(summary))
    if args.smoke:
        check_shape(summary, len(args.inputs) * len(args.concurrency))
    return 0


def check_shape(summary: Summary, levels: int) -> None:
    """What the smoke run holds itself to: a level per (inputs, concurrency), every path served like for like from
    the region, every latency and rate positive (not the overhead target: toy sizes cannot measure it)."""
    if len(summary.levels) != levels:
        raise SystemExit(f"bench_gateway: {len(summary.levels)} levels, expected {levels}")
    for level in summary.levels:
        figures = (level.gateway.p50_ms, level.direct.p50_ms, level.p50_ratio, level.throughput_ratio)
        if not (level.like_for_like and all(figure > 0 for figure in figures)):
            raise SystemExit(
                f"bench_gateway: level {level.inputs} x {level.concurrency}: {figures}, {level.like_for_like}"
            )


if __name__ == "__main__":
    sys.exit(main())
