"""The Python clients' retry rule over a scripted transport: what is retried, how long it waits, what is final."""

from __future__ import annotations

import asyncio
import json
import random

import httpx
import pytest

from serve_apps.client import AsyncGridshiftClient, GridshiftClient, GridshiftClientError

OK = {"object": "list", "data": [{"index": 0, "embedding": [0.5, 0.5]}], "model": "m", "usage": {"prompt_tokens": 1}}


def _script(*answers: int | Exception) -> tuple[list[httpx.Request], httpx.MockTransport]:
    seen: list[httpx.Request] = []
    queue = list(answers)

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        answer = queue.pop(0)
        if isinstance(answer, Exception):
            raise answer
        if answer == 200:
            return httpx.Response(200, json=OK if request.url.path.endswith("embeddings") else {"jobs": []})
        error = {"error": {"message": f"status {answer}", "type": "t", "param": None, "code": None}}
        return httpx.Response(answer, json=error, headers={"Retry-After": "0"})

    return seen, httpx.MockTransport(handle)


def test_a_503_while_starting_is_retried_until_served(monkeypatch: pytest.MonkeyPatch) -> None:
    waits: list[float] = []
    monkeypatch.setattr("serve_apps.client.time.sleep", waits.append)
    seen, transport = _script(503, 503, 200)
    with GridshiftClient("http://gw", transport=transport, rng=random.Random(1)) as client:
        result = client.embed("x", origin="us-west-1")
    assert result.embeddings == [[0.5, 0.5]]
    assert len(seen) == 3
    assert json.loads(seen[0].content) == {"input": "x", "model": "all-MiniLM-L6-v2"}
    assert seen[0].headers["X-Gridshift-Origin"] == "us-west-1"
    # Jittered back-off from 0.25 s, doubling; Retry-After: 0 asks for no more than that.
    assert 0.125 <= waits[0] <= 0.25
    assert 0.25 <= waits[1] <= 0.5


def test_client_errors_and_unsafe_posts_are_final(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("serve_apps.client.time.sleep", lambda _s: None)
    seen, transport = _script(422, 503)
    with GridshiftClient("http://gw", transport=transport) as client:
        with pytest.raises(GridshiftClientError) as invalid:
            client.embed([])
        assert (invalid.value.status, invalid.value.message) == (422, "status 422")
        with pytest.raises(GridshiftClientError) as unavailable:
            client.submit_job({"job_id": "j"}, "token")  # not idempotent: the server may have acted on it
        assert unavailable.value.status == 503
    assert len(seen) == 2


def test_attempts_run_out_and_unreachable_is_status_0(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("serve_apps.client.time.sleep", lambda _s: None)
    seen, transport = _script(503, 503)
    with GridshiftClient("http://gw", transport=transport, attempts=2) as client:
        with pytest.raises(GridshiftClientError) as exhausted:
            client.jobs()
        assert exhausted.value.status == 503
    refused = httpx.ConnectError("refused")
    _, transport = _script(refused, refused)
    with (
        GridshiftClient("http://gw", transport=transport, attempts=2) as client,
        pytest.raises(GridshiftClientError) as unreachable,
    ):
        client.jobs()
    assert unreachable.value.status == 0
    assert "cannot reach http://gw" in unreachable.value.message
    assert len(seen) == 2


def test_async_client_follows_the_same_rule(monkeypatch: pytest.MonkeyPatch) -> None:
    async def no_wait(_seconds: float) -> None:
        return None

    monkeypatch.setattr("serve_apps.client.asyncio.sleep", no_wait)
    seen, sync_transport = _script(429, 200)

    async def call() -> list[list[float]]:
        transport = httpx.MockTransport(sync_transport.handler)  # the same script, served to the async client
        async with AsyncGridshiftClient("http://gw", transport=transport) as client:
            return (await client.embed("x")).embeddings

    assert asyncio.run(call()) == [[0.5, 0.5]]
    assert len(seen) == 2
