"""A local OpenADR 3 VTN that follows the spec, for tests and demos: token endpoint, programs, events, reports,
subscriptions with webhook callbacks, vens and resources; it validates what it receives against the same
schemas the VEN uses and keeps what it got so tests can inspect it. In memory, loopback only.

Not a production VTN: no persistence, no targets filtering, and callbacks only to loopback addresses unless
told otherwise.
"""

from __future__ import annotations

import asyncio
import copy
import hashlib
import ipaddress
import json
import logging
import secrets
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import urlsplit

import aiohttp
from aiohttp import web

from fleet.clock import Clock
from fleet.errors import OpenADRValidationError
from fleet.openadr import SpecVersion
from openadr.client import PAGE_LIMIT, loads_strict
from openadr.schema import SpecSchemas, load_schemas
from openadr.timing import format_instant
from openadr.webhook import problem

log = logging.getLogger(__name__)

Role = Literal["ven", "bl"]
Operation = Literal["CREATE", "UPDATE", "DELETE"]
Fault = Literal["http500", "garbage", "nan", "not_a_list", "invalid_object", "slow"]
_NOTIFY_OPERATION: Mapping[SpecVersion, Mapping[Operation, str]] = {
    "3.0.1": {"CREATE": "POST", "UPDATE": "PUT", "DELETE": "DELETE"},
    "3.1.0": {"CREATE": "CREATE", "UPDATE": "UPDATE", "DELETE": "DELETE"},
}
_METADATA = ("id", "createdDateTime", "modificationDateTime", "objectType")
_OBJECT_TYPES = {
    "program": "PROGRAM",
    "event": "EVENT",
    "report": "REPORT",
    "subscription": "SUBSCRIPTION",
    "ven": "VEN",
    "resource": "RESOURCE",
}
# Who may write each kind (Definition: only BL writes programs and events; only VENs write reports).
_WRITERS: Mapping[str, frozenset[Role]] = {
    "program": frozenset({"bl"}),
    "event": frozenset({"bl"}),
    "report": frozenset({"ven"}),
    "subscription": frozenset({"ven", "bl"}),
    "ven": frozenset({"ven", "bl"}),
    "resource": frozenset({"ven", "bl"}),
}
# 3.1.0 object privacy: a VEN reads only the vens, resources, reports and subscriptions it created.
_PRIVATE = frozenset({"ven", "resource", "report", "subscription"})
_FILTERS: Mapping[str, tuple[str, ...]] = {
    "event": ("programID",),
    "report": ("programID", "eventID", "clientName"),
    "subscription": ("programID", "clientName"),
    "ven": ("venName",),
    "resource": ("resourceName", "venID"),
}


class VTNRefusal(Exception):
    """A request the VTN refuses: becomes a problem answer with `status`."""

    def __init__(self, status: int, title: str, detail: str = "") -> None:
        self.status, self.title, self.detail = status, title, detail
        super().__init__(f"{status} {title}: {detail}")


@dataclass(frozen=True)
class Delivery:
    """One webhook notification the VTN sent, and how the subscriber answered (status 0: unreachable)."""

    url: str
    operation: str
    object_type: str
    object_id: str
    status: int


@dataclass(frozen=True)
class Received:
    """One request the VTN accepted (method, path, body), kept for tests to inspect."""

    method: str
    path: str
    client_id: str
    body: Any


@dataclass
class _Client:
    secret: str
    role: Role


@dataclass
class _Token:
    client_id: str
    role: Role
    expires_at_s: float


@dataclass
class _FaultPlan:
    path_prefix: str
    fault: Fault
    times: int


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
    objects: dict[str, dict[str, dict[str, Any]]] = field(init=False)
    received: list[Received] = field(default_factory=list, init=False)
    deliveries: list[Delivery] = field(default_factory=list, init=False)
    refused: list[str] = field(default_factory=list, init=False)
    _clients: dict[str, _Client] = field(default_factory=dict, init=False)
    _tokens: dict[str, _Token] = field(default_factory=dict, init=False)
    _owners: dict[str, str] = field(default_factory=dict, init=False)  # object id -> client_id that created it
    _faults: list[_FaultPlan] = field(default_factory=list, init=False)
    _next_id: int = field(default=0, init=False)
    _runner: web.AppRunner | None = field(default=None, init=False)
    _session: aiohttp.ClientSession | None = field(default=None, init=False)
    bound_port: int | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        self.schemas = load_schemas(self.version)
        self.objects = {kind: {} for kind in _OBJECT_TYPES}
        self._clients = {cid: _Client(secret, role) for cid, (secret, role) in self.clients.items()}

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

    def inject(self, path_prefix: str, fault: Fault, times: int = 1) -> None:
        """Answer the next `times` requests whose path starts with `path_prefix` badly, in the way `fault` says."""
        self._faults.append(_FaultPlan(path_prefix, fault, times))

    # Business logic side (in-process) --------------------------------------------------------------------

    async def create(self, kind: str, body: Mapping[str, Any], client_id: str = "bl") -> dict[str, Any]:
        """Create an object as `client_id` would over HTTP (validated, stored, subscribers notified)."""
        return await self._create(kind, dict(body), self._role_of(client_id), client_id)

    async def update(self, kind: str, object_id: str, body: Mapping[str, Any], client_id: str = "bl") -> dict[str, Any]:
        return await self._update(kind, object_id, dict(body), self._role_of(client_id), client_id)

    async def delete(self, kind: str, object_id: str, client_id: str = "bl") -> dict[str, Any]:
        return await self._delete(kind, object_id, self._role_of(client_id), client_id)

    def _role_of(self, client_id: str) -> Role:
        client = self._clients.get(client_id)
        return client.role if client else "bl"

    # Core ----------------------------------------------------------------------------------------------------

    def _new_id(self, kind: str) -> str:
        self._next_id += 1
        return f"{kind}-{self._next_id}"

    def _check_body(self, kind: str, body: Any) -> None:
        name = self.schemas.request_schema(kind)
        try:
            self.schemas.validate(name, body, f"{kind} body")
        except OpenADRValidationError as error:
            self.refused.append(str(error))
            raise VTNRefusal(400, "Bad Request", str(error)) from None

    def _stamp(self, kind: str, body: dict[str, Any], client_id: str, created: str | None, object_id: str) -> None:
        """Put the VTN-provisioned fields first (Definition, POST and PUT: the client's values are ignored)."""
        for key in _METADATA:
            body.pop(key, None)
        if self.version == "3.1.0" and kind in _PRIVATE and (kind != "ven" or "clientID" not in body):
            body["clientID"] = client_id  # 3.1.0 object privacy: the owner, discovered from the token
        now = format_instant(self.clock.now_s())
        stamped = {
            "id": object_id,
            "createdDateTime": created or now,
            "modificationDateTime": now,
            "objectType": _OBJECT_TYPES[kind],
        }
        ordered = {**stamped, **body}
        body.clear()
        body.update(ordered)

    def _check_stored(self, kind: str, obj: Mapping[str, Any]) -> None:
        # The VTN's own answers must follow the spec too; failing here is a bug in this module.
        problems = self.schemas.problems(kind, obj)
        if problems:
            raise VTNRefusal(500, "Internal Server Error", f"VTN produced an invalid {kind}: {problems}")

    def _check_references(self, kind: str, body: Mapping[str, Any], object_id: str | None) -> None:
        store = self.objects[kind]
        unique = {"program": "programName", "ven": "venName"}.get(kind)
        if unique and any(o.get(unique) == body.get(unique) and o["id"] != object_id for o in store.values()):
            raise VTNRefusal(409, "Conflict", f"a {kind} with {unique} {body.get(unique)!r} exists")
        if kind == "resource":
            if body.get("venID") not in self.objects["ven"]:
                raise VTNRefusal(409, "Conflict", f"no ven {body.get('venID')!r}")
            clash = [
                o
                for o in store.values()
                if o["venID"] == body["venID"]
                and o["resourceName"] == body.get("resourceName")
                and o["id"] != object_id
            ]
            if clash:
                raise VTNRefusal(409, "Conflict", f"resourceName {body.get('resourceName')!r} exists on that ven")
        for ref_kind, key in (("program", "programID"), ("event", "eventID")):
            if kind != ref_kind and isinstance(body.get(key), str) and body[key] not in self.objects[ref_kind]:
                raise VTNRefusal(409, "Conflict", f"no {ref_kind} {body[key]!r}")

    def _check_write(self, kind: str, role: Role) -> None:
        if role not in _WRITERS[kind]:
            raise VTNRefusal(403, "Forbidden", f"a {role.upper()} client may not write {kind}s")

    async def _create(
        self, kind: str, body: dict[str, Any], role: Role, client_id: str, ven_id: str | None = None
    ) -> dict[str, Any]:
        self._check_write(kind, role)
        self._check_body(kind, body)
        if kind == "resource" and ven_id is not None:
            body["venID"] = ven_id  # 3.0.1: the ven comes from the path
        if kind == "subscription":
            self._check_callbacks(body)
        self._check_references(kind, body, None)
        object_id = self._new_id(kind)
        self._stamp(kind, body, client_id, None, object_id)
        self._check_stored(kind, body)
        self.objects[kind][object_id] = body
        self._owners[object_id] = client_id
        await self._notify(kind, "CREATE", body)
        return body

    async def _update(
        self, kind: str, object_id: str, body: dict[str, Any], role: Role, client_id: str
    ) -> dict[str, Any]:
        self._check_write(kind, role)
        current = self._visible(kind, object_id, role, client_id)
        self._check_body(kind, body)
        if kind == "resource" and "venID" not in body:
            body["venID"] = current["venID"]
        if kind == "subscription":
            self._check_callbacks(body)
        self._check_references(kind, body, object_id)
        self._stamp(kind, body, self._owners.get(object_id, client_id), current["createdDateTime"], object_id)
        self._check_stored(kind, body)
        self.objects[kind][object_id] = body
        await self._notify(kind, "UPDATE", body)
        return body

    async def _delete(self, kind: str, object_id: str, role: Role, client_id: str) -> dict[str, Any]:
        self._check_write(kind, role)
        current = self._visible(kind, object_id, role, client_id)
        del self.objects[kind][object_id]
        await self._notify(kind, "DELETE", current)
        return current

    def _visible(self, kind: str, object_id: str, role: Role, client_id: str) -> dict[str, Any]:
        obj = self.objects[kind].get(object_id)
        if obj is None or not self._may_read(kind, object_id, role, client_id):
            raise VTNRefusal(404, "Not Found", f"no {kind} {object_id!r}")
        return obj

    def _may_read(self, kind: str, object_id: str, role: Role, client_id: str) -> bool:
        private = self.version == "3.1.0" and kind in _PRIVATE and role == "ven"
        return not private or self._owners.get(object_id) == client_id

    def _check_callbacks(self, body: Mapping[str, Any]) -> None:
        for operation in body.get("objectOperations") or []:
            parts = urlsplit(str(operation.get("callbackUrl")))
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise VTNRefusal(400, "Bad Request", f"callbackUrl {operation.get('callbackUrl')!r} is not http(s)")
            if not self.allow_remote_callbacks and not _is_loopback(parts.hostname):
                raise VTNRefusal(400, "Bad Request", "this local VTN only calls back loopback addresses")

    async def _notify(self, kind: str, operation: Operation, obj: Mapping[str, Any]) -> None:
        object_type = _OBJECT_TYPES[kind]
        program_id = obj.get("id") if kind == "program" else obj.get("programID")
        body = {"objectType": object_type, "operation": _NOTIFY_OPERATION[self.version][operation], "object": obj}
        self.schemas.validate("notification", body, "notification the VTN sends")
        calls = []
        for subscription in list(self.objects["subscription"].values()):
            if subscription.get("programID") not in (None, program_id):
                continue
            for entry in subscription.get("objectOperations") or []:
                if object_type in entry.get("objects", []) and operation in entry.get("operations", []):
                    calls.append(self._deliver(entry["callbackUrl"], entry.get("bearerToken"), body))
        # Delivered before the change's own answer returns, so "at once" is observable in tests.
        await asyncio.gather(*calls)

    async def _deliver(self, url: str, token: str | None, body: Mapping[str, Any]) -> None:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        status = 0
        if self._session is not None:
            try:
                async with self._session.post(url, json=body, headers=headers) as response:
                    status = response.status
            except (aiohttp.ClientError, TimeoutError) as error:
                log.info("local VTN: callback %s failed: %s", url, error)
        obj = body["object"]
        self.deliveries.append(
            Delivery(url, str(body["operation"]), str(body["objectType"]), str(obj.get("id")), status)
        )

    # HTTP ---------------------------------------------------------------------------------------------------

    def _authorise(self, request: web.Request) -> _Token:
        header = request.headers.get("Authorization", "")
        token = self._tokens.get(header[len("Bearer ") :]) if header.startswith("Bearer ") else None
        if token is None or self.clock.now_s() >= token.expires_at_s:
            raise VTNRefusal(401, "Unauthorized", "missing, unknown or expired bearer token")
        return token

    async def _token_endpoint(self, request: web.Request) -> web.Response:
        form = dict(await request.post())
        problems = self.schemas.problems("clientCredentialRequest", form)
        if problems:
            return web.json_response({"error": "invalid_request", "error_description": "; ".join(problems)}, status=400)
        client = self._clients.get(str(form["client_id"]))
        if client is None or not secrets.compare_digest(client.secret, str(form["client_secret"])):
            return web.json_response({"error": "invalid_client"}, status=401)
        value = secrets.token_urlsafe(24)
        self._tokens[value] = _Token(str(form["client_id"]), client.role, self.clock.now_s() + self.token_ttl_s)
        answer = {"access_token": value, "token_type": "Bearer", "expires_in": self.token_ttl_s}
        return web.json_response(answer)

    async def _auth_server(self, _request: web.Request) -> web.Response:
        return web.json_response({"tokenURL": f"{self.url}/auth/token"})

    async def _notifiers(self, request: web.Request) -> web.Response:
        self._authorise(request)
        return web.json_response({"WEBHOOK": True})

    def _list(self, kind: str, request: web.Request, token: _Token, ven_id: str | None) -> list[dict[str, Any]]:
        query = request.query
        try:
            skip = int(query.get("skip", "0"))
            limit = int(query.get("limit", str(PAGE_LIMIT)))
        except ValueError:
            raise VTNRefusal(400, "Bad Request", "skip and limit must be integers") from None
        if skip < 0 or not 0 <= limit <= PAGE_LIMIT:
            raise VTNRefusal(400, "Bad Request", f"need skip >= 0 and 0 <= limit <= {PAGE_LIMIT}")
        found = [
            obj
            for object_id, obj in self.objects[kind].items()
            if self._may_read(kind, object_id, token.role, token.client_id)
            and all(obj.get(key) == query[key] for key in _FILTERS.get(kind, ()) if key in query)
            and (ven_id is None or obj.get("venID") == ven_id)
        ]
        return found[skip : skip + limit]

    def _routes(self, kind: str, base: str) -> list[web.RouteDef]:
        async def collection(request: web.Request) -> web.StreamResponse:
            token = self._authorise(request)
            ven_id = request.match_info.get("venID")
            if ven_id is not None and ven_id not in self.objects["ven"]:
                raise VTNRefusal(404, "Not Found", f"no ven {ven_id!r}")
            if request.method == "GET":
                return _json_with_etag(request, self._list(kind, request, token, ven_id))
            body = await _body(request)
            self.received.append(Received("POST", request.path, token.client_id, copy.deepcopy(body)))
            created = await self._create(kind, body, token.role, token.client_id, ven_id)
            return web.json_response(created, status=201)

        async def item(request: web.Request) -> web.StreamResponse:
            token = self._authorise(request)
            object_id = request.match_info["objectID"]
            if request.method == "GET":
                return _json_with_etag(request, self._visible(kind, object_id, token.role, token.client_id))
            if request.method == "DELETE":
                return web.json_response(await self._delete(kind, object_id, token.role, token.client_id))
            body = await _body(request)
            self.received.append(Received("PUT", request.path, token.client_id, copy.deepcopy(body)))
            return web.json_response(await self._update(kind, object_id, body, token.role, token.client_id))

        return [
            web.get(base, collection),
            web.post(base, collection),
            web.get(base + "/{objectID}", item),
            web.put(base + "/{objectID}", item),
            web.delete(base + "/{objectID}", item),
        ]

    @web.middleware
    async def _middleware(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        for plan in self._faults:
            if plan.times > 0 and request.path.startswith(plan.path_prefix):
                plan.times -= 1
                return await _faulty(plan.fault, self.slow_s)
        try:
            return await handler(request)
        except VTNRefusal as refusal:
            return problem(refusal.status, refusal.title, refusal.detail)

    def app(self) -> web.Application:
        app = web.Application(middlewares=[self._middleware])
        app.router.add_post("/auth/token", self._token_endpoint)
        routes: list[web.RouteDef] = []
        for kind in ("program", "event", "report", "subscription", "ven"):
            routes += self._routes(kind, f"/{kind}s")
        if self.version == "3.1.0":
            routes += self._routes("resource", "/resources")
            app.router.add_get("/auth/server", self._auth_server)
            app.router.add_get("/notifiers", self._notifiers)
        else:
            routes += self._routes("resource", "/vens/{venID}/resources")
        app.add_routes(routes)
        return app


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


async def _body(request: web.Request) -> dict[str, Any]:
    try:
        body = loads_strict(await request.text())
    except ValueError as error:
        raise VTNRefusal(400, "Bad Request", f"body is not valid JSON: {error}") from None
    if not isinstance(body, dict):
        raise VTNRefusal(400, "Bad Request", "body must be a JSON object")
    return body


def _json_with_etag(request: web.Request, value: Any) -> web.StreamResponse:
    text = json.dumps(value, sort_keys=True)
    etag = '"' + hashlib.sha256(text.encode()).hexdigest()[:32] + '"'
    if request.headers.get("If-None-Match") == etag:
        return web.Response(status=304, headers={"ETag": etag})
    return web.Response(text=text, content_type="application/json", headers={"ETag": etag})


async def _faulty(fault: Fault, slow_s: float) -> web.StreamResponse:
    if fault == "http500":
        return problem(500, "Internal Server Error", "injected fault")
    if fault == "garbage":
        return web.Response(text="<html>bad gateway</html>", content_type="application/json")
    if fault == "nan":
        return web.Response(
            text='[{"id": "event-x", "programID": "p", "intervals": [], "x": NaN}]', content_type="application/json"
        )
    if fault == "not_a_list":
        return web.json_response({"detail": "not a list"})
    if fault == "invalid_object":
        return web.json_response([{"id": "bad id with spaces", "intervals": "no"}])
    await asyncio.sleep(slow_s)  # "slow": longer than the client's timeout
    return web.json_response([])
