"""The two paths bench_gateway compares: shared settings and request bytes, and the direct app beside the gateway."""

from __future__ import annotations

import argparse
import json
from typing import Annotated, Any

from fastapi import FastAPI, Header
from ray import serve
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from fleet.config import FleetConfig
from fleet.loaders import load_fleet, parse_fleet
from serve_apps.app import APP_NAME, regional_deployment_name
from serve_apps.backends import RegionalResult
from serve_apps.http_api import embeddings_body
from serve_apps.up import wait_until_running

PEAK = "2022-09-07T01:00:00Z"
REGION = "us-west-2"  # the regional deployment both paths reach
DIRECT_APP = "direct"
DIRECT_PREFIX = "/direct"
DEFAULT_PORT = 18200
ROUNDS = 4
MAX_ONGOING_REQUESTS = 1024  # as serve_apps.app.Gateway (checked at start-up)
TARGET_P50_RATIO = 1.10  # gateway p50 at most this times direct
TARGET_THROUGHPUT_RATIO = 0.9  # gateway throughput at least this times direct
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


class BenchError(RuntimeError):
    """A request failed: the comparison would be meaningless, so the run stops."""


def positive_ints(text: str) -> list[int]:
    """A command line's comma-separated list of positive integers (levels, payload sizes)."""
    try:
        values = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a comma-separated list of integers: {text!r}") from None
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"need positive integers, got {text!r}")
    return values


def payload(inputs: int) -> bytes:
    return json.dumps({"input": list(SENTENCES[:inputs]), "model": MODEL}).encode()


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


def bench_fleet(port: int, path: str | None = None) -> FleetConfig:
    """The fleet at `path` (default: the packaged one) as tests/integration deploys it: peak replayed in real time,
    no WAN emulation."""
    data = load_fleet(path).model_dump(mode="json")
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
