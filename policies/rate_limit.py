"""Per-tenant rate limits: two token buckets (requests and items per second) with the wait a refusal implies.

Pure: the caller passes the time in (a monotonic clock), so the limiter is tested without sleeping.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field


@dataclass
class TokenBucket:
    """`rate_per_s` tokens a second, holding at most `capacity` (the burst)."""

    rate_per_s: float
    capacity: float
    tokens: float = field(default=-1.0)
    at_s: float = field(default=-math.inf)

    def __post_init__(self) -> None:
        if self.rate_per_s <= 0 or self.capacity <= 0:
            raise ValueError(f"rate and capacity must be positive, got {self.rate_per_s} and {self.capacity}")
        if self.tokens < 0:
            self.tokens = self.capacity

    def _refill(self, now_s: float) -> None:
        if now_s > self.at_s:
            elapsed = now_s - self.at_s if math.isfinite(self.at_s) else math.inf
            self.tokens = min(self.capacity, self.tokens + elapsed * self.rate_per_s)
            self.at_s = now_s

    def wait_s(self, cost: float, now_s: float) -> float:
        """Seconds until `cost` tokens are available (0: now), without taking them."""
        self._refill(now_s)
        return max(0.0, (min(cost, self.capacity) - self.tokens) / self.rate_per_s)

    def take(self, cost: float) -> None:
        self.tokens -= min(cost, self.capacity)


@dataclass
class TenantLimiter:
    """A tenant's two buckets: a call passes only when both have room; refused calls take nothing."""

    requests: TokenBucket
    items: TokenBucket

    @classmethod
    def for_rates(cls, requests_per_s: float, items_per_s: float, max_items_per_call: int) -> TenantLimiter:
        # One second of burst, but never less than one call, or than the largest call the gateway accepts.
        return cls(
            TokenBucket(requests_per_s, max(1.0, requests_per_s)),
            TokenBucket(items_per_s, max(items_per_s, float(max_items_per_call))),
        )

    def admit(self, items: int, now_s: float) -> float:
        """0 and the call is counted, or the seconds to wait before it would pass (nothing counted)."""
        wait = max(self.requests.wait_s(1.0, now_s), self.items.wait_s(float(items), now_s))
        if wait > 0:
            return wait
        self.requests.take(1.0)
        self.items.take(float(items))
        return 0.0
