"""The local VTN's HTTP side: the OpenADR 3 routes over its store and auth, ETags, problem answers, faults.

Each route authorises the caller, reads or writes through the store (which applies the spec's rules) and
answers; a VTNRefusal anywhere becomes an RFC 7807 problem answer. Faults injected for tests answer in place
of the route, before any of that.
"""

from __future__ import annotations

import asyncio
import copy
import hashlib
import json
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from aiohttp import web

from openadr.client import PAGE_LIMIT, loads_strict
from openadr.vtn_auth import Token, VTNAuth
from openadr.vtn_store import VTNRefusal, VTNStore
from openadr.webhook import problem

Fault = Literal["http500", "garbage", "nan", "not_a_list", "invalid_object", "slow"]
_FILTERS: Mapping[str, tuple[str, ...]] = {
    "event": ("programID",),
    "report": ("programID", "eventID", "clientName"),
    "subscription": ("programID", "clientName"),
    "ven": ("venName",),
    "resource": ("resourceName", "venID"),
}


@dataclass(frozen=True)
class Received:
    """One request the VTN accepted (method, path, body), kept for tests to inspect."""

    method: str
    path: str
    client_id: str
    body: Any


@dataclass
class FaultPlan:
    """Answer the next `times` requests under `path_prefix` badly, as `fault` says."""

    path_prefix: str
    fault: Fault
    times: int


@dataclass
class VTNRoutes:
    """The VTN's aiohttp application over `store` and `auth`; what it accepts is appended to `received`."""

    store: VTNStore
    auth: VTNAuth
    url: Callable[[], str]  # the VTN's base URL, known once it listens
    received: list[Received]
    faults: list[FaultPlan]
    slow_s: float  # how long an injected 'slow' answer takes

    def app(self) -> web.Application:
        app = web.Application(middlewares=[self._middleware])
        app.router.add_post("/auth/token", self.auth.token_endpoint)
        routes: list[web.RouteDef] = []
        for kind in ("program", "event", "report", "subscription", "ven"):
            routes += self._routes(kind, f"/{kind}s")
        if self.store.version == "3.1.0":
            routes += self._routes("resource", "/resources")
            app.router.add_get("/auth/server", self._auth_server)
            app.router.add_get("/notifiers", self._notifiers)
        else:
            routes += self._routes("resource", "/vens/{venID}/resources")
        app.add_routes(routes)
        return app

    async def _auth_server(self, _request: web.Request) -> web.Response:
        return web.json_response({"tokenURL": f"{self.url()}/auth/token"})

    async def _notifiers(self, request: web.Request) -> web.Response:
        self.auth.authorise(request)
        return web.json_response({"WEBHOOK": True})

    def _list(self, kind: str, request: web.Request, token: Token, ven_id: str | None) -> list[dict[str, Any]]:
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
            for object_id, obj in self.store.objects[kind].items()
            if self.store.may_read(kind, object_id, token.role, token.client_id)
            and all(obj.get(key) == query[key] for key in _FILTERS.get(kind, ()) if key in query)
            and (ven_id is None or obj.get("venID") == ven_id)
        ]
        return found[skip : skip + limit]

    def _routes(self, kind: str, base: str) -> list[web.RouteDef]:
        store = self.store

        async def collection(request: web.Request) -> web.StreamResponse:
            token = self.auth.authorise(request)
            ven_id = request.match_info.get("venID")
            if ven_id is not None and ven_id not in store.objects["ven"]:
                raise VTNRefusal(404, "Not Found", f"no ven {ven_id!r}")
            if request.method == "GET":
                return _json_with_etag(request, self._list(kind, request, token, ven_id))
            body = await _body(request)
            self.received.append(Received("POST", request.path, token.client_id, copy.deepcopy(body)))
            created = await store.create(kind, body, token.role, token.client_id, ven_id)
            return web.json_response(created, status=201)

        async def item(request: web.Request) -> web.StreamResponse:
            token = self.auth.authorise(request)
            object_id = request.match_info["objectID"]
            if request.method == "GET":
                return _json_with_etag(request, store.visible(kind, object_id, token.role, token.client_id))
            if request.method == "DELETE":
                return web.json_response(await store.delete(kind, object_id, token.role, token.client_id))
            body = await _body(request)
            self.received.append(Received("PUT", request.path, token.client_id, copy.deepcopy(body)))
            return web.json_response(await store.update(kind, object_id, body, token.role, token.client_id))

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
        for plan in self.faults:
            if plan.times > 0 and request.path.startswith(plan.path_prefix):
                plan.times -= 1
                return await _faulty(plan.fault, self.slow_s)
        try:
            return await handler(request)
        except VTNRefusal as refusal:
            return problem(refusal.status, refusal.title, refusal.detail)


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
