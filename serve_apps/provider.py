"""The provider surface of one gateway replica: tenants' tiers, rate limits, usage records and the price in force.

Holds the tenants store (opened on first use, or at start when auth is required), the key verifier, the usage
recorder, each tenant's rate limiter and the forecast prices of the current grid hour. The routes are
serve_apps/provider_api.py; the decisions (tiers, prices, limits) are pure, in policies/.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from fleet.config import FleetConfig
from fleet.tenants import AuthMode
from grid.context import FleetContext, load_context
from policies.actors.client import Client
from policies.control_api import ControlApi
from policies.job_usage import JobUsage
from policies.plan import HOUR_S
from policies.pricing import HourConditions, TierPrice, forecast_hours, tier_prices
from policies.rate_lease import TenantRates
from policies.tiers import TierRoute, tier_effects, tier_route
from router.routing import RouteRequest
from serve_apps.api_schema import ApiError
from serve_apps.gateway import GatewayCore, Served
from serve_apps.tenant_auth import Caller, TenantAccess
from serve_apps.tenant_limits import ClusterRateLimits, ledger_client
from tenants.store import TenantStore, UsageRecord, database_url
from tenants.usage import UsageRecorder
from tenants.verify import KeyVerifier

logger = logging.getLogger("gridshift.provider")

JOB_USAGE_POLL_S = 2.0
"""How often a replica asks the control plane for finished tenant jobs' usage (each is recorded once, by id)."""


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
        # Cluster-wide: every replica leases its tenants' tokens from one ledger (serve_apps/tenant_limits.py).
        self.limits = ClusterRateLimits(
            lambda: ledger_client(fleet),
            self.config.rate_lease_s,
            self.config.rate_lease_ttl_s,
            fleet.gateway.replicas,
            monotonic_s,
        )
        self._hour_prices: tuple[int, dict[str, HourConditions]] | None = None
        self._hour_tiers: tuple[int, dict[str, tuple[TierPrice, ...]]] | None = None  # the hour's prices, per region
        self._jobs_recorded: set[str] = set()  # request ids of job usage this replica has handed to the recorder
        self._job_task: asyncio.Task[None] | None = None

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

    async def start(self, control: Client[ControlApi] | None = None) -> None:
        """With auth required the database must answer now: a clear error at start beats 503s later. With a control
        client, finished tenant jobs' usage is collected from it and recorded."""
        if self.config.auth is AuthMode.REQUIRED:
            await asyncio.to_thread(self.store)
        self.recorder.start()
        if control is not None and self._job_task is None:
            self._job_task = asyncio.create_task(self._collect_jobs_forever(control))

    async def stop(self) -> None:
        if self._job_task is not None:
            self._job_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._job_task
            self._job_task = None
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

    async def admit(self, caller: Caller, items: int) -> None:
        """429 with Retry-After past the tenant's rate limits; 503 when usage could not be recorded."""
        tenant = caller.tenant
        if tenant is None:
            return
        if self.recorder.full:
            raise ApiError(
                503, "usage database unreachable and the usage buffer is full; retry later", kind="service_unavailable"
            )
        rates = TenantRates(
            tenant.requests_per_s or self.config.requests_per_s,
            tenant.items_per_s or self.config.items_per_s,
            self.fleet.gateway.max_input_items,
        )
        wait_s = await self.limits.admit(tenant.tenant_id, rates, items)
        if wait_s > 0:
            raise RateLimited(wait_s)

    async def served(
        self,
        core: GatewayCore,
        caller: Caller,
        route: TieredRoute,
        served: Served,
        items: int,
        request_id: str | None,
        deferred: bool = False,
    ) -> dict[str, str]:
        """Record the served call's usage (tenants only) and return its tier headers; `deferred`: it was held in the
        tier-3 deferral queue (serve_apps/deferral.py) before being served."""
        region, origin = served.result.region, route.request.origin
        degraded = served.result.precision != self.fleet.serving.knobs.precision.value
        effects = tier_effects(origin, region, degraded, deferred)
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
        tiers = self._tier_table(hour_s, prices)
        charged = tiers[region][route.tier.tier].usd_per_1k_items * items / 1000
        firm = tiers[origin][0].usd_per_1k_items * items / 1000
        kwh = self.fleet.pricing.kwh_per_1k_items * items / 1000
        request_id = request_id or os.urandom(16).hex()  # a uuid4's randomness without its object
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
                deferred=deferred,
            )
        )
        headers["X-Gridshift-Price-Usd"] = f"{charged:.6f}"
        headers["X-Request-Id"] = request_id
        return headers

    # Jobs' usage --------------------------------------------------------------------------------------------------

    async def collect_jobs(self, control: Client[ControlApi]) -> int:
        """Hand finished tenant jobs' usage to the recorder, once per replica; the database's insert skips an id
        already there, so every replica collecting the same job still records it once. Returns how many were new."""
        finished: list[JobUsage] = await control.call(ControlApi.job_usage)
        new = [usage for usage in finished if usage.request_id not in self._jobs_recorded]
        for usage in new:
            self.recorder.add(job_record(usage, self._time_s()))
            self._jobs_recorded.add(usage.request_id)
        return len(new)

    async def _collect_jobs_forever(self, control: Client[ControlApi]) -> None:
        while True:
            try:
                await self.collect_jobs(control)
            except asyncio.CancelledError:
                raise
            except Exception:  # the control actor may be restarting: its finished jobs wait there for the next try
                logger.warning("job usage not collected from the control plane; retrying", exc_info=True)
            await asyncio.sleep(JOB_USAGE_POLL_S)

    async def hour_prices(self, hour_s: int) -> dict[str, HourConditions]:
        """Every region's forecast conditions for the grid hour (issued at its start), computed once per hour, off
        the event loop (the first call may load the trace)."""
        if self._hour_prices is None or self._hour_prices[0] != hour_s:
            self._hour_prices = (hour_s, await asyncio.to_thread(self._forecast_hour, hour_s))
        return self._hour_prices[1]

    def _tier_table(self, hour_s: int, prices: dict[str, HourConditions]) -> dict[str, tuple[TierPrice, ...]]:
        """Every region's tier prices for the hour, computed once per hour rather than twice per request."""
        if self._hour_tiers is None or self._hour_tiers[0] != hour_s:
            self._hour_tiers = (hour_s, {name: tier_prices(hour, self.fleet.pricing) for name, hour in prices.items()})
        return self._hour_tiers[1]

    def _forecast_hour(self, hour_s: int) -> dict[str, HourConditions]:
        trace = self.context().trace
        return {name: forecast_hours(trace, self.fleet, name, hour_s, 1)[0] for name in self.fleet.region_names}


def job_record(usage: JobUsage, at_s: float) -> UsageRecord:
    """A finished job's usage as a usage row: items are its rows or steps; it is not moved (a job runs in its
    region); degraded when the grid shrank it or lowered its precision; deferred when the grid paused it."""
    return UsageRecord(
        request_id=usage.request_id,
        tenant_id=usage.tenant_id,
        at_s=at_s,
        grid_hour_s=usage.grid_hour_s,
        kind=usage.kind,
        region=usage.region,
        origin=usage.region,
        tier=usage.tier,
        items=usage.items,
        kwh=usage.kwh,
        gco2=usage.gco2,
        usd=usage.usd,
        earned_usd=usage.earned_usd,
        moved=False,
        degraded=bool({"shrunk", "degraded"} & set(usage.effects)),
        deferred="deferred" in usage.effects,
        job_hours=usage.job_hours,
    )


class RateLimited(ApiError):
    """429: the tenant is over its request or item rate; retry after `retry_after_s`."""

    def __init__(self, wait_s: float) -> None:
        super().__init__(429, f"rate limit exceeded: retry in {wait_s:.2f} s", kind="rate_limit_error")
        self.retry_after_s = max(1, math.ceil(wait_s))
