"""A deliberately wrong gateway: answers every request from its origin with valid-looking headers, on loopback.

    python -m loadtests.fake_gateway --port 18090 [--fleet FILE] [--at 2022-09-07T01:00:00Z]

It serves the real fleet snapshot at `--at` on `GET /v1/regions` (so the checker has a genuine control state to
replay), accepts and ignores DR events, and answers `POST /v1/embeddings` from the request's origin with the
reason a correct gateway would give for staying. A load test against it must fail: that is how the load test
proves it can tell right routing from wrong. Ray-free.
"""

from __future__ import annotations

import argparse
import itertools
import sys
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from aiohttp import web

from fleet.config import FleetConfig
from fleet.loaders import load_fleet
from fleet.routing import RoutingMode
from grid.context import load_context
from loadtests.scenarios import PEAK
from router.state import snapshot, snapshot_to_dict

STATE_VERSION = 1
EMBEDDING_DIMENSIONS = 384
DESCRIPTION = "A deliberately wrong gateway that serves every request at its origin."


def create_app(fleet: FleetConfig, at_s: int) -> web.Application:
    """The wrong gateway's app: a real, fixed snapshot; every answer from the origin."""
    snap = snapshot(fleet, load_context(fleet).trace, at_s, version=STATE_VERSION)
    regions_body = snapshot_to_dict(snap)
    headroom = {state.name: state.headroom for state in snap.states}
    event_ids = itertools.count(1)

    async def embeddings(request: web.Request) -> web.Response:
        body = await request.json()
        texts = [body["input"]] if isinstance(body.get("input"), str) else list(body.get("input") or [""])
        origin = request.headers.get("X-Gridshift-Origin", fleet.default_origin)
        workload = fleet.workload_classes.get(request.headers.get("X-Gridshift-Class", "tolerant"))
        if origin not in headroom or workload is None:
            return web.json_response({"error": {"message": "bad hints", "type": "invalid_request_error"}}, status=422)
        # The wrong part: never moved. The reasons are those a right gateway gives when it keeps work at home.
        reason = "realtime_origin" if workload.mode is RoutingMode.STAY else "origin_within_margin"
        data = [
            {"object": "embedding", "index": i, "embedding": [0.0] * EMBEDDING_DIMENSIONS} for i in range(len(texts))
        ]
        headers = {
            "X-Gridshift-Region": origin,
            "X-Gridshift-Reason": reason,
            "X-Gridshift-Headroom": f"{headroom[origin]:.4f}",
            "X-Gridshift-Precision": "fp32",
            "X-Gridshift-State-Version": str(STATE_VERSION),
            "X-Gridshift-Attempts": origin,
        }
        answer = {"object": "list", "data": data, "model": "fake", "usage": {"prompt_tokens": 1, "total_tokens": 1}}
        return web.json_response(answer, headers=headers)

    async def regions(_request: web.Request) -> web.Response:
        return web.json_response(regions_body)

    async def healthz(_request: web.Request) -> web.Response:
        return web.json_response({"status": "ok", "state_version": STATE_VERSION, "regions_down": []})

    async def post_event(request: web.Request) -> web.Response:
        spec: dict[str, Any] = await request.json()
        return web.json_response({"event": {**spec, "event_id": f"fake-{next(event_ids)}"}}, status=201)

    async def clear_event(request: web.Request) -> web.Response:
        return web.json_response({"cleared": {"event_id": request.match_info["event_id"]}})

    app = web.Application()
    app.router.add_post("/v1/embeddings", embeddings)
    app.router.add_get("/v1/regions", regions)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", healthz)  # no regions to warm: ready as soon as it answers
    app.router.add_post("/v1/admin/events", post_event)
    app.router.add_delete("/v1/admin/events/{event_id}", clear_event)
    return app


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m loadtests.fake_gateway", description=DESCRIPTION)
    parser.add_argument("--port", type=int, required=True, help="port on 127.0.0.1")
    parser.add_argument("--fleet", help="fleet YAML (default: the packaged four-region fleet)")
    parser.add_argument("--at", default=PEAK, help=f"trace time of the snapshot it serves (default {PEAK})")
    args = parser.parse_args(argv)
    at_s = int(datetime.fromisoformat(args.at.replace("Z", "+00:00")).timestamp())
    web.run_app(create_app(load_fleet(args.fleet), at_s), host="127.0.0.1", port=args.port, print=None)
    return 0


if __name__ == "__main__":
    sys.exit(main())
