"""Who is calling: the tenant API key and flexibility tier as a FastAPI dependency, the admin token check, and who
submits a job (the admin token, or a tenant key).

One 401 body for a missing, malformed, unknown or revoked key (nothing tells them apart); 403 names a tier above
the key's maximum.
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Header, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from fleet.tenants import MAX_TIER, AuthMode, TenantsConfig
from policies.tiers import TierRefused, allowed_tier, chosen_tier
from serve_apps.admin_token import admin_token_digest
from serve_apps.api_schema import ApiError
from tenants.keys import KEY_PREFIX
from tenants.store import Tenant, TenantsDatabaseError
from tenants.verify import KeyVerifier

# Module level: dependency annotations name them, and FastAPI resolves annotations in module globals.
ADMIN_BEARER = HTTPBearer(
    auto_error=False, description="The admin token `gridshift up` printed, or $GRIDSHIFT_ADMIN_TOKEN."
)
TENANT_BEARER = HTTPBearer(
    auto_error=False, scheme_name="TenantKey", description="A tenant API key (`gridshift tenants create`)."
)
KEY_REQUIRED = "a valid API key is required: 'Authorization: Bearer <key>'"
JOB_KEY_REQUIRED = "jobs need a tenant API key or the admin token: 'Authorization: Bearer <key>'"


@dataclass(frozen=True)
class Caller:
    """A call's tenant (None: anonymous, open fleets only) and tier (None: none asked, today's routing)."""

    tenant: Tenant | None
    tier: int | None


def admin_dependency(admin_token_sha256: str | None) -> Callable[..., Awaitable[None]]:
    """The admin check: the bearer token's digest against the configured one; None disables the admin API."""

    async def admin(credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(ADMIN_BEARER)]) -> None:
        presented = "" if credentials is None else credentials.credentials.strip()
        if admin_token_sha256 is None or not presented:
            raise ApiError(401, "admin API needs 'Authorization: Bearer <token>'", kind="authentication_error")
        if not is_admin_token(presented, admin_token_sha256):
            raise ApiError(401, "invalid admin token", kind="authentication_error")

    return admin


def is_admin_token(presented: str, admin_token_sha256: str | None) -> bool:
    # Compare digests in constant time: neither the token nor its length leaks through timing.
    return admin_token_sha256 is not None and hmac.compare_digest(admin_token_digest(presented), admin_token_sha256)


@dataclass(frozen=True)
class TenantAccess:
    """What the caller check needs; the app holds it as `app.state.tenant_access`."""

    config: TenantsConfig
    verifier: KeyVerifier
    admin_token_sha256: str | None = None  # the admin token's digest: an operator may submit jobs too


async def current_caller(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(TENANT_BEARER)],
    x_gridshift_flex_tier: Annotated[str | None, Header()] = None,
) -> Caller:
    """The tenant-facing check: with auth required a valid key; with auth open a key is optional, but a gridshift
    key (`gsk_...`) must be valid (a typo should not silently become anonymous). Any other bearer value is no key at
    all on an open fleet: OpenAI clients always send one (`api_key="unused"`), and must work as the README says."""
    access: TenantAccess = request.app.state.tenant_access
    presented = "" if credentials is None else credentials.credentials.strip()
    if access.config.auth is AuthMode.OPEN and not presented.startswith(f"{KEY_PREFIX}_"):
        presented = ""
    if not presented:
        if access.config.auth is AuthMode.REQUIRED:
            raise ApiError(401, KEY_REQUIRED, kind="authentication_error")
        return Caller(None, _tier(x_gridshift_flex_tier, None, MAX_TIER))
    tenant = await _tenant_of(access, presented, KEY_REQUIRED)
    return Caller(tenant, _tier(x_gridshift_flex_tier, tenant.default_tier, tenant.max_tier))


async def _tenant_of(access: TenantAccess, presented: str, refusal: str) -> Tenant:
    """The tenant a presented key opens; 401 (`refusal`, one body for every bad key) or 503 (database away)."""
    try:
        tenant = await access.verifier.tenant(presented)
    except TenantsDatabaseError as error:
        raise ApiError(503, str(error), kind="service_unavailable") from None
    if tenant is None:
        raise ApiError(401, refusal, kind="authentication_error")
    return tenant


def _tier(header: str | None, default_tier: int | None, max_tier: int) -> int | None:
    if default_tier is None and (header is None or not header.strip()):
        return None
    try:
        return chosen_tier(header, 0 if default_tier is None else default_tier, max_tier)
    except TierRefused as error:
        raise _tier_error(error, "X-Gridshift-Flex-Tier") from None


def _tier_error(error: TierRefused, param: str) -> ApiError:
    status, kind = (403, "permission_error") if error.forbidden else (422, "invalid_request_error")
    return ApiError(status, str(error), kind=kind, param=param)


def tenant_tier(asked: int | None, tenant: Tenant, param: str) -> int:
    """The tier a tenant's quote or job gets: the one asked for within its key's maximum (403 naming the tier above
    it, the rule calls follow), else its key's default."""
    try:
        return allowed_tier(asked, tenant.default_tier, tenant.max_tier)
    except TierRefused as error:
        raise _tier_error(error, param) from None


@dataclass(frozen=True)
class Submitter:
    """Who submits a job: a tenant (its key), or None for an operator (the admin token)."""

    tenant: Tenant | None


async def job_submitter(
    request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(TENANT_BEARER)]
) -> Submitter:
    """Job submission's check, whatever the fleet's auth mode: the admin token (an operator's job, untenanted) or a
    valid tenant key (the tenant's job: its usage is recorded, its tier bound by the key). Nothing else submits."""
    access: TenantAccess = request.app.state.tenant_access
    presented = "" if credentials is None else credentials.credentials.strip()
    if presented and is_admin_token(presented, access.admin_token_sha256):
        return Submitter(None)
    if not presented.startswith(f"{KEY_PREFIX}_"):
        raise ApiError(401, JOB_KEY_REQUIRED, kind="authentication_error")
    return Submitter(await _tenant_of(access, presented, JOB_KEY_REQUIRED))


def job_body(body: object, submitter: Submitter, asked_tier: str = "flex_tier") -> object:
    """A job's body as the submitter sends it, with the tenant set from the key: a client never names its tenant
    (422), and a tenant's tier is its key's default or the one asked within its maximum (403 above it)."""
    if not isinstance(body, dict):
        return body  # the spec's validation answers it (422)
    # A null tenant_id is what a client dumping a whole job spec sends: it names no tenant, so it is dropped.
    if body.get("tenant_id") is not None:
        raise ApiError(422, "tenant_id: set from the API key; do not send it", param="tenant_id")
    body = {key: value for key, value in body.items() if key != "tenant_id"}
    tenant = submitter.tenant
    if tenant is None:
        return body
    asked = body.get(asked_tier)
    if asked is not None and (not isinstance(asked, int) or isinstance(asked, bool)):
        return body  # not a tier at all: the spec's validation names the field (422)
    return {**body, "tenant_id": tenant.tenant_id, asked_tier: tenant_tier(asked, tenant, asked_tier)}
