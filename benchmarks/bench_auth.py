"""Benchmark: gateway latency with tenant auth and usage recording against without, over HTTP and in-process.

    python -m benchmarks.bench_auth [--concurrency 1,4] [--http-requests N] [--http-rounds R] [--requests N]
        [--rounds R] [--no-http] [--port 18210] [--json]
    python -m benchmarks.bench_auth --smoke    # about a minute: small sizes, the output's shape is checked

Over HTTP (benchmarks/auth_http.py, the issue's measure): the running gateway on Ray Serve with the real embedding
model, a fleet with `auth: required` (key, tier 2, usage recorded) against the same fleet open, interleaved in one
run, p50/p99 and throughput per concurrency level and their ratios.

In-process (where the per-request work goes): two apps over one real ControlPlane on the packaged trace at the
heat-wave peak, fake regions (no model, no Ray), requests sent through ASGI without sockets
(benchmarks/gateway_fixtures.asgi_post):
- `open`: the default fleet (auth open), no key: today's path;
- `tenant`: auth required, a tenant key (SQLite file database) with its tier header, every answer's usage
  buffered and written by the recorder's background flush while the run goes on.
Rounds alternate which app goes first. Latency is per request (perf_counter); the ratio is tenant / open p50.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.auth_http import http_to_dict, run_http
from benchmarks.gateway_fixtures import asgi_post
from benchmarks.gateway_paths import positive_ints
from fleet.clock import FixedClock
from fleet.loaders import load_fleet, load_rtt_matrix
from fleet.tenants import AuthMode
from grid.context import FleetContext, load_context
from policies.actors.client import LocalClient
from policies.control import ControlPlane
from serve_apps.gateway import GatewayCore
from serve_apps.http_api import create_app
from serve_apps.provider import Provider
from tenants.store import TenantStore
from tests.fakes import FakeRegion

PEAK_S = 1_662_512_400
BODY = json.dumps({"model": "m", "input": ["grid-aware embeddings", "for tenants"]}).encode()
TARGET_RATIO = 1.05


def _app(context: FleetContext, auth: AuthMode, store: TenantStore) -> tuple[Any, GatewayCore, Provider]:
    fleet = context.fleet.model_copy(
        update={
            "gateway": context.fleet.gateway.model_copy(update={"wan_emulation": False}),
            "tenants": context.fleet.tenants.model_copy(
                update={"auth": auth, "requests_per_s": 1e6, "items_per_s": 1e6}
            ),
        }
    )
    plane = ControlPlane(FleetContext(fleet, context.trace, context.rtt_ms), FixedClock(PEAK_S), FixedClock(0.0))
    core = GatewayCore(
        fleet, load_rtt_matrix(fleet.latency), LocalClient(plane), {r: FakeRegion(r) for r in fleet.region_names}
    )
    provider = Provider(fleet, context, store)
    return create_app(core, None, provider), core, provider


async def _run(requests: int, rounds: int) -> dict[str, Any]:
    context = load_context(load_fleet())
    folder = Path(tempfile.mkdtemp(prefix="gridshift-bench-auth-"))
    store = TenantStore.open(f"sqlite:///{folder / 'tenants.db'}")
    _, key = store.create_tenant("bench", 2, 3)
    apps = {"open": _app(context, AuthMode.OPEN, store), "tenant": _app(context, AuthMode.REQUIRED, store)}
    headers = {
        "open": {"content-type": "application/json"},
        "tenant": {"content-type": "application/json", "authorization": f"Bearer {key}", "x-gridshift-flex-tier": "2"},
    }
    apps["tenant"][2].recorder.start()
    latencies: dict[str, list[float]] = {"open": [], "tenant": []}
    for name, (app, core, _) in apps.items():  # warm-up: first state, first price hour, key cache
        await core.refresh()
        for _ in range(20):
            status, _, _ = await asgi_post(app, "/v1/embeddings", BODY, headers[name])
            if status != 200:
                raise RuntimeError(f"{name}: warm-up answered {status}")
    for round_index in range(rounds):
        order = ("open", "tenant") if round_index % 2 == 0 else ("tenant", "open")
        for name in order:
            app = apps[name][0]
            for _ in range(requests):
                started = time.perf_counter()
                status, _, _ = await asgi_post(app, "/v1/embeddings", BODY, headers[name])
                latencies[name].append((time.perf_counter() - started) * 1e6)
                if status != 200:
                    raise RuntimeError(f"{name}: answered {status}")
    await apps["tenant"][2].recorder.stop()
    recorded = len(store.usage())
    store.close()
    served = sum(apps["tenant"][1].served_by_region.values())
    p50 = {name: statistics.median(values) for name, values in latencies.items()}
    return {
        "schema": "gridshift.bench_auth/v1",
        "requests_per_path": requests * rounds,
        "rounds": rounds,
        "p50_us": {name: round(value, 1) for name, value in p50.items()},
        "p90_us": {name: round(statistics.quantiles(v, n=10)[-1], 1) for name, v in latencies.items()},
        "ratio_p50": round(p50["tenant"] / p50["open"], 3),
        "target_ratio": TARGET_RATIO,
        "usage_recorded": recorded,
        "tenant_served": served,
    }


def check_shape(result: dict[str, Any]) -> None:
    """What --smoke checks: every figure present and sane, and usage reconciling with what was served."""
    for path in ("open", "tenant"):
        if not result["p50_us"][path] > 0 or not result["p90_us"][path] >= result["p50_us"][path]:
            raise SystemExit(f"bench_auth: bad latency figures for {path}: {result}")
    if result["usage_recorded"] != result["tenant_served"]:
        raise SystemExit(f"bench_auth: usage {result['usage_recorded']} != served {result['tenant_served']}")
    http = result.get("http")
    if http is None:
        return
    for level in http["levels"]:
        figures = [level[name][path] for name in ("p50_ms", "p99_ms", "throughput_rps") for path in ("open", "tenant")]
        if not all(figure > 0 for figure in figures):
            raise SystemExit(f"bench_auth: bad HTTP figures at concurrency {level['concurrency']}: {level}")
    if http["usage_recorded"] != http["tenant_calls"]:
        raise SystemExit(f"bench_auth: HTTP usage {http['usage_recorded']} != tenant calls {http['tenant_calls']}")


def render(result: dict[str, Any]) -> str:
    lines = []
    http = result.get("http")
    if http is not None:
        lines += [
            "over HTTP: Ray Serve, the real model, real-time hints from us-west-2; open fleet vs auth required "
            "(key, tier 2, usage recorded), interleaved rounds",
            "",
            "| conc | open p50 ms | tenant p50 ms | p50 x | open p99 ms | tenant p99 ms | p99 x | open req/s "
            "| tenant req/s | req/s x | p50 x by round |",
            "|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--|",
        ]
        for level in http["levels"]:
            p50, p99, rps = level["p50_ms"], level["p99_ms"], level["throughput_rps"]
            lines.append(
                f"| {level['concurrency']} | {p50['open']:.1f} | {p50['tenant']:.1f} | {level['ratio_p50']:.3f} "
                f"| {p99['open']:.1f} | {p99['tenant']:.1f} | {level['ratio_p99']:.3f} | {rps['open']:.1f} "
                f"| {rps['tenant']:.1f} | {level['ratio_throughput']:.3f} "
                f"| {' '.join(f'{r:.2f}' for r in level['round_p50_ratios'])} |"
            )
        verdicts = ["within" if level["ratio_p50"] <= TARGET_RATIO else "over" for level in http["levels"]]
        lines += [
            "",
            f"target tenant/open p50 <= {TARGET_RATIO}: {', '.join(verdicts)}; {http['levels'][0]['requests_per_path']}"
            f" requests per path per level; usage recorded {http['usage_recorded']} = tenant calls "
            f"{http['tenant_calls']} (warm-ups included); deploy {http['deploy_s']:.0f} s",
            "",
        ]
    lines.append(f"in-process, fake regions: {result['requests_per_path']} requests per path")
    for path in ("open", "tenant"):
        lines.append(f"  {path:<7} p50 {result['p50_us'][path]:>8.1f} us   p90 {result['p90_us'][path]:>8.1f} us")
    delta = result["p50_us"]["tenant"] - result["p50_us"]["open"]
    lines.append(f"  tenant/open p50 ratio {result['ratio_p50']:.3f} ({delta:.0f} us more per request)")
    lines.append(f"  usage recorded {result['usage_recorded']} = served {result['tenant_served']}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=500, help="in-process requests per path per round")
    parser.add_argument("--rounds", type=int, default=6, help="in-process rounds")
    parser.add_argument("--http-requests", type=int, default=200, help="HTTP requests per path per level")
    parser.add_argument("--http-rounds", type=int, default=4, help="HTTP alternating rounds per level")
    parser.add_argument(
        "--concurrency", type=positive_ints, default=[1, 4], help="HTTP concurrency levels (default 1,4)"
    )
    parser.add_argument("--port", type=int, default=18210, help="Serve HTTP port (default 18210)")
    parser.add_argument("--ray-cpus", type=int, default=2, help="CPUs of the local Ray cluster (default 2)")
    parser.add_argument("--no-http", action="store_true", help="in-process only (no Ray, no model)")
    parser.add_argument("--smoke", action="store_true", help="small sizes; check the output's shape")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if args.smoke:
        args.requests, args.rounds, args.http_requests, args.http_rounds, args.concurrency = 50, 2, 20, 2, [1]
    if min(args.requests, args.rounds, args.http_requests, args.http_rounds, args.ray_cpus) < 1:
        parser.error("sizes must be positive")
    result = asyncio.run(_run(args.requests, args.rounds))
    if not args.no_http:
        # Ray prints its own notices to stdout: keep stdout for the result.
        with contextlib.redirect_stdout(sys.stderr):
            http = run_http(args.port, args.concurrency, args.http_requests, args.http_rounds, args.ray_cpus)
        result["http"] = http_to_dict(http)
    check_shape(result)
    print(json.dumps(result, indent=2) if args.json else render(result))


if __name__ == "__main__":
    main()
