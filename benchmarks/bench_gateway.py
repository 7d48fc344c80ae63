"""Benchmark: requests through the gateway against the same requests sent straight to a regional app.

    python -m benchmarks.bench_gateway [--requests N] [--concurrency 1,4,16] [--inputs 1,8] [--hints realtime|tolerant]
        [--port 18200] [--json]

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
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import gc
import json
import logging
import os
import platform
import re
import shlex
import statistics
import sys
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Annotated, Any

import aiohttp
import numpy as np
from fastapi import FastAPI, Header
from ray import serve
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from fleet.clock import FixedClock
from fleet.config import FleetConfig
from fleet.loaders import load_fleet, load_rtt_matrix, parse_fleet
from grid.context import load_context
from policies.actors.client import LocalClient
from policies.control import ControlPlane
from policies.control_state import ControlState, GatewayLoad
from serve_apps.app import APP_NAME, regional_deployment_name
from serve_apps.backends import HandleBackend, RegionalResult, RegionBackend
from serve_apps.gateway import GatewayCore, Served
from serve_apps.http_api import embeddings_body
from serve_apps.up import start_local_ray, wait_until_running

PEAK = "2022-09-07T01:00:00Z"
REGION = "us-west-2"  # the regional deployment both paths reach
DIRECT_APP = "direct"
DIRECT_PREFIX = "/direct"
DEFAULT_PORT = 18200
ROUNDS = 4
MAX_ONGOING_REQUESTS = 1024  # as serve_apps.app.Gateway (checked at start-up)
TARGET_P50_RATIO = 1.25  # gateway p50 at most this times direct
TARGET_THROUGHPUT_RATIO = 0.8  # gateway throughput at least this times direct
MODEL = "all-MiniLM-L6-v2"
SENTENCES = (
    "The grid is stressed tonight, so batch jobs can wait.",
    "Grid operators dispatch generators to keep supply and demand in balance.",
    "Please reset my password.",
    "The train to the airport leaves every fifteen minutes.",
    "Batch inference jobs can be deferred to hours when solar output is high.",
    "Quantising the linear layers to eight bits speeds up CPU inference.",
    "A heat wave pushes air-conditioning load to a record evening peak.",
    "Oregon's hydro keeps its headroom while California runs short.",
)
HINTS: dict[str, dict[str, str]] = {
    # STAY at us-west-2 with a budget no queueing estimate exceeds: served in us-west-2 at any load.
    "realtime": {
        "X-Gridshift-Class": "realtime",
        "X-Gridshift-Origin": REGION,
        "X-Gridshift-Latency-Budget-Ms": "1000",
    },
    # SHIFT from California at its peak: us-west-2 while it looks idle, spread to us-east-2 under load.
    "tolerant": {"X-Gridshift-Class": "tolerant", "X-Gridshift-Origin": "us-west-1"},
}
PATHS = ("gateway", "direct")

logger = logging.getLogger("gridshift.bench_gateway")


# The direct path --------------------------------------------------------------------------------------


def build_direct_app(handle: Any) -> Starlette:
    """One route: parse the body, await the regional deployment's `embed`, answer OpenAI JSON.

    `handle` is a Serve deployment handle (untyped: Ray's stubs do not describe `.embed.remote`)."""

    async def embeddings(request: Request) -> Response:
        body = json.loads(await request.body())
        texts = [body["input"]] if isinstance(body["input"], str) else list(body["input"])
        result: RegionalResult = await handle.embed.remote(texts)
        return JSONResponse(embeddings_body(result), headers={"X-Gridshift-Region": result.region})

    return Starlette(routes=[Route("/v1/embeddings", embeddings, methods=["POST"])])


def build_fastapi_twin(handle: Any) -> FastAPI:
    """The direct app's work behind FastAPI with the gateway route's signature (request + three hint headers,
    unused): timed in-process only, to tell the framework's cost from the gateway's own work."""
    app = FastAPI()

    @app.post("/v1/embeddings")
    async def embeddings(
        raw: Request,
        x_gridshift_class: Annotated[str | None, Header()] = None,
        x_gridshift_latency_budget_ms: Annotated[str | None, Header()] = None,
        x_gridshift_origin: Annotated[str | None, Header()] = None,
    ) -> JSONResponse:
        del x_gridshift_class, x_gridshift_latency_budget_ms, x_gridshift_origin
        body = json.loads(await raw.body())
        texts = [body["input"]] if isinstance(body["input"], str) else list(body["input"])
        result: RegionalResult = await handle.embed.remote(texts)
        return JSONResponse(embeddings_body(result), headers={"X-Gridshift-Region": result.region})

    return app


@serve.deployment(max_ongoing_requests=MAX_ONGOING_REQUESTS)
@serve.ingress()
class DirectIngress:
    """The baseline ingress: the same regional deployment handle as the gateway's, nothing else."""

    def __init__(self, app_name: str, deployment_name: str) -> None:
        # Untyped: Ray's stubs type `.remote()` results as awaitables that never return.
        self._handle: Any = serve.get_deployment_handle(deployment_name, app_name=app_name)

    def __serve_build_asgi_app__(self) -> Starlette:
        return build_direct_app(self._handle)


# Cluster set-up ---------------------------------------------------------------------------------------


def bench_fleet(port: int) -> FleetConfig:
    """The default fleet as tests/integration deploys it: peak replayed in real time, no WAN emulation."""
    data = load_fleet().model_dump(mode="json")
    data["signal_source"].update(start=PEAK, speedup=1.0)
    data["gateway"].update(port=port, wan_emulation=False)
    return parse_fleet(data, source="bench_gateway fleet")


def deploy_direct(fleet: FleetConfig, timeout_s: float = 300.0) -> None:
    from serve_apps.app import Gateway

    # serve.deployment turns the class into a Deployment; Ray's stubs leave it typed as the class.
    gateway_limit = Gateway.max_ongoing_requests  # type: ignore[attr-defined]
    if gateway_limit != MAX_ONGOING_REQUESTS:
        raise RuntimeError(f"Gateway admits {gateway_limit} requests, the direct app {MAX_ONGOING_REQUESTS}")
    app = DirectIngress.options(  # type: ignore[attr-defined]
        num_replicas=fleet.gateway.replicas, ray_actor_options={"num_cpus": fleet.gateway.num_cpus}
    ).bind(APP_NAME, regional_deployment_name(REGION))
    serve.run(app, name=DIRECT_APP, route_prefix=DIRECT_PREFIX, blocking=False)
    wait_until_running(DIRECT_APP, timeout_s)


# HTTP load --------------------------------------------------------------------------------------------


class BenchError(RuntimeError):
    """A request failed: the comparison would be meaningless, so the run stops."""


@dataclass
class Round:
    latencies_s: list[float]
    request_ids: list[str]  # parallel to latencies_s; sent as X-Request-Id, which Serve's access logs carry
    wall_s: float
    regions: dict[str, int]
    batches: int = 0  # batches the regional replica ran during the round
    batched_requests: float = 0.0  # requests in them (the replica's cumulative mean occupancy × batches)


def payload(inputs: int) -> bytes:
    return json.dumps({"input": list(SENTENCES[:inputs]), "model": MODEL}).encode()


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


# Where the gateway's time goes (in-process) -----------------------------------------------------------


class _InstantMethod:
    """`handle.embed.remote(texts)` answering a fixed result at once (a coroutine, as awaitable as Ray's)."""

    def __init__(self, result: RegionalResult) -> None:
        self._result = result

    def remote(self, texts: list[str]) -> Awaitable[RegionalResult]:
        async def answer() -> RegionalResult:
            if len(texts) != len(self._result.embeddings):
                raise ValueError(f"{len(texts)} texts for {len(self._result.embeddings)} stored vectors")
            return self._result

        return answer()


class InstantHandle:
    def __init__(self, result: RegionalResult) -> None:
        self.embed = _InstantMethod(result)


class StillControl(ControlPlane):
    """The control plane, except that a gateway's sync never brings a newer state (the in-process apps run no
    refresh loop: the state is set once)."""

    def sync(self, gateway_id: str, load: GatewayLoad, known_version: int) -> ControlState | None:
        del gateway_id, load, known_version
        return None


async def asgi_post(app: Any, path: str, body: bytes, headers: dict[str, str]) -> tuple[int, dict[str, str], bytes]:
    """One POST through an ASGI app, no sockets: what the Serve replica does with a proxied request."""
    raw_headers = [(k.lower().encode(), v.encode()) for k, v in headers.items()]
    raw_headers.append((b"content-length", str(len(body)).encode()))
    scope: dict[str, Any] = {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": raw_headers,
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", DEFAULT_PORT),
        "state": {},
    }
    incoming = [{"type": "http.request", "body": body, "more_body": False}]
    status = 0
    answer_headers: dict[str, str] = {}
    chunks: list[bytes] = []

    async def receive() -> dict[str, Any]:
        return incoming.pop() if incoming else {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = int(message["status"])
            answer_headers.update((k.decode(), v.decode()) for k, v in message.get("headers", []))
        elif message["type"] == "http.response.body":
            chunks.append(message.get("body", b""))

    await app(scope, receive, send)
    return status, answer_headers, b"".join(chunks)


@dataclass
class Attribution:
    inputs: int
    gateway_app_us: float  # one request through the gateway's ASGI app, backend answering at once
    direct_app_us: float  # the same through the direct app
    app_delta_us: float
    decide_us: float  # route_request + GatewayCore.decide for the hints sent
    decide_tolerant_us: float  # the same for tolerant from us-west-1 (SHIFT), for reference
    validate_us: float  # EmbeddingsRequest.model_validate of the parsed body
    routing_headers_us: float
    forward_us: float  # GatewayCore.serve less decide less a bare handle await: failover loop, wait_for task
    fastapi_us: float  # the direct app's work behind FastAPI with the gateway's route signature, less direct
    rest_us: float  # app delta less the pieces above: hint parsing, bounded body read, error handlers
    response_build_us: float  # openai body + JSONResponse render: shared by both paths
    identical_body: bool  # the direct app's answer equals the gateway's byte for byte


def _time_us(run: Callable[[], object], calls: int) -> float:
    started = time.perf_counter_ns()
    for _ in range(calls):
        run()
    return (time.perf_counter_ns() - started) / calls / 1000.0


async def _time_async_us(run: Callable[[], Awaitable[object]], calls: int) -> float:
    started = time.perf_counter_ns()
    for _ in range(calls):
        await run()
    return (time.perf_counter_ns() - started) / calls / 1000.0


async def attribute(
    fleet: FleetConfig, state: ControlState, inputs: int, sample: bytes, headers: dict[str, str], calls: int
) -> Attribution:
    """Time the gateway's per-request work against the direct app's, in this process, interleaved."""
    from serve_apps.http_api import EmbeddingsRequest, _routing_headers, create_app

    answer = json.loads(sample)
    vectors = np.asarray([row["embedding"] for row in answer["data"]], dtype=np.float32)
    result = RegionalResult(REGION, vectors, "fp32", int(answer["usage"]["prompt_tokens"]), str(answer["model"]))
    handle = InstantHandle(result)
    backends: dict[str, RegionBackend] = {name: HandleBackend(name, handle) for name in fleet.region_names}
    control = LocalClient(StillControl(load_context(fleet), FixedClock(state.snapshot.at_s), FixedClock(0.0)))
    core = GatewayCore(fleet, load_rtt_matrix(fleet.latency), control, backends)
    core.state = state
    gateway_app = create_app(core, None)
    direct_app = build_direct_app(handle)
    twin_app = build_fastapi_twin(handle)
    body = payload(inputs)
    texts = list(SENTENCES[:inputs])
    path = "/v1/embeddings"

    gw_status, gw_headers, gw_body = await asgi_post(gateway_app, path, body, headers)
    direct_status, _, direct_body = await asgi_post(direct_app, path, body, headers)
    twin_status, _, twin_body = await asgi_post(twin_app, path, body, headers)
    if gw_status != 200 or direct_status != 200 or twin_status != 200:
        raise BenchError(f"in-process apps answered {gw_status}, {direct_status}, {twin_status}: {gw_body[:300]!r}")
    if gw_headers.get("x-gridshift-region") != REGION:
        raise BenchError(f"in-process gateway routed to {gw_headers.get('x-gridshift-region')}, not {REGION}")

    klass = headers["X-Gridshift-Class"]
    origin = headers["X-Gridshift-Origin"]
    budget = headers.get("X-Gridshift-Latency-Budget-Ms")
    route = core.route_request(origin, klass, None if budget is None else float(budget))
    tolerant = core.route_request("us-west-1", "tolerant", None)
    parsed = json.loads(body)
    served: Served = await core.serve(route, texts)

    async def gateway_call() -> object:
        return await asgi_post(gateway_app, path, body, headers)

    async def direct_call() -> object:
        return await asgi_post(direct_app, path, body, headers)

    async def twin_call() -> object:
        return await asgi_post(twin_app, path, body, headers)

    async def core_serve() -> object:
        return await core.serve(route, texts)

    async def bare_handle() -> object:
        return await handle.embed.remote(texts)

    calls_async: dict[str, Callable[[], Awaitable[object]]] = {
        "gateway": gateway_call,
        "direct": direct_call,
        "twin": twin_call,
        "serve": core_serve,
        "handle": bare_handle,
    }

    def render() -> object:
        return JSONResponse(embeddings_body(result)).body

    pieces: dict[str, Callable[[], object]] = {
        "decide": lambda: core.decide(core.route_request(origin, klass, route.latency_budget_ms), state),
        "decide_tolerant": lambda: core.decide(tolerant, state),
        "validate": lambda: EmbeddingsRequest.model_validate(parsed),
        "headers": lambda: _routing_headers(served),
        "render": render,
    }
    samples: dict[str, list[float]] = {name: [] for name in [*calls_async, *pieces]}
    for index in range(7):
        gc.collect()
        for name in calls_async if index % 2 == 0 else reversed(calls_async):
            samples[name].append(await _time_async_us(calls_async[name], calls))
        for name, run in pieces.items():
            samples[name].append(_time_us(run, calls))
    median = {name: statistics.median(values) for name, values in samples.items()}
    delta = median["gateway"] - median["direct"]
    forward = median["serve"] - median["decide"] - median["handle"]
    framework = median["twin"] - median["direct"]
    return Attribution(
        inputs=inputs,
        gateway_app_us=median["gateway"],
        direct_app_us=median["direct"],
        app_delta_us=delta,
        decide_us=median["decide"],
        decide_tolerant_us=median["decide_tolerant"],
        validate_us=median["validate"],
        routing_headers_us=median["headers"],
        forward_us=forward,
        fastapi_us=framework,
        rest_us=delta - median["decide"] - median["validate"] - median["headers"] - forward - framework,
        response_build_us=median["render"],
        identical_body=gw_body == direct_body == twin_body,
    )


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


def _positive_ints(text: str) -> list[int]:
    try:
        values = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a comma-separated list of integers: {text!r}") from None
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"need positive integers, got {text!r}")
    return values


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench_gateway", description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=200, help="requests per path per level (default 200)")
    parser.add_argument("--rounds", type=int, default=ROUNDS, help=f"alternating rounds per path (default {ROUNDS})")
    parser.add_argument("--concurrency", type=_positive_ints, default=[1, 4, 16], help="levels (default 1,4,16)")
    parser.add_argument(
        "--inputs",
        type=_positive_ints,
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
    args = parser.parse_args(argv)
    if min(args.requests, args.rounds, args.attribution_calls, args.ray_cpus) < 1:
        parser.error("--requests, --rounds, --attribution-calls and --ray-cpus must be positive")
    if max(args.inputs) > len(SENTENCES):
        parser.error(f"--inputs: at most {len(SENTENCES)} sentences")
    command = shlex.join(["python", "-m", "benchmarks.bench_gateway", *(sys.argv[1:] if argv is None else argv)])
    # Ray prints its own notices (e.g. from the raylet at shutdown) to sys.stdout: keep stdout for the result.
    with contextlib.redirect_stdout(sys.stderr):
        summary = run_benchmark(args, command)
    print(json.dumps(dataclasses.asdict(summary), indent=2) if args.json else render_table(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
