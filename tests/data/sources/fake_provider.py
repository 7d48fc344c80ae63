"""A loopback stand-in for WattTime, Electricity Maps, EIA and a CSV feed: it serves the recorded answers in this
folder with each provider's authentication, and injects faults on demand. Tests only; 127.0.0.1, ephemeral port.
"""

from __future__ import annotations

import asyncio
import base64
import json
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web

HERE = Path(__file__).resolve().parent

WATTTIME_USER = "gridshift-test-user"
WATTTIME_PASSWORD = "pw-Zq8!unlikely-secret-1"
EM_TOKEN = "em-token-unlikely-secret-2"
EIA_KEY = "eia-key-unlikely-secret-3"
FEED_TOKEN = "feed-token-unlikely-secret-4"
SECRETS = (WATTTIME_PASSWORD, EM_TOKEN, EIA_KEY, FEED_TOKEN)

Transform = Callable[[Any], Any]


def fixture(name: str) -> Any:
    return json.loads((HERE / name).read_text(encoding="utf-8"))


@dataclass
class Seen:
    """One request the provider received."""

    path: str
    query: list[tuple[str, str]]
    headers: dict[str, str]


@dataclass
class FakeProvider:
    """Answers like the real providers, from the recorded fixtures. Faults queue per path and apply in order to
    the next requests there: 'timeout', 'reset', 'garbage', 'status:NNN', '429:SECONDS', '429:DATE:<http-date>'.
    `transform[path]` rewrites a JSON answer before it is sent (NaN values, stale times, other units)."""

    eia_fixture: str = "eia_region_data_heat_wave_2022-09-07.json"
    seen: list[Seen] = field(default_factory=list)
    faults: dict[str, list[str]] = field(default_factory=dict)
    transform: dict[str, Transform] = field(default_factory=dict)
    valid_tokens: set[str] = field(default_factory=set)
    logins: int = 0
    hold_s: float = 5.0  # how long a 'timeout' fault keeps the client waiting (clients time out well before)
    _runner: web.AppRunner | None = None
    url: str = ""

    def fail(self, path: str, *faults: str) -> None:
        self.faults.setdefault(path, []).extend(faults)

    def count(self, path: str) -> int:
        return sum(1 for s in self.seen if s.path == path)

    async def start(self) -> str:
        app = web.Application()
        app.router.add_get("/login", self._login)
        for path in ("/v3/forecast", "/v3/historical", "/v3/signal-index"):
            app.router.add_get(path, self._watttime)
        app.router.add_get("/v3/carbon-intensity/latest", self._em)
        app.router.add_get("/v3/carbon-intensity/forecast", self._em)
        app.router.add_get("/v2/electricity/rto/region-data/data/", self._eia)
        app.router.add_get("/feed/prices.csv", self._prices)
        app.router.add_get("/feed/{zone}/carbon.json", self._feed_json)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.url = f"http://127.0.0.1:{self._runner.addresses[0][1]}"
        return self.url

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    # Faults -------------------------------------------------------------------------------------------

    async def _fault(self, request: web.Request) -> web.StreamResponse | None:
        self.seen.append(Seen(request.path, list(request.query.items()), dict(request.headers)))
        queue = self.faults.get(request.path)
        if not queue:
            return None
        fault = queue.pop(0)
        if fault == "timeout":
            await asyncio.sleep(self.hold_s)
            return web.json_response({"late": True})
        if fault == "reset":
            if request.transport is not None:
                request.transport.abort()
            raise ConnectionResetError("reset by the fake provider")
        if fault == "garbage":
            return web.Response(text="<html><body>502 Bad Gateway (proxy)</body></html>", content_type="text/html")
        if fault.startswith("429:"):
            return web.Response(status=429, headers={"Retry-After": fault[4:].removeprefix("DATE:")})
        if fault.startswith("status:"):
            return web.Response(status=int(fault[7:]), text="server error")
        raise ValueError(f"unknown fault {fault!r}")

    def _json(self, path: str, body: Any) -> web.Response:
        transform = self.transform.get(path)
        if transform is not None:
            body = transform(body)
        # allow_nan: a broken provider does send NaN, which Python's json reads back as a float.
        return web.Response(text=json.dumps(body, allow_nan=True), content_type="application/json")

    # Providers ----------------------------------------------------------------------------------------

    async def _login(self, request: web.Request) -> web.StreamResponse:
        faulty = await self._fault(request)
        if faulty is not None:
            return faulty
        expected = base64.b64encode(f"{WATTTIME_USER}:{WATTTIME_PASSWORD}".encode()).decode()
        if request.headers.get("Authorization") != f"Basic {expected}":
            return web.json_response({"error": "invalid credentials"}, status=401)
        self.logins += 1
        token = f"token-{self.logins}-unlikely-secret-5"
        self.valid_tokens.add(token)
        return web.json_response({"token": token})

    async def _watttime(self, request: web.Request) -> web.StreamResponse:
        faulty = await self._fault(request)
        if faulty is not None:
            return faulty
        token = request.headers.get("Authorization", "").removeprefix("Bearer ")
        if token not in self.valid_tokens:
            return web.json_response({"error": "token expired"}, status=401)
        if request.query.get("region") != "CAISO_NORTH":
            return web.json_response({"error": "unknown region"}, status=400)
        name = request.path.removeprefix("/v3/").replace("-", "_")
        return self._json(request.path, fixture(f"watttime_{name}_caiso_north_2022-09-07.json"))

    async def _em(self, request: web.Request) -> web.StreamResponse:
        faulty = await self._fault(request)
        if faulty is not None:
            return faulty
        if request.headers.get("auth-token") != EM_TOKEN:
            return web.json_response({"error": "invalid token"}, status=401)
        kind = request.path.rsplit("/", 1)[-1]
        return self._json(request.path, fixture(f"electricitymaps_{kind}_us-cal-ciso_2022-09-07.json"))

    async def _eia(self, request: web.Request) -> web.StreamResponse:
        faulty = await self._fault(request)
        if faulty is not None:
            return faulty
        if request.query.get("api_key") != EIA_KEY:
            return web.json_response({"error": {"code": "API_KEY_INVALID", "message": "invalid api_key"}}, status=403)
        return self._json(request.path, fixture(self.eia_fixture))

    async def _prices(self, request: web.Request) -> web.StreamResponse:
        faulty = await self._fault(request)
        if faulty is not None:
            return faulty
        if request.headers.get("X-Feed-Token") != FEED_TOKEN:
            return web.Response(status=401)
        return web.Response(text=(HERE / "caiso_np15_prices_2023-08-16.csv").read_text(), content_type="text/csv")

    async def _feed_json(self, request: web.Request) -> web.StreamResponse:
        faulty = await self._fault(request)
        if faulty is not None:
            return faulty
        forecast = fixture("electricitymaps_forecast_us-cal-ciso_2022-09-07.json")
        if request.match_info["zone"] != forecast["zone"]:
            return web.Response(status=404)
        return self._json(request.path, forecast)


@contextmanager
def provider_in_thread(provider: FakeProvider | None = None) -> Iterator[FakeProvider]:
    """The provider served from its own thread and loop, for code under test that runs its own asyncio.run."""
    fake = provider or FakeProvider()
    loop = asyncio.new_event_loop()
    started = threading.Event()

    def serve() -> None:
        asyncio.set_event_loop(loop)
        loop.run_until_complete(fake.start())
        started.set()
        loop.run_forever()

    thread = threading.Thread(target=serve, name="fake-provider", daemon=True)
    thread.start()
    if not started.wait(timeout=10):
        raise RuntimeError("the fake provider did not start")
    try:
        yield fake
    finally:
        asyncio.run_coroutine_threadsafe(fake.stop(), loop).result(timeout=10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)
        loop.close()
