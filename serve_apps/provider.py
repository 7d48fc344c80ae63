"""The provider surface of one gateway replica: tenants' tiers, rate limits, usage records and the price in force.

Holds the tenants store (opened on first use, or at start when auth is required), the key verifier, the usage
recorder, each tenant's rate limiter and the forecast prices of the current grid hour. The routes are
serve_apps/provider_api.py; the decisions (tiers, prices, limits) are pure, in policies/.
"""

from __future__ import annotations

import asyncio
import logging
import math
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from fleet.config import FleetConfig
from fleet.tenants import AuthMode
from grid.context import FleetContext, load_context
from policies.plan import HOUR_S
from policies.pricing import HourConditions, forecast_hours, tier_prices
from policies.rate_limit import TenantLimiter
from policies.tiers import TierRoute, tier_effects, tier_route
from router.routing import RouteRequest
from serve_apps.api_schema import ApiError
from serve_apps.gateway import GatewayCore, Served
from serve_apps.tenant_auth import Caller, TenantAccess
from tenants.store import TenantStore, UsageRecord, database_url
from tenants.usage import UsageRecorder
from tenants.verify import KeyVerifier

logger = logging.getLogger("gridshift.provider")


@dataclass(frozen=True)
class TieredRoute:
    """A request as routed under its caller's tier (tier None: no tier asked, routed as always)."""

    request: RouteRequest
    tier: TierRoute | None


class Provider:
    """Tenants, tiers, limits, usage and prices for one gateway replica."""

    def __init__(
        self,
        fleet: FleetConfig,
        context: FleetContext | None = None,
        store: TenantStore | None = None,
        *,
        time_s: Callable[[], float] = time.time,
        monotonic_s: Callable[[], float] = time.monotonic,
    ) -> None:
        self.fleet = fleet
        self.config = fleet.tenants
        self._context = context
        self._store = store
        self._owns_store = store is None  # a store passed in is its owner's to close
        self._store_lock = threading.Lock()  # opened from worker threads: once
        self._time_s = time_s
        self._monotonic_s = monotonic_s
        self.verifier = KeyVerifier(self.store, self.config.key_cache_s, monotonic_s)
        self.access = TenantAccess(self.config, self.verifier)
        self.recorder = UsageRecorder(self, self.config.usage_flush_s, self.config.usage_buffer_max)
        self._limiters: dict[str, TenantLimiter] = {}
        self._hour_prices: tuple[int, dict[str, HourConditions]] | None = None

    # Resources, opened when first needed -------------------------------------------------------------------

    def store(self) -> TenantStore:
        with self._store_lock:
            if self._store is None:
                self._store = TenantStore.open(database_url(self.config), self._time_s)
            return self._store

    def context(self) -> FleetContext:
        if self._context is None:
            self._context = load_context(self.fleet)
        return self._context

    def record_usage(self, records: Sequence[UsageRecord]) -> None:  # UsageSink: through the store opened on demand
        self.store().record_usage(records)

    async def start(self) -> None:
        """With auth required the database must answer now: a clear error at start beats 503s later."""
        if self.config.auth is AuthMode.REQUIRED:
            await asyncio.to_thread(self.store)
        self.recorder.start()

    async def stop(self) -> None:
        await self.recorder.stop()
        if self._store is not None and self._owns_store:
            self._store.close()
            self._store = None

    # Serving a tenant's request ------------------------------------------------------------------------------

    def route(
        self, core: GatewayCore, caller: Caller, origin: str, workload_class: str, budget_ms: float | None
    ) -> TieredRoute:
        request = core.route_request(origin, workload_class, budget_ms)
        if caller.tier is None:
            return TieredRoute(request, None)
        tier = tier_route(
            caller.tier, workload_class, self.fleet.workload_classes[workload_class], self.config.firm_class
        )
        return TieredRoute(RouteRequest(origin, tier.serve_as, tier.mode, request.latency_budget_ms), tier)

    def admit(self, caller: Caller, items: int) -> None:
        """429 with Retry-After past the tenant's rate limits; 503 when usage could not be recorded."""
        tenant = caller.tenant
        if tenant is None:
            return
        if self.recorder.full:
            raise ApiError(
                503, "usage database unreachable and the usage buffer is full; retry later", kind="service_unavailable"
            )
        limiter = self._limiters.get(tenant.tenant_id)
        if limiter is None:
            limiter = TenantLimiter.for_rates(
                tenant.requests_per_s or self.config.requests_per_s,
                tenant.items_per_s or self.config.items_per_s,
                self.fleet.gateway.max_input_items,
            )
            self._limiters[tenant.tenant_id] = limiter
        wait_s = limiter.admit(items, self._monotonic_s())
        if wait_s > 0:
            raise RateLimited(wait_s)

    async def served(
        self, core: GatewayCore, caller: Caller, route: TieredRoute, served: Served, items: int, request_id: str | None
    ) -> dict[str, str]:
        """Record the served call's usage (tenants only) and return its tier headers."""
        region, origin = served.result.region, route.request.origin
        degraded = served.result.precision != self.fleet.serving.knobs.precision.value
        effects = tier_effects(origin, region, degraded)
        headers: dict[str, str] = {}
        if route.tier is not None:
            headers["X-Gridshift-Flex-Tier"] = str(route.tier.tier)
            headers["X-Gridshift-Flex-Effects"] = ",".join(effects) or "none"
        if caller.tenant is None or route.tier is None:
            return headers
        # The grid hour is the control clock's (trace time in a replay), as of the state the call was routed on.
        grid_at_s = int(core.state.snapshot.at_s) if core.state is not None else int(self._time_s())
        hour_s = grid_at_s - grid_at_s % HOUR_S
        prices = await self.hour_prices(hour_s)
        charged = tier_prices(prices[region], self.fleet.pricing)[route.tier.tier].usd_per_1k_items * items / 1000
        firm = tier_prices(prices[origin], self.fleet.pricing)[0].usd_per_1k_items * items / 1000
        kwh = self.fleet.pricing.kwh_per_1k_items * items / 1000
        request_id = request_id or uuid.uuid4().hex
        self.recorder.add(
            UsageRecord(
                request_id=request_id,
                tenant_id=caller.tenant.tenant_id,
                at_s=self._time_s(),
                grid_hour_s=hour_s,
                kind="inference",
                region=region,
                origin=origin,
                tier=route.tier.tier,
                items=items,
                kwh=kwh,
                gco2=kwh * prices[region].carbon_g_per_kwh,
                usd=charged,
                earned_usd=firm - charged,
                moved="moved" in effects,
                degraded=degraded,
            )
        )
        headers["X-Gridshift-Price-Usd"] = f"{charged:.6f}"
        headers["X-Request-Id"] = request_id
        return headers

    async def hour_prices(self, hour_s: int) -> dict[str, HourConditions]:
        """Every region's forecast conditions for the grid hour (issued at its start), computed once per hour, off
        the event loop (the first call may load the trace)."""
        if self._hour_prices is None or self._hour_prices[0] != hour_s:
            self._hour_prices = (hour_s, await asyncio.to_thread(self._forecast_hour, hour_s))
        return self._hour_prices[1]

    def _forecast_hour(self, hour_s: int) -> dict[str, HourConditions]:
        trace = self.context().trace
        return {name: forecast_hours(trace, self.fleet, name, hour_s, 1)[0] for name in self.fleet.region_names}


class RateLimited(ApiError):
    """429: the tenant is over its request or item rate; retry after `retry_after_s`."""

    def __init__(self, wait_s: float) -> None:
        super().__init__(429, f"rate limit exceeded: retry in {wait_s:.2f} s", kind="rate_limit_error")
        self.retry_after_s = max(1, math.ceil(wait_s))
