"""The VEN's registration and subscriptions: its VEN and one resource per region on the VTN, and its webhooks.

Both are idempotent: an object this VEN left on the VTN in an earlier run (same venName, resourceName, or
callback URL) is found and reused, so a restart creates nothing twice.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from fleet.errors import OpenADRError
from fleet.openadr import OpenADRConfig
from openadr.client import VTNClient
from openadr.ven_events import Fail

log = logging.getLogger(__name__)


class Registration:
    """Who this VEN is on the VTN (its id, its resources' ids) and the subscriptions it holds there."""

    def __init__(
        self,
        config: OpenADRConfig,
        client: VTNClient,
        regions: Sequence[str],
        resource_names: Mapping[str, str],
        webhook_token: str,
        fail: Fail,
    ) -> None:
        self.config = config
        self.client = client
        self.regions = tuple(regions)
        self.resource_names = resource_names
        self.webhook_token = webhook_token  # the bearer token the VTN must send with each notification
        self.fail = fail
        self.ven_id: str | None = None
        self.resource_ids: dict[str, str] = {}
        self.subscriptions: dict[str, str] = {}  # programID ("" for all programs, 3.1.0) -> subscription id

    @property
    def version(self) -> str:
        return self.client.schemas.version

    @property
    def registered(self) -> bool:
        return self.ven_id is not None and len(self.resource_ids) == len(self.regions)

    async def register(self) -> bool:
        """Find or create this VEN and one resource per region; True once all are registered."""
        try:
            if self.ven_id is None:
                self.ven_id = await self._find_or_create_ven()
            for region in self.regions:
                if region not in self.resource_ids:
                    self.resource_ids[region] = await self._find_or_create_resource(self.ven_id, region)
        except OpenADRError as error:
            self.fail("registration", error)
            return False
        return True

    async def _find_or_create_ven(self) -> str:
        name = self.config.ven_name
        found = await self.client.list_objects("/vens", "ven", [("venName", name)])
        for ven in found.objects:
            if ven.get("venName") == name:
                return str(ven["id"])
        body: dict[str, Any] = {"venName": name}
        if self.version == "3.1.0":
            body = {"objectType": "VEN_VEN_REQUEST", **body}
        created = await self.client.create("/vens", "ven", body, "ven")
        log.info("openadr: registered VEN %s as %s", name, created["id"])
        return str(created["id"])

    async def _find_or_create_resource(self, ven_id: str, region: str) -> str:
        name = self.resource_names[region]
        if self.version == "3.1.0":
            path, params = "/resources", [("venID", ven_id), ("resourceName", name)]
            body: dict[str, Any] = {"objectType": "VEN_RESOURCE_REQUEST", "resourceName": name, "venID": ven_id}
        else:
            path, params = f"/vens/{ven_id}/resources", [("resourceName", name)]
            body = {"resourceName": name}
        found = await self.client.list_objects(path, "resource", params)
        for resource in found.objects:
            if resource.get("resourceName") == name and resource.get("venID") in (None, ven_id):
                return str(resource["id"])
        created = await self.client.create(path, "resource", body, "resource")
        log.info("openadr: registered resource %s (region %s) as %s", name, region, created["id"])
        return str(created["id"])

    def _subscription_body(self, program_id: str, url: str) -> dict[str, Any]:
        body: dict[str, Any] = {
            "clientName": self.config.ven_name,
            "objectOperations": [
                {
                    "objects": ["EVENT", "PROGRAM"],
                    "operations": ["CREATE", "UPDATE", "DELETE"],
                    "callbackUrl": url,
                    "bearerToken": self.webhook_token,
                }
            ],
        }
        if program_id:
            body["programID"] = program_id
        return body

    async def subscribe(self, url: str | None, program_ids: Iterable[str]) -> None:
        """Make sure the VTN notifies `url` (None: no webhook, nothing to do) of event and program changes: one
        subscription for all programs (3.1.0), or one per followed program (3.0.1 needs a programID). Reuses our
        old ones."""
        if url is None:
            return
        wanted = [""] if self.version == "3.1.0" else sorted(program_ids)
        missing = [program_id for program_id in wanted if program_id not in self.subscriptions]
        if not missing:
            return
        try:
            existing = await self.client.list_objects(
                "/subscriptions", "subscription", [("clientName", self.config.ven_name)]
            )
            ours = {
                str(sub.get("programID") or ""): str(sub["id"])
                for sub in existing.objects
                if sub.get("clientName") == self.config.ven_name
                and any(op.get("callbackUrl") == url for op in sub.get("objectOperations") or [])
            }
            for program_id in missing:
                body = self._subscription_body(program_id, url)
                if program_id in ours:  # left by an earlier run: give it the new bearer token
                    path = f"/subscriptions/{ours[program_id]}"
                    answer = await self.client.update(path, "subscription", body, "subscription")
                else:
                    answer = await self.client.create("/subscriptions", "subscription", body, "subscription")
                self.subscriptions[program_id] = str(answer["id"])
        except OpenADRError as error:
            self.fail("subscription", error)

    async def unsubscribe(self) -> None:
        """Delete our subscriptions, best effort: one the VTN will not delete stays listed."""
        for program_id, subscription_id in list(self.subscriptions.items()):
            try:
                await self.client.delete(f"/subscriptions/{subscription_id}")
                del self.subscriptions[program_id]
            except OpenADRError as error:
                log.info("openadr: could not delete subscription %s: %s", subscription_id, error)
