"""bench_auth over real HTTP: the running gateway with `auth: required` and usage recording against the same fleet open.

One local Ray cluster, one Serve HTTP proxy, the real embedding model. The default fleet is deployed as `gridshift
up` does (bench_gateway's fleet: the heat-wave peak, no WAN emulation), auth open, at route prefix `/`. A second
gateway deployment, the same `Gateway` class with the same fleet but `tenants.auth: required`, a SQLite tenants
database and rate limits far above the offered load (so every call takes the lease path without a 429), is served at
`/tenant` over the *same* regional deployments (handles into the first application). Both paths send bench_gateway's
real-time hints from us-west-2 (served there, nothing moved); the tenant path adds its key and tier 2. Rounds
alternate which path goes first. Afterwards the tenants database must hold one usage record per answered tenant call.
"""

from __future__ import annotations

import asyncio
import gc
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

from benchmarks.gateway_load import PathStats, Round, path_stats, round_p50_ms, run_round
from benchmarks.gateway_paths import HINTS, REGION, bench_fleet, payload
from fleet.config import FleetConfig
from fleet.loaders import parse_fleet
from tenants.store import TenantStore

TENANT_APP = "gridshift-tenant"
TENANT_PREFIX = "/tenant"
PATHS = ("open", "tenant")
ADMIN_TOKEN = "bench-auth-admin-token-unused-0123456789"


@dataclass
class AuthLevel:
    concurrency: int
    open: PathStats
    tenant: PathStats
    p50_ratio: float  # tenant / open
    p99_ratio: float
    throughput_ratio: float
    round_p50_ratios: list[float]


@dataclass
class HttpResult:
    levels: list[AuthLevel]
    tenant_calls: int  # every answered call on the tenant path, warm-ups included
    usage_recorded: int
    deploy_s: float


def tenant_fleet(fleet: FleetConfig, database_url: str) -> FleetConfig:
    data = fleet.model_dump(mode="json")
    data["tenants"].update(auth="required", database_url=database_url, requests_per_s=1e6, items_per_s=1e6)
    return parse_fleet(data, source="bench_auth tenant fleet")


def deploy_tenant_gateway(fleet: FleetConfig, timeout_s: float = 300.0) -> None:
    """The tenant gateway beside the deployed fleet: its own Serve application over the fleet's regional replicas."""
    from ray import serve

    from serve_apps.admin_token import admin_token_digest
    from serve_apps.app import APP_NAME, Gateway, regional_deployment_name
    from serve_apps.up import wait_until_running

    handles = {
        name: serve.get_deployment_handle(regional_deployment_name(name), app_name=APP_NAME)
        for name in fleet.region_names
    }
    app = Gateway.options(  # type: ignore[attr-defined]
        num_replicas=fleet.gateway.replicas, ray_actor_options={"num_cpus": fleet.gateway.num_cpus}
    ).bind(fleet.model_dump(mode="json"), handles, admin_token_digest(ADMIN_TOKEN), ())
    serve.run(app, name=TENANT_APP, route_prefix=TENANT_PREFIX, blocking=False)
    wait_until_running(TENANT_APP, timeout_s)


async def _level(
    base_url: str, concurrency: int, requests: int, rounds: int, headers: dict[str, dict[str, str]]
) -> tuple[AuthLevel, int]:
    body = payload(1)
    urls = {"open": f"{base_url}/v1/embeddings", "tenant": f"{base_url}{TENANT_PREFIX}/v1/embeddings"}
    measured: dict[str, list[Round]] = {path: [] for path in PATHS}
    tenant_calls = 0
    per_round = max(1, requests // rounds)
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=120)) as session:
        for path in PATHS:  # warm-up: connections, key cache, price hour, the first lease
            warm = max(4 * concurrency, 16)
            await run_round(session, urls[path], body, headers[path], warm, concurrency)
            tenant_calls += warm if path == "tenant" else 0
        for index in range(rounds):
            gc.collect()
            for path in PATHS if index % 2 == 0 else reversed(PATHS):
                measured[path].append(await run_round(session, urls[path], body, headers[path], per_round, concurrency))
                tenant_calls += per_round if path == "tenant" else 0
    opened, tenant = path_stats(measured["open"]), path_stats(measured["tenant"])
    level = AuthLevel(
        concurrency=concurrency,
        open=opened,
        tenant=tenant,
        p50_ratio=tenant.p50_ms / opened.p50_ms,
        p99_ratio=tenant.p99_ms / opened.p99_ms,
        throughput_ratio=tenant.throughput_rps / opened.throughput_rps,
        round_p50_ratios=[
            round_p50_ms(t) / round_p50_ms(o) for t, o in zip(measured["tenant"], measured["open"], strict=True)
        ],
    )
    if opened.served_elsewhere or tenant.served_elsewhere:
        raise RuntimeError(f"answers not served in {REGION}: the paths are not like for like ({level})")
    return level, tenant_calls


def run_http(port: int, concurrencies: list[int], requests: int, rounds: int, ray_cpus: int) -> HttpResult:
    """Deploy both gateways on a fresh local Ray cluster, measure, count the usage recorded, shut everything down."""
    import ray
    from ray import serve

    from policies.actors.control import get_or_create_control_actor
    from serve_apps.up import deploy, start_local_ray

    started = time.perf_counter()
    fleet = bench_fleet(port)
    folder = Path(tempfile.mkdtemp(prefix="gridshift-bench-auth-http-"))
    url = f"sqlite:///{folder / 'tenants.db'}"
    store = TenantStore.open(url)
    _, key = store.create_tenant("bench-http", 2, 3)
    hints = {"Content-Type": "application/json", **HINTS["realtime"]}
    headers = {"open": hints, "tenant": {**hints, "Authorization": f"Bearer {key}", "X-Gridshift-Flex-Tier": "2"}}
    start_local_ray(ray_cpus, dashboard=False)
    try:
        get_or_create_control_actor(fleet)
        deploy(fleet, ADMIN_TOKEN, blocking_timeout_s=300)
        deploy_tenant_gateway(tenant_fleet(fleet, url))
        deploy_s = time.perf_counter() - started
        levels, calls = [], 0
        for concurrency in concurrencies:
            base_url = f"http://127.0.0.1:{port}"
            level, tenant_calls = asyncio.run(_level(base_url, concurrency, requests, rounds, headers))
            levels.append(level)
            calls += tenant_calls
        usage = _recorded(store, calls)
    finally:
        try:
            serve.shutdown()  # type: ignore[no-untyped-call]
        finally:
            ray.shutdown()
            store.close()
    return HttpResult(levels, calls, usage, deploy_s)


def _recorded(store: TenantStore, expected: int, timeout_s: float = 10.0) -> int:
    """Usage records in the database once the gateway's recorder has flushed (it writes every usage_flush_s)."""
    deadline = time.monotonic() + timeout_s
    while True:
        count = len(store.usage())
        if count >= expected or time.monotonic() > deadline:
            return count
        time.sleep(0.25)


def http_to_dict(result: HttpResult) -> dict[str, Any]:
    return {
        "levels": [
            {
                "concurrency": level.concurrency,
                "p50_ms": {"open": round(level.open.p50_ms, 2), "tenant": round(level.tenant.p50_ms, 2)},
                "p99_ms": {"open": round(level.open.p99_ms, 2), "tenant": round(level.tenant.p99_ms, 2)},
                "throughput_rps": {
                    "open": round(level.open.throughput_rps, 1),
                    "tenant": round(level.tenant.throughput_rps, 1),
                },
                "requests_per_path": level.open.requests,
                "ratio_p50": round(level.p50_ratio, 3),
                "ratio_p99": round(level.p99_ratio, 3),
                "ratio_throughput": round(level.throughput_ratio, 3),
                "round_p50_ratios": [round(r, 3) for r in level.round_p50_ratios],
            }
            for level in result.levels
        ],
        "tenant_calls": result.tenant_calls,
        "usage_recorded": result.usage_recorded,
        "deploy_s": round(result.deploy_s, 1),
    }
