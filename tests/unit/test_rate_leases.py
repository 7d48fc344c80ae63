"""Cluster-wide rate limits: the ledger's grants, a replica's lease, and N replicas together within the stated bound."""

from __future__ import annotations

import asyncio
import math
import random
from typing import Any

import pytest

from policies.actors.client import LocalClient
from policies.rate_lease import Grant, Lease, RateLedger, TenantRates, batch_ask, fallback_limiter
from serve_apps.tenant_limits import ClusterRateLimits


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


RATES = TenantRates(requests_per_s=10.0, items_per_s=1_000.0, max_items_per_call=64)


def test_the_ledger_grants_at_least_the_call_and_at_most_what_its_buckets_hold() -> None:
    clock = Clock()
    ledger = RateLedger(clock)
    first = ledger.lease("t", RATES, 2, 4.0, 400.0)
    assert first == Grant(4.0, 400.0, 0.0)
    second = ledger.lease("t", RATES, 2, 100.0, 10_000.0)  # asks past what is left get what is left
    assert second.granted
    assert second.requests == pytest.approx(6.0)
    assert second.items == pytest.approx(600.0)
    refused = ledger.lease("t", RATES, 2, 4.0, 400.0)
    assert not refused.granted
    assert refused.requests == refused.items == 0.0
    assert refused.wait_s == pytest.approx(0.1)  # one request token at 10/s
    assert refused.retry_s == pytest.approx(0.4)  # the batch of four asked for
    clock.now = 0.1
    assert ledger.lease("t", RATES, 2, 4.0, 400.0).granted
    assert ledger.lease("other", RATES, 2, 4.0, 400.0).granted  # tenants have buckets of their own


def test_new_limits_for_a_tenant_start_from_full_buckets() -> None:
    ledger = RateLedger(Clock())
    ledger.lease("t", RATES, 1, 10.0, 10.0)
    assert not ledger.lease("t", RATES, 1, 1.0, 1.0).granted
    faster = TenantRates(20.0, 1_000.0, 64)
    assert ledger.lease("t", faster, 1, 1.0, 1.0).granted


def test_a_lease_covers_calls_until_spent_or_expired_and_drops_what_expired() -> None:
    lease = Lease()
    assert not lease.covers(1, 0.0)
    lease.add(Grant(2.0, 10.0, 0.0), now_s=0.0, ttl_s=1.0)
    assert lease.covers(5, 0.5)
    assert not lease.covers(11, 0.5)
    lease.spend(5)
    lease.spend(5)
    assert not lease.covers(0, 0.5)  # requests spent
    lease.add(Grant(3.0, 30.0, 0.0), now_s=0.6, ttl_s=1.0)
    assert lease.requests == 3.0
    assert lease.expires_at_s == 1.6
    assert not lease.covers(1, 1.6)
    lease.add(Grant(1.0, 1.0, 0.0), now_s=2.0, ttl_s=1.0)  # the expired remainder is not carried over
    assert (lease.requests, lease.items) == (1.0, 1.0)


def test_a_batch_is_lease_s_of_the_rate_but_never_less_than_the_call() -> None:
    assert batch_ask(RATES, 0.1, 2) == (1.0, 100.0)
    assert batch_ask(RATES, 0.5, 300) == (5.0, 500.0)
    assert batch_ask(RATES, 0.1, 200) == (1.0, 200.0)


def test_the_fallback_is_each_replicas_share_of_the_rate() -> None:
    limiter = fallback_limiter(RATES, replicas=2)
    assert limiter.requests.rate_per_s == 5.0
    assert limiter.items.rate_per_s == 500.0
    assert limiter.items.capacity >= RATES.max_items_per_call


async def _admitted(
    rates: TenantRates, replicas: int, seconds: float, offered_per_s: float, lease_s: float
) -> tuple[int, int]:
    """N replicas sharing one ledger, each offered calls at random times: (admitted, ledger asks)."""
    clock = Clock()
    ledger: Any = LocalClient(RateLedger(clock))
    limits = [ClusterRateLimits(lambda: ledger, lease_s, 1.0, replicas, clock) for _ in range(replicas)]
    rng = random.Random(7)
    arrivals = sorted((rng.uniform(0, seconds), rng.randrange(replicas)) for _ in range(int(offered_per_s * seconds)))
    admitted = 0
    for at_s, replica in arrivals:
        clock.now = at_s
        if await limits[replica].admit("t", rates, 1) == 0.0:
            admitted += 1
    return admitted, sum(limit.asks for limit in limits)


@pytest.mark.parametrize("replicas", [1, 2, 4])
@pytest.mark.parametrize("requests_per_s", [10.0, 100.0])
def test_replicas_together_stay_within_the_cluster_wide_bound(replicas: int, requests_per_s: float) -> None:
    rates = TenantRates(requests_per_s, 1e6, 64)
    seconds, lease_s, offered_per_s = 10.0, 0.1, 4 * requests_per_s
    admitted, asks = asyncio.run(_admitted(rates, replicas, seconds, offered_per_s, lease_s))
    burst = max(1.0, requests_per_s)
    batch = max(1.0, requests_per_s * lease_s)
    bound = requests_per_s * seconds + burst + replicas * batch  # docs/tenants.md#rate-limits
    assert admitted <= bound
    assert admitted >= requests_per_s * seconds * 0.9  # and the limit is not starved by the leases
    # Refusals are answered by the replica until the next batch is due: the ledger sees about one ask per batch.
    assert asks <= admitted / batch + 2 * replicas * seconds / lease_s


def test_one_ask_at_a_time_per_tenant_serves_the_calls_queued_behind_it() -> None:
    clock = Clock()
    ledger: Any = LocalClient(RateLedger(clock))
    limits = ClusterRateLimits(lambda: ledger, 1.0, 1.0, 1, clock)

    async def burst() -> list[float]:
        return await asyncio.gather(*(limits.admit("t", RATES, 1) for _ in range(10)))

    assert asyncio.run(burst()) == [0.0] * 10
    assert limits.asks == 1  # one batch of one second's rate covered all ten


class _DownLedger:
    async def call(self, *_args: Any, **_kwargs: Any) -> Grant:
        raise ConnectionError("actor restarting")


def test_an_unreachable_ledger_limits_each_replica_to_its_share_and_is_asked_again_later() -> None:
    clock = Clock()
    limits = ClusterRateLimits(lambda: _DownLedger(), 0.1, 1.0, 2, clock)  # type: ignore[arg-type, return-value]

    async def run() -> list[float]:
        return [await limits.admit("t", RATES, 1) for _ in range(8)]

    waits = asyncio.run(run())
    assert waits[:5] == [0.0] * 5  # a share of 5/s with one second of burst
    assert all(wait > 0 for wait in waits[5:])
    assert all(math.isfinite(wait) for wait in waits)
    assert limits.asks == 0
