"""The rate-limit actor: the one ledger of per-tenant token buckets every gateway replica leases batches from.

Named and detached like the fleet's other actors (policies/actors/registry.py). If it dies, Ray restarts it with
full buckets (at most one extra burst per tenant); while it cannot be reached, replicas fall back to their share of
the rate (serve_apps/tenant_limits.py).
"""

from __future__ import annotations

import time
from typing import Any

from ray.actor import ActorHandle

from fleet.config import FleetConfig
from policies.actors.client import ActorClient
from policies.actors.registry import RATE_LIMIT_ACTOR_NAME, get_or_create_fleet_actor
from policies.rate_lease import RateLeaseApi, RateLedger

LEASE_TIMEOUT_S = 2.0  # a lease ask slower than this falls back to the replica's share (the actor may be restarting)


class RateLimitActor(RateLedger):
    """The ledger on the actor's own monotonic clock."""

    def __init__(self, fleet_data: dict[str, Any]) -> None:
        del fleet_data  # the rates arrive with each ask: a tenant's limits live in the tenants database
        super().__init__(time.monotonic)


def get_or_create_rate_limit_actor(fleet: FleetConfig) -> ActorHandle[RateLimitActor]:
    """The fleet's rate-limit actor, started if absent; detached and restarted by Ray whenever it dies."""
    return get_or_create_fleet_actor(RateLimitActor, RATE_LIMIT_ACTOR_NAME, fleet)


def rate_limit_client(fleet: FleetConfig) -> ActorClient[RateLeaseApi]:
    """A client of the fleet's rate-limit actor, started if absent."""
    return ActorClient(RATE_LIMIT_ACTOR_NAME, get_or_create_rate_limit_actor(fleet), timeout_s=LEASE_TIMEOUT_S)
