"""Region backends: the HTTP backend against a real loopback server, WAN emulation (pinning: test_placement.py)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable

import numpy as np
import pytest
from aiohttp import web

from serve_apps.backends import BackendError, HttpBackend

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


async def _serve(handler: Handler) -> tuple[web.AppRunner, str]:
    app = web.Application()
    app.router.add_post("/v1/embeddings", handler)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    return runner, f"http://127.0.0.1:{port}"


async def _remote(handler: Handler) -> AsyncIterator[tuple[HttpBackend, list[web.Request]]]:
    seen: list[web.Request] = []

    async def recording(request: web.Request) -> web.StreamResponse:
        seen.append(request)
        response: web.StreamResponse = await handler(request)
        return response

    runner, url = await _serve(recording)
    backend = HttpBackend("us-west-2", url + "/")
    try:
        yield backend, seen
    finally:
        await backend.close()
        await runner.cleanup()


def _ok(vectors: list[list[float]]) -> web.Response:
    body = {
        "object": "list",
        "data": [{"object": "embedding", "index": i, "embedding": v} for i, v in reversed(list(enumerate(vectors)))],
        "model": "remote-model",
        "usage": {"prompt_tokens": 7, "total_tokens": 7},
    }
    return web.json_response(body, headers={"X-Gridshift-Precision": "bf16"})


def test_http_backend_parses_a_remote_answer_and_asks_it_to_serve_in_place() -> None:
    async def run() -> None:
        async def handler(request: web.Request) -> web.Response:
            payload = await request.json()
            return _ok([[float(len(text)), 0.0] for text in payload["input"]])

        async for backend, seen in _remote(handler):
            result = await backend.embed(["ab", "abcd"], timeout_s=5)
            assert result.region == "us-west-2"
            assert result.embeddings.tolist() == [[2.0, 0.0], [4.0, 0.0]]  # re-ordered by index
            assert result.embeddings.dtype == np.float32
            assert (result.precision, result.prompt_tokens, result.model) == ("bf16", 7, "remote-model")
            assert seen[0].headers["X-Gridshift-Class"] == "realtime"
            assert seen[0].headers["X-Gridshift-Origin"] == "us-west-2"

    asyncio.run(run())


@pytest.mark.parametrize(
    ("behaviour", "fragment"),
    [("status", "HTTP 500"), ("slow", "TimeoutError"), ("garbage", "malformed"), ("short", "1 embeddings for 2")],
)
def test_http_backend_failures_become_backend_errors(behaviour: str, fragment: str) -> None:
    async def run() -> None:
        async def handler(_request: web.Request) -> web.Response:
            if behaviour == "status":
                return web.json_response({"error": {"message": "boom"}}, status=500)
            if behaviour == "slow":
                await asyncio.sleep(2)
                return _ok([[1.0], [1.0]])
            if behaviour == "garbage":
                return web.json_response({"data": "not a list"})
            return _ok([[1.0]])

        async for backend, _ in _remote(handler):
            with pytest.raises(BackendError, match=fragment):
                await backend.embed(["a", "b"], timeout_s=0.3)

    asyncio.run(run())


def test_http_backend_unreachable_is_a_backend_error() -> None:
    async def run() -> None:
        backend = HttpBackend("gone", "http://127.0.0.1:9")  # discard port: nothing listens
        try:
            with pytest.raises(BackendError, match="gone"):
                await backend.embed(["a"], timeout_s=1)
        finally:
            await backend.close()

    asyncio.run(run())
