"""HTTP load for bench_gateway: rounds per path over sockets, their statistics, and per-hop times from Serve's logs."""

from __future__ import annotations

import asyncio
import dataclasses
import gc
import os
import re
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import aiohttp
import numpy as np
from ray import serve

from benchmarks.gateway_paths import (
    DIRECT_APP,
    DIRECT_PREFIX,
    PATHS,
    REGION,
    TARGET_P50_RATIO,
    TARGET_THROUGHPUT_RATIO,
    BenchError,
    payload,
)
from serve_apps.app import APP_NAME, regional_deployment_name


@dataclass
class Round:
    latencies_s: list[float]
    request_ids: list[str]  # parallel to latencies_s; sent as X-Request-Id, which Serve's access logs carry
    wall_s: float
    regions: dict[str, int]
    batches: int = 0  # batches the regional replica ran during the round
    batched_requests: float = 0.0  # requests in them (the replica's cumulative mean occupancy × batches)


async def run_round(
    session: aiohttp.ClientSession, url: str, body: bytes, headers: dict[str, str], n: int, concurrency: int
) -> Round:
    """`n` requests from `concurrency` workers, each sending its next request as soon as one answers."""
    latencies: list[float] = []
    request_ids: list[str] = []
    regions: dict[str, int] = {}
    remaining = n

    async def worker() -> None:
        nonlocal remaining
        while remaining > 0:
            remaining -= 1
            request_id = uuid.uuid4().hex  # same length on both paths: same request bytes but the path
            started = time.perf_counter()
            async with session.post(url, data=body, headers={**headers, "X-Request-Id": request_id}) as response:
                answer = await response.read()
                status = response.status
                region = response.headers.get("X-Gridshift-Region", "?")
            latencies.append(time.perf_counter() - started)
            request_ids.append(request_id)
            if status != 200:
                raise BenchError(f"POST {url}: HTTP {status}: {answer[:300]!r}")
            regions[region] = regions.get(region, 0) + 1

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(min(concurrency, n))))
    return Round(latencies, request_ids, time.perf_counter() - started, regions)


@dataclass
class PathStats:
    p50_ms: float
    p99_ms: float
    mean_ms: float
    throughput_rps: float
    requests: int
    served_elsewhere: int  # answers not served in REGION
    mean_batch: float  # requests per batch at the regional replica during this path's rounds


@dataclass
class Hops:
    """Where one path's time goes at one level: per-request figures joined by request id from Serve's own
    access logs (proxy, ingress replica, regional replica), medians in ms. Medians of parts do not add up."""

    matched: int  # requests found in all three logs
    client_ms: float  # as the client measured it
    outside_proxy_ms: float  # client − proxy: client, TCP and HTTP parsing outside the proxy's timer
    proxy_hop_ms: float  # proxy − ingress: proxy → ingress replica and back
    ingress_ms: float  # ingress − regional: the ingress app's own work plus the handle hop both ways
    regional_ms: float  # the regional replica's embed call: admission, batch wait, model


@dataclass
class LevelResult:
    inputs: int
    concurrency: int
    gateway: PathStats
    direct: PathStats
    p50_ratio: float
    p99_ratio: float
    throughput_ratio: float
    round_p50_ratios: list[float]  # per round pair: the spread shows the machine's noise
    round_throughput_ratios: list[float]
    target_met: bool
    like_for_like: bool  # every answer on both paths came from REGION
    hops: dict[str, Hops | None] = dataclasses.field(default_factory=dict)  # by path; None: logs not found


def path_stats(rounds: Sequence[Round]) -> PathStats:
    latencies = np.array([lat for r in rounds for lat in r.latencies_s]) * 1000.0
    requests = len(latencies)
    elsewhere = sum(count for r in rounds for region, count in r.regions.items() if region != REGION)
    batches = sum(r.batches for r in rounds)
    return PathStats(
        p50_ms=float(np.percentile(latencies, 50)),
        p99_ms=float(np.percentile(latencies, 99)),
        mean_ms=float(latencies.mean()),
        throughput_rps=requests / sum(r.wall_s for r in rounds),
        requests=requests,
        served_elsewhere=elsewhere,
        mean_batch=sum(r.batched_requests for r in rounds) / batches if batches else float("nan"),
    )


def round_p50_ms(r: Round) -> float:
    return float(np.percentile(np.array(r.latencies_s) * 1000.0, 50))


async def regional_batches(regional: Any) -> tuple[int, float]:
    """(batches, requests batched) so far at the regional replica, from its `stats` method."""
    stats: dict[str, Any] = await regional.stats.remote()
    batches = int(stats["batches"])
    return batches, float(stats["mean_batch_occupancy"]) * batches


async def measure_level(
    base_url: str, inputs: int, concurrency: int, requests: int, rounds_per_path: int, headers: dict[str, str]
) -> tuple[LevelResult, dict[str, list[Round]], bytes]:
    """Warm-up, then interleaved rounds per path. Returns the result, the rounds and one answer's body."""
    body = payload(inputs)
    urls = {"gateway": f"{base_url}/v1/embeddings", "direct": f"{base_url}{DIRECT_PREFIX}/v1/embeddings"}
    per_round = max(1, requests // rounds_per_path)
    # Untyped: Ray's stubs type `.remote()` results as awaitables that never return.
    regional: Any = serve.get_deployment_handle(regional_deployment_name(REGION), app_name=APP_NAME)
    rounds: dict[str, list[Round]] = {path: [] for path in PATHS}
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=120)) as session:
        for path in PATHS:
            await run_round(session, urls[path], body, headers, max(4 * concurrency, 16), concurrency)
        async with session.post(urls["direct"], data=body, headers=headers) as response:
            sample = await response.read()
        for index in range(rounds_per_path):
            gc.collect()
            for path in PATHS if index % 2 == 0 else reversed(PATHS):
                batches, batched = await regional_batches(regional)
                measured = await run_round(session, urls[path], body, headers, per_round, concurrency)
                batches_after, batched_after = await regional_batches(regional)
                measured.batches, measured.batched_requests = batches_after - batches, batched_after - batched
                rounds[path].append(measured)
    gateway, direct = path_stats(rounds["gateway"]), path_stats(rounds["direct"])
    p50_ratio = gateway.p50_ms / direct.p50_ms
    throughput_ratio = gateway.throughput_rps / direct.throughput_rps
    result = LevelResult(
        inputs=inputs,
        concurrency=concurrency,
        gateway=gateway,
        direct=direct,
        p50_ratio=p50_ratio,
        p99_ratio=gateway.p99_ms / direct.p99_ms,
        throughput_ratio=throughput_ratio,
        round_p50_ratios=[
            round_p50_ms(g) / round_p50_ms(d) for g, d in zip(rounds["gateway"], rounds["direct"], strict=True)
        ],
        round_throughput_ratios=[
            (len(g.latencies_s) / g.wall_s) / (len(d.latencies_s) / d.wall_s)
            for g, d in zip(rounds["gateway"], rounds["direct"], strict=True)
        ],
        target_met=p50_ratio <= TARGET_P50_RATIO and throughput_ratio >= TARGET_THROUGHPUT_RATIO,
        like_for_like=gateway.served_elsewhere == 0 and direct.served_elsewhere == 0,
    )
    return result, rounds, sample


# Serve's access logs ----------------------------------------------------------------------------------

_ACCESS_LINE = re.compile(r" (?P<rid>[0-9a-f]{32}) -- (?:POST|CALL) .* (?P<ms>[0-9]+(?:\.[0-9]+)?)ms$")


def serve_logs_dir() -> str:
    """This cluster's Serve log folder (not /tmp/ray/session_latest: another cluster may be newer)."""
    import ray._private.worker as ray_worker

    node: Any = ray_worker._global_node  # private, untyped: the only place the session's log path is kept
    return os.path.join(str(node.get_logs_dir_path()), "serve")


def read_access_logs(logs_dir: str) -> dict[str, dict[str, float]]:
    """Request id -> {"proxy" | "ingress" | "regional": ms} from the proxy's and replicas' access logs."""
    kinds = {
        "proxy_": "proxy",
        f"replica_{APP_NAME}_Gateway_": "ingress",
        f"replica_{DIRECT_APP}_DirectIngress_": "ingress",
        f"replica_{APP_NAME}_{regional_deployment_name(REGION)}_": "regional",
    }
    records: dict[str, dict[str, float]] = {}
    if not os.path.isdir(logs_dir):
        return records
    for name in sorted(os.listdir(logs_dir)):
        kind = next((k for prefix, k in kinds.items() if name.startswith(prefix)), None)
        if kind is None or ".log" not in name:
            continue
        with open(os.path.join(logs_dir, name), encoding="utf-8", errors="replace") as lines:
            for line in lines:
                match = _ACCESS_LINE.search(line.rstrip())
                if match:
                    records.setdefault(match["rid"], {})[kind] = float(match["ms"])
    return records


def hops(rounds: Sequence[Round], records: dict[str, dict[str, float]]) -> Hops | None:
    rows = []
    for r in rounds:
        for request_id, latency_s in zip(r.request_ids, r.latencies_s, strict=True):
            found = records.get(request_id, {})
            if {"proxy", "ingress", "regional"} <= found.keys():
                rows.append((latency_s * 1000.0, found["proxy"], found["ingress"], found["regional"]))
    if not rows:
        return None
    client, proxy, ingress, regional = (np.array(column) for column in zip(*rows, strict=True))
    return Hops(
        matched=len(rows),
        client_ms=float(np.median(client)),
        outside_proxy_ms=float(np.median(client - proxy)),
        proxy_hop_ms=float(np.median(proxy - ingress)),
        ingress_ms=float(np.median(ingress - regional)),
        regional_ms=float(np.median(regional)),
    )
