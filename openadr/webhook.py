"""The VEN's callback server: takes the VTN's subscription notifications (bearer token checked, body validated)
and serves the VEN's status. aiohttp, loopback by default."""

from __future__ import annotations

import hmac
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from fleet.errors import OpenADRValidationError
from openadr.client import loads_strict
from openadr.schema import SpecSchemas
from openadr.status import STATUS_PATH, VenStatus

log = logging.getLogger(__name__)

NOTIFY_PATH = "/openadr3/notifications"
MAX_BODY_BYTES = 4 * 1024 * 1024  # a notification carries one object; anything near this is abuse


def problem(status: int, title: str, detail: str = "") -> web.Response:
    """An RFC 7807 problem answer, as the spec's `problem` schema has it."""
    body: dict[str, Any] = {"title": title, "status": status}
    if detail:
        body["detail"] = detail
    return web.json_response(body, status=status, content_type="application/problem+json")


def bearer_matches(header: str | None, token: str) -> bool:
    """Whether an Authorization header carries exactly `token` (constant-time comparison)."""
    if not header or not header.startswith("Bearer "):
        return False
    return hmac.compare_digest(header[len("Bearer ") :].encode(), token.encode())


def callback_app(
    token: str,
    schemas: SpecSchemas,
    on_notification: Callable[[dict[str, Any]], Awaitable[None]],
    status: Callable[[], VenStatus],
    count: Callable[[str], None],
) -> web.Application:
    """The callback server's routes. `count(kind)` records a refused notification."""

    async def notify(request: web.Request) -> web.Response:
        if not bearer_matches(request.headers.get("Authorization"), token):
            count("webhook_unauthorized")
            return problem(403, "Forbidden", "missing or wrong bearer token")
        try:
            body = loads_strict(await request.text())
            schemas.validate("notification", body, "notification")
        except ValueError as error:
            count("webhook_invalid")
            return problem(400, "Bad Request", f"not valid JSON: {error}")
        except OpenADRValidationError as error:
            count("webhook_invalid")
            log.warning("openadr: refused notification: %s", error)
            return problem(400, "Bad Request", str(error))
        await on_notification(body)
        return web.json_response({}, status=200)

    async def get_status(_request: web.Request) -> web.Response:
        return web.Response(text=status().to_json(), content_type="application/json")

    app = web.Application(client_max_size=MAX_BODY_BYTES)
    app.router.add_post(NOTIFY_PATH, notify)
    app.router.add_get(STATUS_PATH, get_status)
    return app


class CallbackServer:
    """Runs `callback_app` on host:port (port 0: a free one, known after start)."""

    def __init__(self, app: web.Application, host: str, port: int) -> None:
        self._runner = web.AppRunner(app, access_log=None)
        self.host = host
        self._port = port
        self.port: int | None = None

    async def start(self) -> None:
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self._port)
        await site.start()
        self.port = int(self._runner.addresses[0][1])
        log.info("openadr: callback server on %s:%s", self.host, self.port)

    async def stop(self) -> None:
        await self._runner.cleanup()
