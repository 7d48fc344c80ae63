"""Cluster-wide per-tenant rate limits: one ledger of token buckets, from which gateway replicas lease small batches.

Pure: time comes in as numbers. The ledger (`RateLedger`, the Ray actor in policies/actors/rate_limit.py) holds each
tenant's two buckets (policies/rate_limit.py) for the whole cluster; a replica answers calls from the batch it holds
(`Lease`) and asks the ledger for another only when that batch cannot cover a call. Tokens leave the ledger's
buckets once, when granted, so the cluster never admits more than the buckets release, plus what replicas still
hold. The bound (docs/tenants.md#rate-limits): over any interval of T seconds, a tenant is admitted at most
`rate * T + burst + replicas * batch`, where batch is `rate * lease_s` (at least one call), and a batch not used
within `lease_ttl_s` is dropped, so nothing granted long ago is spent in a later burst.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from policies.rate_limit import TenantLimiter


@dataclass(frozen=True)
class TenantRates:
    """A tenant's limits as a replica knows them (from its database row or the fleet's defaults)."""

    requests_per_s: float
    items_per_s: float
    max_items_per_call: int  # the largest call the gateway accepts: the item bucket's burst is never below it


@dataclass(frozen=True)
class Grant:
    """The ledger's answer: tokens handed to the replica (both 0 when refused), or the wait before the call's own
    cost would be available (`wait_s`, the client's Retry-After) and before the batch asked for would be (`retry_s`:
    the replica asks no sooner, so a tenant over its limit costs the ledger about one ask per batch, not one per
    refused call)."""

    requests: float
    items: float
    wait_s: float
    retry_s: float = 0.0

    @property
    def granted(self) -> bool:
        return self.wait_s <= 0


class RateLeaseApi(Protocol):
    """The rate-limit actor's interface: one call, plain values in and out (it crosses a process boundary)."""

    def lease(
        self, tenant_id: str, rates: TenantRates, need_items: int, ask_requests: float, ask_items: float
    ) -> Grant:
        """Grant at least one call of `need_items` items and up to the asked batch, or refuse with the wait."""
        ...


class RateLedger:
    """Every tenant's buckets for the whole cluster, on one monotonic clock (the ledger's: replicas' clocks never
    mix with it). Refused asks take nothing."""

    def __init__(self, monotonic_s: Callable[[], float]) -> None:
        self._monotonic_s = monotonic_s
        self._limiters: dict[str, tuple[TenantRates, TenantLimiter]] = {}

    def lease(
        self, tenant_id: str, rates: TenantRates, need_items: int, ask_requests: float, ask_items: float
    ) -> Grant:
        return self.lease_at(tenant_id, rates, need_items, ask_requests, ask_items, self._monotonic_s())

    def lease_at(
        self, tenant_id: str, rates: TenantRates, need_items: int, ask_requests: float, ask_items: float, now_s: float
    ) -> Grant:
        known = self._limiters.get(tenant_id)
        if known is None or known[0] != rates:  # new tenant, or its limits changed: start from full buckets
            known = (rates, TenantLimiter.for_rates(rates.requests_per_s, rates.items_per_s, rates.max_items_per_call))
            self._limiters[tenant_id] = known
        limiter = known[1]
        requests, items = limiter.requests, limiter.items
        wait = max(requests.wait_s(1.0, now_s), items.wait_s(float(need_items), now_s))
        if wait > 0:
            retry = max(wait, requests.wait_s(ask_requests, now_s), items.wait_s(ask_items, now_s))
            return Grant(0.0, 0.0, wait, retry)
        # At least the call's own cost; up to the batch asked, as far as the buckets hold.
        granted_requests = max(1.0, min(ask_requests, requests.tokens))
        granted_items = max(float(need_items), min(ask_items, items.tokens))
        requests.take(granted_requests)
        items.take(granted_items)
        return Grant(granted_requests, granted_items, 0.0)


def batch_ask(rates: TenantRates, lease_s: float, need_items: int) -> tuple[float, float]:
    """What a replica asks for: `lease_s` seconds of the tenant's rates, never less than the call in hand."""
    return max(1.0, rates.requests_per_s * lease_s), max(float(need_items), rates.items_per_s * lease_s)


@dataclass
class Lease:
    """The tokens one replica holds for one tenant, and until when (its own monotonic clock)."""

    requests: float = 0.0
    items: float = 0.0
    expires_at_s: float = -math.inf

    def covers(self, items: int, now_s: float) -> bool:
        return now_s < self.expires_at_s and self.requests >= 1.0 and self.items >= items

    def spend(self, items: int) -> None:
        self.requests -= 1.0
        self.items -= items

    def add(self, grant: Grant, now_s: float, ttl_s: float) -> None:
        """Hold a new grant; what an expired lease still held is dropped (spending it now could overshoot)."""
        if now_s >= self.expires_at_s:
            self.requests = self.items = 0.0
        self.requests += grant.requests
        self.items += grant.items
        self.expires_at_s = now_s + ttl_s


def fallback_limiter(rates: TenantRates, replicas: int) -> TenantLimiter:
    """A replica's own buckets while the ledger cannot be reached: its share of the rate, so that `replicas` replicas
    together stay within the limit."""
    share = max(1, replicas)
    return TenantLimiter.for_rates(rates.requests_per_s / share, rates.items_per_s / share, rates.max_items_per_call)
