"""A gateway replica's side of the cluster-wide rate limits: the batches it holds, and its fallback share.

Calls are answered from the replica's lease of the tenant's tokens (no I/O); only when the lease cannot cover a call
does the replica ask the ledger (the rate-limit actor) for another batch, one ask per tenant at a time. If the ledger
cannot be reached the replica limits the tenant to its share of the rate (`rate / gateway replicas`) and tries the
ledger again after `RETRY_LEDGER_S`. The decisions are pure (policies/rate_lease.py); docs/tenants.md#rate-limits.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from fleet.config import FleetConfig
from policies.actors.client import Client, LocalClient
from policies.rate_lease import Lease, RateLeaseApi, RateLedger, TenantRates, batch_ask, fallback_limiter
from policies.rate_limit import TenantLimiter

logger = logging.getLogger("gridshift.rate_limits")

RETRY_LEDGER_S = 1.0  # after a failed ask, the replica limits on its own share this long before asking again
ASK_TIMEOUT_S = 2.0  # an ask slower than this counts as failed: a request never waits longer on the ledger


def ledger_client(fleet: FleetConfig) -> Client[RateLeaseApi]:
    """The fleet's rate-limit actor inside a Ray cluster (every replica shares it); in a process without Ray (tests,
    in-process tools) a ledger of this process's own."""
    import ray

    if not ray.is_initialized():
        return LocalClient(RateLedger(time.monotonic))
    from policies.actors.rate_limit import rate_limit_client

    return rate_limit_client(fleet)


class ClusterRateLimits:
    """Admission against the cluster-wide buckets, through this replica's leases."""

    def __init__(
        self,
        client: Callable[[], Client[RateLeaseApi]],
        lease_s: float,
        lease_ttl_s: float,
        replicas: int,
        monotonic_s: Callable[[], float] = time.monotonic,
    ) -> None:
        self._client_factory = client  # opened on first ask: the actor is started or found then, not at import
        self._client: Client[RateLeaseApi] | None = None
        self._lease_s = lease_s
        self._lease_ttl_s = lease_ttl_s
        self._replicas = replicas
        self._monotonic_s = monotonic_s
        self._leases: dict[str, Lease] = {}
        self._asking: dict[str, asyncio.Lock] = {}
        self._fallback: dict[str, tuple[TenantRates, TenantLimiter]] = {}
        self._quiet_until: dict[str, float] = {}  # after a refusal: refuse here, without asking, until then
        self._ledger_down_until = -1.0
        self.asks = 0  # ledger round trips made: a figure for the benchmark and the tests

    async def admit(self, tenant_id: str, rates: TenantRates, items: int) -> float:
        """0 and the call is counted, or the seconds to wait before it would pass (nothing counted)."""
        lease = self._leases.setdefault(tenant_id, Lease())
        if lease.covers(items, self._monotonic_s()):
            lease.spend(items)
            return 0.0
        lock = self._asking.setdefault(tenant_id, asyncio.Lock())
        async with lock:  # one ask per tenant at a time: calls queued behind it are usually covered by its grant
            now = self._monotonic_s()
            if lease.covers(items, now):
                lease.spend(items)
                return 0.0
            if now < self._ledger_down_until:
                return self._admit_alone(tenant_id, rates, items, now)
            quiet_until = self._quiet_until.get(tenant_id, -1.0)
            if now < quiet_until:
                return quiet_until - now
            ask_requests, ask_items = batch_ask(rates, self._lease_s, items)
            try:
                if self._client is None:
                    self._client = self._client_factory()
                grant = await asyncio.wait_for(
                    self._client.call(RateLeaseApi.lease, tenant_id, rates, items, ask_requests, ask_items),
                    ASK_TIMEOUT_S,
                )
            except Exception as error:  # unreachable, restarting or timed out: limit on this replica's share
                logger.warning(
                    "rate-limit ledger unreachable (%s: %s); limiting each tenant to 1/%d of its rate on this replica",
                    type(error).__name__,
                    error,
                    self._replicas,
                )
                self._ledger_down_until = now + RETRY_LEDGER_S
                return self._admit_alone(tenant_id, rates, items, now)
            self.asks += 1
            if not grant.granted:
                self._quiet_until[tenant_id] = now + grant.retry_s
                return grant.wait_s
            lease.add(grant, self._monotonic_s(), self._lease_ttl_s)
            lease.spend(items)
            return 0.0

    def _admit_alone(self, tenant_id: str, rates: TenantRates, items: int, now: float) -> float:
        known = self._fallback.get(tenant_id)
        if known is None or known[0] != rates:
            known = (rates, fallback_limiter(rates, self._replicas))
            self._fallback[tenant_id] = known
        return known[1].admit(items, now)
