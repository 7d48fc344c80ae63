"""Benchmark: the cost of one region choice, against a nearest-region lookup and one loopback HTTP hop.

    python -m benchmarks.bench_routing [--repeat N] [--json]   # 21 rounds; fleets of 4, 16, 64 and 256 regions
    python -m benchmarks.bench_routing --smoke [--json]        # seconds: 2 rounds, fleets of 4 and 16 (shape checked)

Everything runs in one process and one run, interleaved: every round times, for each fleet size, the
baseline (nearest healthy region: a min over the origin's round-trip-time row), `choose_region` for a
tolerant and a real-time request, and then a batch of real HTTP round trips to an aiohttp server on
127.0.0.1 (keep-alive client session, tiny JSON answer). Odd rounds run the jobs in reverse order, so slow
phases of a shared machine hit every job alike. Each figure is the median over rounds; ratios are the
median of the per-round ratios (paired within a round), which is what makes them trustworthy on a noisy
machine where absolute times are not.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import gc
import json
import math
import os
import platform
import random
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import aiohttp
from aiohttp import web

from fleet.routing import RoutingConfig, RoutingMode
from router.routing import RegionState, RouteRequest, choose_region
from router.sticky import StickyRouter

FLEET_SIZES = (4, 16, 64, 256)
SMOKE_FLEET_SIZES = (4, 16)
SMOKE_ROUNDS = 2
SMOKE_HTTP_REQUESTS_PER_ROUND = 8
SEED = 20220907
REQUESTS_PER_FLEET = 64  # distinct (origin, draw) pairs cycled through, so no single path is measured
TOLERANT_BUDGET_MS = 250.0
REALTIME_BUDGET_MS = 60.0
BATCH_TARGET_NS = 8_000_000  # one timed batch of decisions lasts about this long
MAX_BATCH = 50_000
HTTP_REQUESTS_PER_ROUND = 40
CONFIG = RoutingConfig()

KINDS = ("baseline", "tolerant", "realtime", "explained", "served")


class BenchError(RuntimeError):
    """A run of the benchmark failed; the message says which."""


@dataclass(frozen=True)
class Fleet:
    """A synthetic fleet with its latency matrix and the requests replayed against it."""

    regions: tuple[RegionState, ...]
    rtt_ms: dict[str, dict[str, float]]
    tolerant: tuple[tuple[RouteRequest, float], ...]  # (request, draw)
    realtime: tuple[RouteRequest, ...]


def synthetic_fleet(size: int, rng: random.Random) -> Fleet:
    """Regions scattered on a plane; RTT grows with distance, plus jitter (so the matrix is asymmetric)."""
    names = [f"region-{index:03d}" for index in range(size)]
    places = {name: (rng.uniform(0.0, 100.0), rng.uniform(0.0, 100.0)) for name in names}
    rtt_ms: dict[str, dict[str, float]] = {}
    for source in names:
        row = {}
        for target in names:
            if source == target:
                row[target] = rng.uniform(0.5, 3.0)
            else:
                distance = math.dist(places[source], places[target])
                row[target] = 2.0 + 1.2 * distance + rng.uniform(0.0, 3.0)
        rtt_ms[source] = row
    regions = []
    for name in names:
        headroom = rng.random()
        stress = 3 if headroom < 0.08 else 2 if headroom < 0.2 else 1 if headroom < 0.35 else 0
        regions.append(
            RegionState(
                name=name,
                headroom=headroom,
                stress_level=stress,
                healthy=rng.random() > 0.05,
                utilization=rng.uniform(0.0, 1.1),
                capacity_replicas=rng.randint(1, 8),
                service_time_ms=rng.uniform(5.0, 30.0),
            )
        )
    origins = [rng.choice(names) for _ in range(REQUESTS_PER_FLEET)]
    tolerant = tuple(
        (RouteRequest(origin, "tolerant", RoutingMode.SHIFT, TOLERANT_BUDGET_MS), rng.random()) for origin in origins
    )
    realtime = tuple(RouteRequest(origin, "realtime", RoutingMode.STAY, REALTIME_BUDGET_MS) for origin in origins)
    return Fleet(tuple(regions), rtt_ms, tolerant, realtime)


def nearest_healthy(origin: str, regions: Sequence[RegionState], rtt_ms: dict[str, dict[str, float]]) -> str:
    """The trivial baseline: the healthy region with the smallest round trip from the origin."""
    row = rtt_ms[origin]
    best_name, best_rtt = "", math.inf
    for region in regions:
        if region.healthy:
            rtt = row.get(region.name)
            if rtt is not None and rtt < best_rtt:
                best_name, best_rtt = region.name, rtt
    return best_name


def decision_batch(fleet: Fleet, kind: str) -> Callable[[int], None]:
    """A function that makes `n` decisions of one kind, cycling over the fleet's requests."""
    regions, rtt_ms = fleet.regions, fleet.rtt_ms
    if kind == "baseline":
        origins = [request.origin for request, _ in fleet.tolerant]

        def baseline(n: int) -> None:
            for k in range(n):
                nearest_healthy(origins[k % len(origins)], regions, rtt_ms)

        return baseline
    if kind == "served":
        # What a gateway replica pays per request (GatewayCore.decide): the ranking planned once per control state
        # (plan_key), each request a draw over it. Plans are built on the first pass; the benchmark warms every kind.
        router = StickyRouter(rtt_ms, CONFIG)
        served = fleet.tolerant

        def cached(n: int) -> None:
            for k in range(n):
                request, draw = served[k % len(served)]
                router.decide(request, regions, draw=draw, plan_key=1)

        return cached
    if kind in ("tolerant", "explained"):
        tolerant = fleet.tolerant
        # The gateway's serving path skips per-candidate explanations; `explained` is what /v1/route pays.
        explain = kind == "explained"

        def shift(n: int) -> None:
            for k in range(n):
                request, draw = tolerant[k % len(tolerant)]
                choose_region(request, regions, rtt_ms, CONFIG, draw=draw, explain=explain)

        return shift
    realtime = fleet.realtime

    def stay(n: int) -> None:
        for k in range(n):
            choose_region(realtime[k % len(realtime)], regions, rtt_ms, CONFIG, explain=False)

    return stay


def time_batch(run: Callable[[int], None], n: int) -> float:
    """Nanoseconds per call over one batch of `n` calls."""
    start = time.perf_counter_ns()
    run(n)
    return (time.perf_counter_ns() - start) / n


def calibrate(run: Callable[[int], None]) -> int:
    """Warm up, then pick a batch size that lasts about BATCH_TARGET_NS."""
    run(REQUESTS_PER_FLEET)  # every request path once: caches, branch history, lazy imports
    per_call = time_batch(run, 16)
    per_call = min(per_call, time_batch(run, 16))
    return max(8, min(MAX_BATCH, int(BATCH_TARGET_NS / max(per_call, 1.0))))


async def _answer(_request: web.Request) -> web.Response:
    return web.json_response({"region": "us-east-1", "reason": "spread_by_capacity"})


@dataclass
class Results:
    """Per-round nanoseconds per call, by (fleet size, kind), and per HTTP round trip."""

    decision_ns: dict[tuple[int, str], list[float]]
    http_ns: list[float]
    batch_sizes: dict[tuple[int, str], int]


async def measure(rounds: int, sizes: Sequence[int], http_requests: int = HTTP_REQUESTS_PER_ROUND) -> Results:
    rng = random.Random(SEED)
    fleets = {size: synthetic_fleet(size, rng) for size in sizes}
    runs = {(size, kind): decision_batch(fleets[size], kind) for size in sizes for kind in KINDS}
    batch_sizes = {key: calibrate(run) for key, run in runs.items()}

    app = web.Application()
    app.router.add_get("/route", _answer)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    try:
        site = web.TCPSite(runner, "127.0.0.1", 0)  # ephemeral port
        await site.start()
        port = int(runner.addresses[0][1])
        url = f"http://127.0.0.1:{port}/route"
        async with aiohttp.ClientSession() as session:

            async def http_batch(n: int) -> float:
                start = time.perf_counter_ns()
                for _ in range(n):
                    async with session.get(url) as response:
                        response.raise_for_status()
                        await response.json()
                return (time.perf_counter_ns() - start) / n

            await http_batch(http_requests)  # warm-up: connection, parser, handler

            decision_ns: dict[tuple[int, str], list[float]] = {key: [] for key in runs}
            http_ns: list[float] = []
            jobs: list[tuple[int, str] | None] = [*runs, None]  # None: the HTTP batch
            for round_index in range(rounds):
                gc.collect()
                for job in jobs if round_index % 2 == 0 else reversed(jobs):
                    if job is None:
                        http_ns.append(await http_batch(http_requests))
                    else:
                        decision_ns[job].append(time_batch(runs[job], batch_sizes[job]))
    finally:
        await runner.cleanup()
    return Results(decision_ns, http_ns, batch_sizes)


def paired_median_ratio(numerators: Sequence[float], denominators: Sequence[float]) -> float:
    return statistics.median(n / d for n, d in zip(numerators, denominators, strict=True))


@dataclass(frozen=True)
class Row:
    regions: int
    baseline_us: float
    tolerant_us: float
    tolerant_x_baseline: float
    tolerant_pct_of_http_hop: float
    realtime_us: float
    realtime_x_baseline: float
    realtime_pct_of_http_hop: float
    explained_us: float
    explained_x_baseline: float
    served_us: float
    served_pct_of_http_hop: float
    batch_sizes: dict[str, int]


@dataclass(frozen=True)
class Summary:
    benchmark: str
    smoke: bool
    rounds: int
    http_hop_us: float
    http_requests_per_round: int
    tolerant_budget_ms: float
    realtime_budget_ms: float
    python: str
    aiohttp: str
    cpus: int | None
    rows: list[Row]


def summarize(
    results: Results,
    sizes: Sequence[int],
    rounds: int,
    http_requests: int = HTTP_REQUESTS_PER_ROUND,
    smoke: bool = False,
) -> Summary:
    rows = []
    for size in sizes:
        baseline = results.decision_ns[(size, "baseline")]
        tolerant = results.decision_ns[(size, "tolerant")]
        realtime = results.decision_ns[(size, "realtime")]
        explained = results.decision_ns[(size, "explained")]
        served = results.decision_ns[(size, "served")]
        rows.append(
            Row(
                regions=size,
                baseline_us=statistics.median(baseline) / 1000,
                tolerant_us=statistics.median(tolerant) / 1000,
                tolerant_x_baseline=paired_median_ratio(tolerant, baseline),
                tolerant_pct_of_http_hop=100 * paired_median_ratio(tolerant, results.http_ns),
                realtime_us=statistics.median(realtime) / 1000,
                realtime_x_baseline=paired_median_ratio(realtime, baseline),
                realtime_pct_of_http_hop=100 * paired_median_ratio(realtime, results.http_ns),
                explained_us=statistics.median(explained) / 1000,
                explained_x_baseline=paired_median_ratio(explained, baseline),
                served_us=statistics.median(served) / 1000,
                served_pct_of_http_hop=100 * paired_median_ratio(served, results.http_ns),
                batch_sizes={kind: results.batch_sizes[(size, kind)] for kind in KINDS},
            )
        )
    return Summary(
        benchmark="bench_routing",
        smoke=smoke,
        rounds=rounds,
        http_hop_us=statistics.median(results.http_ns) / 1000,
        http_requests_per_round=http_requests,
        tolerant_budget_ms=TOLERANT_BUDGET_MS,
        realtime_budget_ms=REALTIME_BUDGET_MS,
        python=platform.python_version(),
        aiohttp=aiohttp.__version__,
        cpus=os.cpu_count(),
        rows=rows,
    )


def render_table(summary: Summary) -> str:
    lines = [
        f"choose_region cost per decision: median of {summary.rounds} interleaved rounds in one process "
        f"(Python {summary.python}, {summary.cpus} CPUs)",
        f"one loopback HTTP round trip (aiohttp server + keep-alive client session, same process): "
        f"{summary.http_hop_us:.1f} µs",
        "",
        "| regions | baseline µs | tolerant µs | × baseline | % of HTTP hop "
        "| realtime µs | × baseline | % of HTTP hop | explained µs | × baseline | served µs | % of HTTP hop |",
        "|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for row in summary.rows:
        lines.append(
            f"| {row.regions} | {row.baseline_us:.2f} | {row.tolerant_us:.1f} | {row.tolerant_x_baseline:.1f} | "
            f"{row.tolerant_pct_of_http_hop:.1f} % | {row.realtime_us:.1f} | {row.realtime_x_baseline:.1f} | "
            f"{row.realtime_pct_of_http_hop:.1f} % | {row.explained_us:.1f} | {row.explained_x_baseline:.1f} | "
            f"{row.served_us:.2f} | {row.served_pct_of_http_hop:.2f} % |"
        )
    lines += [
        "",
        "baseline: nearest healthy region by RTT (a min over the origin's row). "
        f"tolerant: SHIFT, budget {summary.tolerant_budget_ms:g} ms. realtime: STAY, budget "
        f"{summary.realtime_budget_ms:g} ms. tolerant and realtime: choose_region without explanations, what the "
        "gateway pays once per control state and (origin, class, budget) to plan a ranking; "
        "explained: tolerant with every candidate's figures and reasons, as /v1/route and the CLI. "
        "served: tolerant as a gateway replica serves it, a draw over the ranking planned once per control state. "
        "Ratios and percentages are medians of per-round ratios.",
    ]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench_routing", description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=21, help="interleaved rounds (default 21)")
    parser.add_argument("--json", action="store_true", help="print the results as JSON instead of a table")
    parser.add_argument("--smoke", action="store_true", help="toy sizes, for CI: the output shape is checked")
    args = parser.parse_args(argv)
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")
    rounds = SMOKE_ROUNDS if args.smoke else args.repeat
    sizes = SMOKE_FLEET_SIZES if args.smoke else FLEET_SIZES
    http_requests = SMOKE_HTTP_REQUESTS_PER_ROUND if args.smoke else HTTP_REQUESTS_PER_ROUND
    results = asyncio.run(measure(rounds, sizes, http_requests))
    summary = summarize(results, sizes, rounds, http_requests, smoke=args.smoke)
    if args.smoke:
        check_shape(summary, sizes, rounds)
    print(json.dumps(dataclasses.asdict(summary), indent=2) if args.json else render_table(summary))
    return 0


def check_shape(summary: Summary, sizes: Sequence[int], rounds: int) -> None:
    """What the smoke run holds itself to: a row per fleet size, every figure finite and positive (no timing target)."""
    if summary.rounds != rounds or [row.regions for row in summary.rows] != list(sizes):
        raise BenchError(
            f"{summary.rounds} rounds, rows {[row.regions for row in summary.rows]}: expected "
            f"{rounds} rounds and rows {list(sizes)}"
        )
    if not (math.isfinite(summary.http_hop_us) and summary.http_hop_us > 0):
        raise BenchError(f"http_hop_us = {summary.http_hop_us}")
    for row in summary.rows:
        for key, value in dataclasses.asdict(row).items():
            if key != "batch_sizes" and not (math.isfinite(value) and value > 0):
                raise BenchError(f"{row.regions} regions: {key} = {value}")
        if set(row.batch_sizes) != set(KINDS) or not all(8 <= n <= MAX_BATCH for n in row.batch_sizes.values()):
            raise BenchError(f"{row.regions} regions: batch sizes {row.batch_sizes}, expected 8..{MAX_BATCH} per kind")


if __name__ == "__main__":
    sys.exit(main())
