"""In-process fixtures for bench_gateway (instant handle, still control plane, ASGI without sockets) and attribution.

With them, `attribute` times the gateway's per-request work against the direct app's in this process.
"""

from __future__ import annotations

import gc
import json
import statistics
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from starlette.responses import JSONResponse

from benchmarks.gateway_paths import (
    DEFAULT_PORT,
    REGION,
    SENTENCES,
    BenchError,
    build_direct_app,
    build_fastapi_twin,
    payload,
)
from fleet.clock import FixedClock
from fleet.config import FleetConfig
from fleet.loaders import load_rtt_matrix
from grid.context import load_context
from policies.actors.client import LocalClient
from policies.control import ControlPlane
from policies.control_state import ControlState, GatewayLoad
from serve_apps.backends import HandleBackend, RegionalResult, RegionBackend
from serve_apps.gateway import GatewayCore, Served
from serve_apps.http_api import embeddings_body


class _InstantMethod:
    """`handle.embed.remote(texts)` answering a fixed result at once (a coroutine, as awaitable as Ray's)."""

    def __init__(self, result: RegionalResult) -> None:
        self._result = result

    def remote(self, texts: list[str], workload_class: str = "tolerant") -> Awaitable[RegionalResult]:
        del workload_class  # HandleBackend passes the class on as it does to a regional replica; the answer is fixed

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
    from serve_apps.api_schema import EmbeddingsRequest
    from serve_apps.http_api import _routing_headers, create_app

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
