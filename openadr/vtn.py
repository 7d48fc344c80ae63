"""A local OpenADR 3 VTN that follows the spec, for tests and demos: token endpoint, programs, events, reports,
subscriptions with webhook callbacks, vens and resources; it validates what it receives against the same
schemas the VEN uses and keeps what it got so tests can inspect it. In memory, loopback only.

Not a production VTN: no persistence, no targets filtering, and callbacks only to loopback addresses unless
told otherwise. `LocalVTN` composes its parts: the store (vtn_store.py: objects, rules, notifications), the
auth (vtn_auth.py: tokens and roles) and the HTTP routes (vtn_http.py: handlers, ETags, injected faults).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from aiohttp import web

from fleet.clock import Clock
from fleet.openadr import SpecVersion
from openadr.schema import SpecSchemas, load_schemas
from openadr.vtn_auth import VTNAuth
from openadr.vtn_http import Fault, FaultPlan, Received, VTNRoutes
from openadr.vtn_store import Delivery, Role, VTNStore

log = logging.getLogger(__name__)


@dataclass
class LocalVTN:
    """The VTN. `await vtn.start()`, use `vtn.url`, `await vtn.stop()`; BL helpers (`create`, `update`, `delete`)
    act as the utility's business logic would, with the same validation and notifications as over HTTP."""

    version: SpecVersion
    clock: Clock
    clients: Mapping[str, tuple[str, Role]]  # client_id -> (secret, role)
    host: str = "127.0.0.1"
    port: int = 0
    token_ttl_s: int = 3600
    allow_remote_callbacks: bool = False
    slow_s: float = 30.0  # how long an injected 'slow' answer takes
    schemas: SpecSchemas = field(init=False)
    received: list[Received] = field(default_factory=list, init=False)
    _store: VTNStore = field(init=False)
    _auth: VTNAuth = field(init=False)
    _faults: list[FaultPlan] = field(default_factory=list, init=False)
    _runner: web.AppRunner | None = field(default=None, init=False)
    _session: aiohttp.ClientSession | None = field(default=None, init=False)
    bound_port: int | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        self.schemas = load_schemas(self.version)
        self._store = VTNStore(self.version, self.clock, self.schemas, self._post, self.allow_remote_callbacks)
        self._auth = VTNAuth(self.clients, self.clock, self.schemas, self.token_ttl_s)

    @property
    def objects(self) -> dict[str, dict[str, dict[str, Any]]]:
        """Every object by kind and id, as stored."""
        return self._store.objects

    @property
    def deliveries(self) -> list[Delivery]:
        return self._store.deliveries

    @property
    def refused(self) -> list[str]:
        """Why each request body the VTN refused broke the schema."""
        return self._store.refused

    # Life cycle -------------------------------------------------------------------------------------------

    @property
    def url(self) -> str:
        if self.bound_port is None:
            raise RuntimeError("LocalVTN not started")
        return f"http://{self.host}:{self.bound_port}"

    async def start(self) -> None:
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5.0))
        self._runner = web.AppRunner(self.app(), access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, self.host, self.port).start()
        self.bound_port = int(self._runner.addresses[0][1])
        log.info("local VTN (OpenADR %s) on %s", self.version, self.url)

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def __aenter__(self) -> LocalVTN:
        await self.start()
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.stop()

    def app(self) -> web.Application:
        """The VTN's aiohttp application (what `start` serves)."""
        routes = VTNRoutes(self._store, self._auth, lambda: self.url, self.received, self._faults, self.slow_s)
        return routes.app()

    def inject(self, path_prefix: str, fault: Fault, times: int = 1) -> None:
        """Answer the next `times` requests whose path starts with `path_prefix` badly, in the way `fault` says."""
        self._faults.append(FaultPlan(path_prefix, fault, times))

    # Business logic side (in-process) --------------------------------------------------------------------

    async def create(self, kind: str, body: Mapping[str, Any], client_id: str = "bl") -> dict[str, Any]:
        """Create an object as `client_id` would over HTTP (validated, stored, subscribers notified)."""
        return await self._store.create(kind, dict(body), self._auth.role_of(client_id), client_id)

    async def update(self, kind: str, object_id: str, body: Mapping[str, Any], client_id: str = "bl") -> dict[str, Any]:
        return await self._store.update(kind, object_id, dict(body), self._auth.role_of(client_id), client_id)

    async def delete(self, kind: str, object_id: str, client_id: str = "bl") -> dict[str, Any]:
        return await self._store.delete(kind, object_id, self._auth.role_of(client_id), client_id)

    # Webhook delivery --------------------------------------------------------------------------------------

    async def _post(self, url: str, token: str | None, body: Mapping[str, Any]) -> int:
        """POST one notification to a subscriber; its status, or 0 when it could not be reached."""
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        if self._session is None:
            return 0
        try:
            async with self._session.post(url, json=body, headers=headers) as response:
                return response.status
        except (aiohttp.ClientError, TimeoutError) as error:
            log.info("local VTN: callback %s failed: %s", url, error)
            return 0
