"""The VEN's VTN client retries through the shared helper: Retry-After as seconds or as an HTTP-date, capped.

A tiny VTN on 127.0.0.1 answers the token request and then as each test scripts; sleeps, draws and the wall
clock are injected, so nothing waits.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable
from datetime import UTC, datetime
from email.utils import format_datetime

import pytest
from aiohttp import web

from fleet.clock import FixedClock
from fleet.errors import OpenADRError
from fleet.openadr import OpenADRConfig
from openadr.client import MAX_BACKOFF_S, VTNClient
from openadr.schema import load_schemas

NOW_S = 1_719_856_800.0  # 2024-07-01T18:00:00Z, the injected wall clock


class HalfDraw(random.Random):
    def random(self) -> float:
        return 0.5


Answer = Callable[[], web.Response]


def busy(retry_after: str) -> Answer:
    return lambda: web.json_response({"title": "busy"}, status=503, headers={"Retry-After": retry_after})


def programs() -> web.Response:
    return web.json_response([])


def run_client(answers: list[Answer], method: str = "GET") -> tuple[list[float], VTNClient, int]:
    """Send one request (GET /programs, or POST /programs) to a VTN that answers `answers` in turn; the sleeps
    asked for, the client (for its counters) and how many requests reached the VTN."""
    sleeps: list[float] = []
    served = 0

    async def token(_request: web.Request) -> web.Response:
        return web.json_response({"access_token": "t0k3n", "token_type": "Bearer", "expires_in": 3600})

    async def endpoint(_request: web.Request) -> web.Response:
        nonlocal served
        served += 1
        return answers.pop(0)()

    async def sleep(seconds: float) -> None:
        sleeps.append(seconds)

    async def main() -> VTNClient:
        app = web.Application()
        app.router.add_post("/auth/token", token)
        app.router.add_route("*", "/programs", endpoint)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        port = runner.addresses[0][1]
        config = OpenADRConfig(
            vtn_url=f"http://127.0.0.1:{port}", spec_version="3.0.1", ven_name="ven", retry_backoff_s=0.5
        )
        client = VTNClient(
            config,
            load_schemas("3.0.1"),
            ("ven", "secret-0123456789"),
            FixedClock(NOW_S),
            rng=HalfDraw(),
            sleep=sleep,
            wall_s=lambda: NOW_S,
        )
        try:
            async with client:
                if method == "GET":
                    await client.list_objects("/programs", "program")
                else:
                    await client.create("/programs", "program", {"programName": "p"}, "program")
        finally:
            await runner.cleanup()
        return client

    client = asyncio.run(main())
    return sleeps, client, served


def test_an_http_date_retry_after_is_honoured() -> None:
    # Before the shared helper, the VTN client ignored an HTTP-date and waited only its own 0.5 s back-off.
    when = format_datetime(datetime.fromtimestamp(NOW_S + 12, tz=UTC), usegmt=True)
    sleeps, client, served = run_client([busy(when), programs])
    assert sleeps == [12.0]
    assert served == 2
    assert client.counters["retries"] == 1


def test_retry_after_seconds_win_over_the_backoff_and_are_capped() -> None:
    sleeps, _, _ = run_client([busy("3"), busy("600"), programs])
    assert sleeps == [3.0, MAX_BACKOFF_S]


def test_retry_after_in_the_past_or_unreadable_leaves_the_backoff() -> None:
    past = format_datetime(datetime.fromtimestamp(NOW_S - 60, tz=UTC), usegmt=True)
    sleeps, _, _ = run_client([busy(past), busy("soon"), programs])
    # retry_backoff_s 0.5 is the mean first wait: 0.75 x (1 - 2/3 x 0.5) = 0.5 s, then twice that.
    assert sleeps == [pytest.approx(0.5), pytest.approx(1.0)]


def test_a_post_that_reached_the_vtn_is_not_retried_on_5xx() -> None:
    with pytest.raises(OpenADRError, match="HTTP 503"):
        run_client([busy("1"), programs], method="POST")
