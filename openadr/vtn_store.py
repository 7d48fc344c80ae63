"""The local VTN's store: its objects, the spec's rules for writing and reading them, and the notifications sent.

Every write, from HTTP or from the business-logic helpers, comes through here: checked against the request
schema, who may write it and what it references; stamped with the VTN-provisioned fields; checked again as the
stored object; and announced to every matching subscription before the write returns.
"""

from __future__ import annotations

import asyncio
import ipaddress
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import urlsplit

from fleet.clock import Clock
from fleet.errors import OpenADRValidationError
from fleet.openadr import SpecVersion
from openadr.schema import SpecSchemas
from openadr.timing import format_instant

Role = Literal["ven", "bl"]
Operation = Literal["CREATE", "UPDATE", "DELETE"]
_NOTIFY_OPERATION: Mapping[SpecVersion, Mapping[Operation, str]] = {
    "3.0.1": {"CREATE": "POST", "UPDATE": "PUT", "DELETE": "DELETE"},
    "3.1.0": {"CREATE": "CREATE", "UPDATE": "UPDATE", "DELETE": "DELETE"},
}
_METADATA = ("id", "createdDateTime", "modificationDateTime", "objectType")
OBJECT_TYPES = {
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

Deliver = Callable[[str, str | None, Mapping[str, Any]], Awaitable[int]]
"""Posts one notification (callback URL, bearer token, body); the subscriber's status, 0 when unreachable."""


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


class VTNStore:
    """The VTN's objects by kind and id, who created each, and every notification delivered and write refused."""

    def __init__(
        self,
        version: SpecVersion,
        clock: Clock,
        schemas: SpecSchemas,
        deliver: Deliver,
        allow_remote_callbacks: bool = False,
    ) -> None:
        self.version = version
        self.clock = clock
        self.schemas = schemas
        self.deliver = deliver
        self.allow_remote_callbacks = allow_remote_callbacks
        self.objects: dict[str, dict[str, dict[str, Any]]] = {kind: {} for kind in OBJECT_TYPES}
        self.deliveries: list[Delivery] = []
        self.refused: list[str] = []
        self._owners: dict[str, str] = {}  # object id -> client_id that created it
        self._next_id = 0

    # Writes -------------------------------------------------------------------------------------------------

    async def create(
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

    async def update(
        self, kind: str, object_id: str, body: dict[str, Any], role: Role, client_id: str
    ) -> dict[str, Any]:
        self._check_write(kind, role)
        current = self.visible(kind, object_id, role, client_id)
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

    async def delete(self, kind: str, object_id: str, role: Role, client_id: str) -> dict[str, Any]:
        self._check_write(kind, role)
        current = self.visible(kind, object_id, role, client_id)
        del self.objects[kind][object_id]
        await self._notify(kind, "DELETE", current)
        return current

    # Reads --------------------------------------------------------------------------------------------------

    def visible(self, kind: str, object_id: str, role: Role, client_id: str) -> dict[str, Any]:
        obj = self.objects[kind].get(object_id)
        if obj is None or not self.may_read(kind, object_id, role, client_id):
            raise VTNRefusal(404, "Not Found", f"no {kind} {object_id!r}")
        return obj

    def may_read(self, kind: str, object_id: str, role: Role, client_id: str) -> bool:
        private = self.version == "3.1.0" and kind in _PRIVATE and role == "ven"
        return not private or self._owners.get(object_id) == client_id

    # Checks -------------------------------------------------------------------------------------------------

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
            "objectType": OBJECT_TYPES[kind],
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

    def _check_callbacks(self, body: Mapping[str, Any]) -> None:
        for operation in body.get("objectOperations") or []:
            parts = urlsplit(str(operation.get("callbackUrl")))
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise VTNRefusal(400, "Bad Request", f"callbackUrl {operation.get('callbackUrl')!r} is not http(s)")
            if not self.allow_remote_callbacks and not _is_loopback(parts.hostname):
                raise VTNRefusal(400, "Bad Request", "this local VTN only calls back loopback addresses")

    # Notifications ------------------------------------------------------------------------------------------

    async def _notify(self, kind: str, operation: Operation, obj: Mapping[str, Any]) -> None:
        object_type = OBJECT_TYPES[kind]
        program_id = obj.get("id") if kind == "program" else obj.get("programID")
        body = {"objectType": object_type, "operation": _NOTIFY_OPERATION[self.version][operation], "object": obj}
        self.schemas.validate("notification", body, "notification the VTN sends")
        calls = []
        for subscription in list(self.objects["subscription"].values()):
            if subscription.get("programID") not in (None, program_id):
                continue
            for entry in subscription.get("objectOperations") or []:
                if object_type in entry.get("objects", []) and operation in entry.get("operations", []):
                    calls.append(self._deliver_one(entry["callbackUrl"], entry.get("bearerToken"), body))
        # Delivered before the change's own answer returns, so "at once" is observable in tests.
        await asyncio.gather(*calls)

    async def _deliver_one(self, url: str, token: str | None, body: Mapping[str, Any]) -> None:
        status = await self.deliver(url, token, body)
        obj = body["object"]
        self.deliveries.append(
            Delivery(url, str(body["operation"]), str(body["objectType"]), str(obj.get("id")), status)
        )


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
