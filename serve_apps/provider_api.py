"""Provider routes: grid-aware prices, job quotes, per-tenant usage, and the admin API for tenants and their keys.

Mounted by serve_apps/http_api.py `create_app`; the provider state is serve_apps/provider.py (docs/tenants.md).
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable
from dataclasses import asdict, replace
from typing import Annotated, Any, TypeVar

from fastapi import Depends, FastAPI, Query, Request
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials
from pydantic import BaseModel, ConfigDict, Field, PositiveFloat

from fleet.base import UtcDatetime
from fleet.errors import GridshiftError
from fleet.tenants import MAX_TIER
from fleet.times import iso, to_epoch_s, utc_now_from
from policies.control_api import ControlApi
from policies.plan import HOUR_S
from policies.pricing import forecast_hours, hour_to_dict
from policies.quotes import QuoteRefused, quote_job, quote_to_dict
from serve_apps.api_schema import ApiError, error_body, read_json, validated
from serve_apps.gateway import GatewayCore
from serve_apps.provider import Provider, RateLimited
from serve_apps.tenant_auth import (
    TENANT_BEARER,
    Caller,
    admin_dependency,
    current_caller,
    is_admin_token,
    tenant_tier,
)
from tenants.store import Tenant, TenantsDatabaseError, UnknownTenantError, UsageRecord, usage_totals

PRICES_SCHEMA = "gridshift.prices/v1"
QUOTE_SCHEMA = "gridshift.quote/v1"
USAGE_SCHEMA = "gridshift.usage/v1"
Result = TypeVar("Result")


class TenantCreate(BaseModel):
    """`POST /v1/admin/tenants` body."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=200, description="Unique tenant name.")
    default_tier: int | None = Field(None, ge=0, le=MAX_TIER, description="Tier when a call names none.")
    max_tier: int | None = Field(None, ge=0, le=MAX_TIER, description="Highest tier the key may ask for.")
    requests_per_s: PositiveFloat | None = Field(None, description="Request rate limit; null: the fleet default.")
    items_per_s: PositiveFloat | None = Field(None, description="Item rate limit; null: the fleet default.")


class QuoteRequest(BaseModel):
    """`POST /v1/quotes` body: a job's size and the deadlines to compare."""

    model_config = ConfigDict(extra="forbid")

    region: str = Field(min_length=1, description="Region the job runs in.")
    work_hours: PositiveFloat = Field(le=720, description="The job's run time when it runs uninterrupted, hours.")
    deadlines: list[UtcDatetime] = Field(min_length=1, max_length=24, description="Candidate deadlines (UTC).")
    tier: int | None = Field(None, ge=0, le=MAX_TIER, description="Tier to quote; default: the key's (anonymous: 3).")


def tenant_to_dict(tenant: Tenant) -> dict[str, Any]:
    return {
        "tenant_id": tenant.tenant_id,
        "name": tenant.name,
        "default_tier": tenant.default_tier,
        "max_tier": tenant.max_tier,
        "requests_per_s": tenant.requests_per_s,
        "items_per_s": tenant.items_per_s,
        "created_at": iso(tenant.created_at_s),
        "revoked_at": None if tenant.revoked_at_s is None else iso(tenant.revoked_at_s),
    }


async def _db(call: Callable[[], Result]) -> Result:
    """A store call off the event loop; a database that does not answer is a 503, a refused change a 409/404."""
    try:
        return await asyncio.to_thread(call)
    except UnknownTenantError as error:
        raise ApiError(404, str(error), kind="not_found_error", param="tenant") from None
    except TenantsDatabaseError as error:
        raise ApiError(503, str(error), kind="service_unavailable") from None
    except GridshiftError as error:
        raise ApiError(409, str(error)) from None
    except Exception as error:  # a driver error: the database is away, not the client's fault
        if type(error).__module__.startswith("sqlalchemy"):
            raise ApiError(
                503, f"tenants database unavailable ({type(error).__name__})", kind="service_unavailable"
            ) from None
        raise


def _epoch(value: str | None, param: str) -> float | None:
    if value is None:
        return None
    try:
        return float(to_epoch_s(utc_now_from(value)))
    except (GridshiftError, ValueError) as error:  # not ISO-8601, or without a UTC offset
        raise ApiError(422, f"{param}: {error}", param=param) from None


def mount_provider(app: FastAPI, core: GatewayCore, provider: Provider, admin_token_sha256: str | None) -> None:
    """Add the provider routes to the gateway's app."""
    fleet = core.fleet
    pricing = fleet.pricing
    admin_only = [Depends(admin_dependency(admin_token_sha256))]
    # The callers' check, and job submission's (the admin token or a tenant key: serve_apps/tenant_auth.py).
    app.state.tenant_access = replace(provider.access, admin_token_sha256=admin_token_sha256)

    @app.exception_handler(RateLimited)
    async def _rate_limited(_request: Request, error: RateLimited) -> JSONResponse:
        return JSONResponse(
            error_body(error.message, error.kind), 429, headers={"Retry-After": str(error.retry_after_s)}
        )

    async def control_now_s() -> int:
        return int(await core.control.call(ControlApi.clock_now_s))

    def regions_of(region: str | None) -> tuple[str, ...]:
        if region is None:
            return fleet.region_names
        if region not in fleet.region_names:
            raise ApiError(422, f"region: {region!r} is not in the fleet {list(fleet.region_names)}", param="region")
        return (region,)

    @app.get("/v1/prices")
    async def prices(
        region: Annotated[str | None, Query()] = None, hours: Annotated[int, Query(ge=1, le=168)] = 24
    ) -> dict[str, Any]:
        """Price per 1,000 items and per job-hour, per region, hour ahead and tier, from forecasts only."""
        names = regions_of(region)
        now_s = await control_now_s()
        trace = (await asyncio.to_thread(provider.context)).trace
        rows = {name: forecast_hours(trace, fleet, name, now_s, hours) for name in names}
        return {
            "schema": PRICES_SCHEMA,
            "issued_at": iso(now_s),
            "formula": "docs/tenants.md#prices",
            "regions": [{"region": name, "hours": [hour_to_dict(h, pricing) for h in rows[name]]} for name in names],
        }

    @app.post("/v1/quotes")
    async def quotes(raw: Request, caller: Annotated[Caller, Depends(current_caller)]) -> dict[str, Any]:
        """Expected price, energy, carbon and finish window of a job for each candidate deadline."""
        spec = validated(QuoteRequest, await read_json(raw, max_bytes=16_384))
        regions_of(spec.region)
        tier = _quote_tier(spec.tier, caller)
        now_s = await control_now_s()
        work_s = math.ceil(spec.work_hours * HOUR_S)
        deadlines = [to_epoch_s(d) for d in spec.deadlines]
        latest = min(max(deadlines), now_s + pricing.max_quote_horizon_h * HOUR_S)
        hours = max(1, -(-(latest - (now_s - now_s % HOUR_S)) // HOUR_S))
        trace = (await asyncio.to_thread(provider.context)).trace
        conditions = forecast_hours(trace, fleet, spec.region, now_s, hours)
        try:
            quoted = quote_job(now_s, work_s, deadlines, tier, conditions, pricing)
        except QuoteRefused as error:
            raise ApiError(422, f"{error.field}: {error}", param=error.field) from None
        return {
            "schema": QUOTE_SCHEMA,
            "issued_at": iso(now_s),
            "region": spec.region,
            "work_hours": spec.work_hours,
            "tier": tier,
            "quotes": [quote_to_dict(q) for q in quoted],
        }

    @app.get("/v1/usage")
    async def usage(
        request: Request,
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(TENANT_BEARER)],
        from_: Annotated[str | None, Query(alias="from")] = None,
        to: Annotated[str | None, Query()] = None,
        tenant: Annotated[str | None, Query()] = None,
        limit: Annotated[int, Query(ge=0, le=10_000)] = 1000,
    ) -> dict[str, Any]:
        """A tenant's own usage (its key), or every tenant's (the admin token), in [from, to)."""
        presented = "" if credentials is None else credentials.credentials.strip()
        if presented and is_admin_token(presented, admin_token_sha256):
            tenant_id = None if tenant is None else (await _db(lambda: provider.store().tenant(tenant))).tenant_id
        else:
            caller = await current_caller(request, credentials, None) if presented else Caller(None, None)
            if caller.tenant is None:
                raise ApiError(401, "usage needs a tenant key or the admin token", kind="authentication_error")
            tenant_id = caller.tenant.tenant_id
        from_s, to_s = _epoch(from_, "from"), _epoch(to, "to")
        records = await _db(lambda: provider.store().usage(from_s, to_s, tenant_id))
        return {
            "schema": USAGE_SCHEMA,
            "from": from_,
            "to": to,
            "totals": usage_totals(records),
            "records": [_usage_row(r) for r in records[:limit]],
            "truncated": len(records) > limit,
        }

    @app.post("/v1/admin/tenants", status_code=201, dependencies=admin_only)
    async def create_tenant(raw: Request) -> dict[str, Any]:
        spec = validated(TenantCreate, await read_json(raw, max_bytes=4096))
        default_tier = fleet.tenants.default_tier if spec.default_tier is None else spec.default_tier
        max_tier = max(default_tier, fleet.tenants.max_tier) if spec.max_tier is None else spec.max_tier
        if default_tier > max_tier:
            raise ApiError(422, f"default_tier: {default_tier} exceeds max_tier {max_tier}", param="default_tier")
        tenant, key = await _db(
            lambda: provider.store().create_tenant(
                spec.name, default_tier, max_tier, spec.requests_per_s, spec.items_per_s
            ),
        )
        return {"tenant": tenant_to_dict(tenant), "api_key": key, "note": "shown once: store it now"}

    @app.get("/v1/admin/tenants", dependencies=admin_only)
    async def list_tenants() -> dict[str, Any]:
        found = await _db(lambda: provider.store().tenants())
        return {"tenants": [tenant_to_dict(t) for t in found]}

    @app.post("/v1/admin/tenants/{ref}/{action}", dependencies=admin_only)
    async def tenant_action(ref: str, action: str) -> dict[str, Any]:
        if action == "revoke":
            return {"tenant": tenant_to_dict(await _db(lambda: provider.store().revoke(ref)))}
        if action == "rotate":
            tenant, key = await _db(lambda: provider.store().rotate(ref))
            return {"tenant": tenant_to_dict(tenant), "api_key": key, "note": "shown once: store it now"}
        raise ApiError(404, f"unknown action {action!r}: use revoke or rotate", param="action")


def _quote_tier(asked: int | None, caller: Caller) -> int:
    if caller.tenant is None:
        return MAX_TIER if asked is None else asked
    return tenant_tier(caller.tier if asked is None else asked, caller.tenant, "tier")


def _usage_row(record: UsageRecord) -> dict[str, Any]:
    row = asdict(record)
    row["at"] = iso(row.pop("at_s"))
    row["grid_hour"] = iso(row.pop("grid_hour_s"))
    return row
