"""The tenants section: whether the API needs keys, where tenants live, tier defaults and per-tenant rate limits."""

from __future__ import annotations

from enum import StrEnum

from pydantic import Field, PositiveFloat, PositiveInt, model_validator

from fleet.base import StrictModel

MAX_TIER = 3
"""Flexibility tiers are 0..3 (docs/tenants.md): 0 never moved, degraded or deferred; 3 may be all three."""


class AuthMode(StrEnum):
    """Whether tenant-facing calls need an API key."""

    OPEN = "open"  # anyone may call; a key, when sent, still selects its tenant, tier and usage
    REQUIRED = "required"  # embeddings and quotes need `Authorization: Bearer <key>` (else 401)


class TenantsConfig(StrictModel):
    """Tenants, their API keys and usage (docs/tenants.md)."""

    auth: AuthMode = Field(
        AuthMode.OPEN, description="open (the embedded default: no key needed) or required (a tenant key per call)."
    )
    database_url: str | None = Field(
        None,
        min_length=1,
        description="SQLAlchemy URL of the tenants database: sqlite:///path/tenants.db or "
        "postgresql+psycopg://user:pass@host/db; null: SQLite at $GRIDSHIFT_HOME/tenants.db (~/.gridshift).",
    )
    firm_class: str | None = Field(
        "firm",
        description="Workload class tiers 0 and 1 are served as: one the policy ladder never degrades, so those "
        "tiers keep full precision; null: they are served as their own class (and may be degraded).",
    )
    default_tier: int = Field(1, ge=0, le=MAX_TIER, description="Tier a new key applies when a request names none.")
    max_tier: int = Field(MAX_TIER, ge=0, le=MAX_TIER, description="Highest tier a new key may ask for.")
    requests_per_s: PositiveFloat = Field(
        50.0, description="Default per-tenant request rate limit, cluster-wide (a tenant may override it)."
    )
    items_per_s: PositiveFloat = Field(
        2_000.0, description="Default per-tenant rate limit on embedded items, cluster-wide."
    )
    rate_lease_s: PositiveFloat = Field(
        0.1,
        le=5.0,
        description="Seconds of a tenant's rate a gateway replica leases from the cluster's rate-limit actor at once: "
        "larger asks less often, and lets the cluster overshoot by up to replicas x this much of the rate.",
    )
    rate_lease_ttl_s: PositiveFloat = Field(
        1.0, le=60.0, description="A leased batch unused this long is dropped, so old grants never feed a later burst."
    )
    defer_max_s: float = Field(
        30.0,
        ge=0.0,
        le=600.0,
        description="Longest a tier-3 call is held while every region that could serve it is in grid emergency, s; "
        "at the limit it is served anyway. A request may lower it (X-Gridshift-Defer-Max-S); 0 disables deferral.",
    )
    defer_queue_max: PositiveInt = Field(
        256,
        le=100_000,
        description="Tier-3 calls one gateway replica holds at once; beyond it a call that would wait is answered "
        "503 with Retry-After at once.",
    )
    key_cache_s: float = Field(
        2.0, ge=0.0, le=60.0, description="How long a replica trusts a looked-up key: a revocation applies within it."
    )
    usage_flush_s: PositiveFloat = Field(0.5, le=60.0, description="How often buffered usage is written, s.")
    usage_buffer_max: PositiveInt = Field(
        100_000,
        description="Usage records a replica holds while the database is unreachable; beyond it, tenant calls are "
        "answered 503 rather than served unrecorded.",
    )

    @model_validator(mode="after")
    def _tiers_ordered(self) -> TenantsConfig:
        if self.default_tier > self.max_tier:
            raise ValueError(f"default_tier {self.default_tier} exceeds max_tier {self.max_tier}")
        return self
