"""The two-tenant load test's plan and records: who calls at which tier and rate, and what each call saw.

Pure and Ray-free, locust-free: the runner writes the plan (loadtests/tenant_run.py), the tenant locustfile reads it
and writes one record per call, and the rules (loadtests/tenant_rules.py) judge the records. The tenants' keys never
enter the plan file: the runner hands them to the locust process in its environment (`KEYS_ENV`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, PositiveFloat, PositiveInt

from fleet.tenants import MAX_TIER

KEYS_ENV = "GRIDSHIFT_LOADTEST_TENANT_KEYS"  # JSON {tenant name: key}, set by the runner for the locust process
RECORD_KIND = "tenant_request"


class TenantLoad(BaseModel):
    """One tenant of the run: its tier, its limit (null: the fleet's default) and the load its users offer."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1, max_length=120, description="Tenant name (unique per run: a suffix is added).")
    tier: int = Field(ge=0, le=MAX_TIER, description="The key's default and maximum tier: every call asks for it.")
    workload_class: str = Field("tolerant", description="X-Gridshift-Class of its calls.")
    users: PositiveInt = Field(description="Locust users calling as this tenant.")
    requests_per_s: PositiveFloat | None = Field(None, description="The tenant's request rate limit; null: default.")
    rate_limited: bool = Field(False, description="Offered above its limit: 429s are expected, and checked.")


class TenantsPlan(BaseModel):
    """What the runner tells the tenant locust process (a JSON file named by --gridshift-plan)."""

    model_config = ConfigDict(extra="forbid")

    scenario: str = Field(min_length=1)
    records_path: str = Field(min_length=1, description="JSON lines, one per call, appended.")
    origin: str = Field(min_length=1, description="Every call's X-Gridshift-Origin: the region the DR event is on.")
    user_rps: PositiveFloat = Field(le=5.0, description="Requests per second per user (paced).")
    tenants: list[TenantLoad] = Field(min_length=1)

    def user_tenants(self) -> list[TenantLoad]:
        """One entry per locust user, in the order users are started (each user calls as one tenant)."""
        return [tenant for tenant in self.tenants for _ in range(tenant.users)]


def tenants_plan(scenario: str, records_path: str, origin: str, user_rps: float, suffix: str) -> TenantsPlan:
    """The `tenants` scenario: a firm tenant (tier 0), a flexible one (tier 2) and one offered four times its limit
    (tier 1, one request per second), all calling from the region the DR event is posted on."""
    loads = [
        TenantLoad(name=f"loadtest-firm-{suffix}", tier=0, users=2),
        TenantLoad(name=f"loadtest-flex-{suffix}", tier=2, users=2),
        TenantLoad(name=f"loadtest-limited-{suffix}", tier=1, users=2, requests_per_s=1.0, rate_limited=True),
    ]
    return TenantsPlan(scenario=scenario, records_path=records_path, origin=origin, user_rps=user_rps, tenants=loads)


@dataclass(frozen=True, slots=True)
class TenantCall:
    """One call as the locust user saw it (one JSON line of records.jsonl, kind `tenant_request`)."""

    tenant: str
    tier: int
    request_id: str  # sent as X-Request-Id: the usage record's key
    items: int
    origin: str
    sent_s: float
    done_s: float
    status: int  # 0: no answer
    region: str | None = None
    precision: str | None = None
    effects: tuple[str, ...] = ()  # X-Gridshift-Flex-Effects, "none" as ()
    retry_after: str | None = None

    @property
    def ok(self) -> bool:
        return self.status == 200

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": RECORD_KIND,
            "tenant": self.tenant,
            "tier": self.tier,
            "request_id": self.request_id,
            "items": self.items,
            "origin": self.origin,
            "sent_s": round(self.sent_s, 4),
            "done_s": round(self.done_s, 4),
            "status": self.status,
            "region": self.region,
            "precision": self.precision,
            "effects": list(self.effects),
            "retry_after": self.retry_after,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> TenantCall:
        return cls(
            tenant=str(data["tenant"]),
            tier=int(data["tier"]),
            request_id=str(data["request_id"]),
            items=int(data["items"]),
            origin=str(data["origin"]),
            sent_s=float(data["sent_s"]),
            done_s=float(data["done_s"]),
            status=int(data["status"]),
            region=data.get("region"),
            precision=data.get("precision"),
            effects=tuple(str(e) for e in data.get("effects", [])),
            retry_after=data.get("retry_after"),
        )


def parse_effects(header: str | None) -> tuple[str, ...]:
    if not header or header.strip() == "none":
        return ()
    return tuple(part.strip() for part in header.split(",") if part.strip())


def read_calls(path: Path) -> list[TenantCall]:
    calls = []
    if path.exists():
        for line in path.read_text(encoding="utf-8").splitlines():
            data = json.loads(line)
            if data.get("kind") == RECORD_KIND:
                calls.append(TenantCall.from_json(data))
    return calls
