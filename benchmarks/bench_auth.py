"""Benchmark: gateway latency with tenant auth and usage recording against without, in-process, same run.

    python -m benchmarks.bench_auth [--requests N] [--rounds R] [--json]
    python -m benchmarks.bench_auth --smoke    # seconds: small sizes, the output's shape is checked

Two apps over one real ControlPlane on the packaged trace at the heat-wave peak, fake regions (no model, no Ray),
requests sent through ASGI without sockets (benchmarks/gateway_fixtures.asgi_post):
- `open`: the default fleet (auth open), no key: today's path;
- `tenant`: auth required, a tenant key (SQLite file database) with its tier header, every answer's usage
  buffered and written by the recorder's background flush while the run goes on.
Rounds alternate which app goes first. Latency is per request (perf_counter); the ratio is tenant / open p50.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.gateway_fixtures import asgi_post
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=500, help="requests per path per round")
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--smoke", action="store_true", help="small sizes; check the output's shape")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    requests, rounds = (50, 2) if args.smoke else (args.requests, args.rounds)
    result = asyncio.run(_run(requests, rounds))
    check_shape(result)
    if args.json:
        print(json.dumps(result, indent=2))
        return
    print(f"{result['requests_per_path']} requests per path, in-process, fake regions")
    for path in ("open", "tenant"):
        print(f"  {path:<7} p50 {result['p50_us'][path]:>8.1f} us   p90 {result['p90_us'][path]:>8.1f} us")
    verdict = "within" if result["ratio_p50"] <= TARGET_RATIO else "over"
    print(f"  tenant/open p50 ratio {result['ratio_p50']:.3f} ({verdict} the {TARGET_RATIO} target)")
    print(f"  usage recorded {result['usage_recorded']} = served {result['tenant_served']}")


if __name__ == "__main__":
    main()
