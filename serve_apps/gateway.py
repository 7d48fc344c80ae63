"""Gateway core: routes each request with the cached control state and forwards it, failing over within budget.

`GatewayCore` holds no Ray types: the control plane (through a client) and the region backends come in through
narrow interfaces, so the whole HTTP surface is tested in-process against a real ControlPlane.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
import uuid
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, replace
from typing import Protocol

from batch.spec import BatchJobSpec
from batch.submit import RayJobState
from fleet.config import FleetConfig
from fleet.routing import RoutingMode
from policies.actors.client import Client
from policies.calibration import Calibration, load_calibration
from policies.control_api import ControlApi
from policies.control_state import ControlState, GatewayLoad
from router.admission import (
    AdmissionBound,
    BusyPace,
    PaceRatio,
    admission_bound,
    admits,
    budget_order,
    expected_pace,
    queue_wait_ms,
)
from router.routing import RegionState, RouteDecision, RouteRequest
from router.sticky import StickyRouter
from serve_apps.backends import BackendError, RegionalResult, RegionBackend
from serve_apps.region_health import Readiness, RegionHealth, probe_regions, region_readiness
from serve_apps.replica_metrics import GatewayMetrics, GatewayObserver

logger = logging.getLogger("gridshift.gateway")

MOVED_WINDOW_S = 5.0
"""Shifted work is reported as a rate over this many seconds."""


class BatchLauncher(Protocol):
    """Starts batch jobs in the cluster (as Ray Jobs), and lists them as the cluster knows them."""

    async def launch(self, spec: BatchJobSpec) -> None:
        """Validate the job (pipeline, input, output) and start it; GridshiftError names what is wrong."""
        ...

    async def ray_jobs(self) -> list[RayJobState]: ...


class NoRegionAvailable(Exception):
    """Every candidate failed or the budget ran out: a server-side failure (503), never the client's."""


class RegionsFull(NoRegionAvailable):
    """Every region that may serve the request is at its admission bound: answered at once (503, Retry-After)
    instead of after a long wait, so clients back off and accepted requests keep bounded latency."""

    retry_after_s = 1


@dataclass(frozen=True)
class _View:
    """What routing and admission read of one control state, built once per state (not per request)."""

    key: tuple[int, frozenset[str]]  # state version, regions this replica has marked down
    states: list[RegionState]
    stress: dict[str, int]
    headroom: dict[str, float]
    bounds: dict[str, AdmissionBound]
    # Per region, the calibrated wall time per tolerant item at the knobs in force, over the items served at once
    # (this gateway replica's share): the pace until the region's observed one (BusyPace) is known.
    calibrated_s_per_item: dict[str, float]


@dataclass(frozen=True)
class Served:
    """A forwarded request's answer and the routing that produced it."""

    result: RegionalResult
    decision: RouteDecision
    headroom: float
    state_version: int
    attempts: tuple[str, ...]
    full: tuple[str, ...] = ()  # regions passed over: at their admission bound, or their queue over the budget


class GatewayCore:
    """Routing and forwarding for one gateway replica."""

    def __init__(
        self,
        fleet: FleetConfig,
        rtt_ms: Mapping[str, Mapping[str, float]],
        control: Client[ControlApi],
        backends: Mapping[str, RegionBackend],
        *,
        monotonic_s: Callable[[], float] = time.monotonic,
        rng: random.Random | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        batch_launcher: BatchLauncher | None = None,
        warm_precisions: tuple[str, ...] = (),
    ) -> None:
        self.fleet = fleet
        self.rtt_ms = rtt_ms
        self.control = control
        self.backends = dict(backends)
        self.gateway_id = uuid.uuid4().hex[:12]
        self.health = RegionHealth(fleet.gateway.unhealthy_after_failures)
        # Served by another cluster over HTTP: probed while up too, since nothing else would notice it die.
        self.remote_regions = frozenset(region.name for region in fleet.regions if region.endpoint_url)
        self.in_flight: dict[str, int] = dict.fromkeys(fleet.region_names, 0)
        self.in_flight_items: dict[str, int] = dict.fromkeys(fleet.region_names, 0)
        self.pace: dict[str, BusyPace] = {name: BusyPace() for name in fleet.region_names}
        self.fleet_pace = PaceRatio()  # the prior for a region with no pace of its own yet
        self.calibration: Calibration = load_calibration(fleet.policy.calibration_file)
        self.served_by_region: dict[str, int] = dict.fromkeys(fleet.region_names, 0)
        self.metrics: GatewayObserver = GatewayMetrics()  # per-replica counters, exported by Ray
        self._moved: deque[tuple[float, str, int]] = deque()  # (monotonic s, origin, items) of shifted work
        self.state: ControlState | None = None
        self.last_sync_s: float | None = None
        self._router = StickyRouter(rtt_ms, fleet.routing)
        self._monotonic_s = monotonic_s
        self._rng = rng or random.Random()
        self._sleep = sleep
        self.batch_launcher = batch_launcher
        self._tasks: list[asyncio.Task[None]] = []
        self.warm_precisions = warm_precisions
        self._ready: Readiness | None = None
        self._view: _View | None = None

    # Control state ------------------------------------------------------------------------------------

    async def refresh(self) -> bool:
        """Report load and health, take any newer state. True when the state changed."""
        load = GatewayLoad(dict(self.in_flight), frozenset(self.health.down), self.moved_items_per_s())
        known = self.state.version if self.state else -1
        newer = await self.control.call(ControlApi.sync, self.gateway_id, load, known)
        self.last_sync_s = self._monotonic_s()
        if newer is None:
            return False
        if self.state is not None and newer.events != self.state.events:
            # Stickiness damps noise in headroom; a DR event posted or cleared is a deliberate change, so routing
            # re-decides from scratch (else an origin in the hysteresis band would keep traffic after a clear).
            self._router.forget()
        self.state = newer
        return True

    def moved_items_per_s(self) -> dict[str, float]:
        """Per origin, tolerant items this replica served elsewhere over the last few seconds, per second: the
        work geographic shifting took away from that origin's region (its power baseline counts it)."""
        horizon = self._monotonic_s() - MOVED_WINDOW_S
        while self._moved and self._moved[0][0] < horizon:
            self._moved.popleft()
        rates: dict[str, float] = {}
        for _, origin, items in self._moved:
            rates[origin] = rates.get(origin, 0.0) + items / MOVED_WINDOW_S
        return rates

    async def _refresh_forever(self) -> None:
        while True:
            try:
                await self.refresh()
            except asyncio.CancelledError:
                raise
            except Exception:  # the actor may be restarting: keep the last state and try again
                logger.warning("control state refresh failed; routing on the last state", exc_info=True)
            await asyncio.sleep(self.fleet.gateway.state_refresh_s)

    async def _probe_forever(self) -> None:
        while True:
            await asyncio.sleep(self.fleet.gateway.probe_interval_s)
            await self.probe_once()

    async def probe_once(self) -> None:
        """Probe every region marked down (a success brings it back) and every remote region, concurrently.

        A remote cluster that stops answering probes is marked down after `unhealthy_after_failures` of them, so
        routing leaves it before requests fail there; the control state learns it on the next sync. An in-cluster
        region needs no such probe: Serve health-checks its replicas and routes around dead ones.
        """
        targets = sorted((self.health.down | self.remote_regions) & self.backends.keys())
        await probe_regions(self.backends, self.health, targets, self.fleet.gateway.min_forward_timeout_s)

    def start(self) -> None:
        """Start the background refresh and probe loops (call from inside the serving event loop)."""
        if not self._tasks:
            self._tasks = [asyncio.create_task(self._refresh_forever()), asyncio.create_task(self._probe_forever())]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []
        for backend in self.backends.values():
            await backend.close()

    async def ready_state(self) -> ControlState:
        if self.state is None:
            await self.refresh()
        if self.state is None:  # pragma: no cover - the control plane always answers the first sync
            raise NoRegionAvailable("no control state yet")
        return self.state

    async def readiness(self, timeout_s: float = 2.0) -> Readiness:
        """Ready once every region has answered, warmed at every precision the policy may use, and a control state
        is in hand. Once ready, ready for good: a region failing later is failover's business, not a reason for a
        load balancer to take the whole gateway out."""
        if self._ready is not None:
            return replace(self._ready, state_version=None if self.state is None else self.state.version)
        if self.state is None:
            with contextlib.suppress(Exception):  # the control actor may still be starting: not ready yet
                await asyncio.wait_for(self.refresh(), timeout_s)
        names = [name for name in self.fleet.region_names if name in self.backends]
        checks = await asyncio.gather(
            *(region_readiness(self.backends[name], self.warm_precisions, timeout_s) for name in names)
        )
        regions = dict(zip(names, checks, strict=True))
        ready = self.state is not None and all(check.ready for check in checks)
        readiness = Readiness(ready, None if self.state is None else self.state.version, regions)
        if ready:
            self._ready = readiness
        return readiness

    # Routing and forwarding ---------------------------------------------------------------------------

    def _view_of(self, state: ControlState) -> _View:
        key = (state.version, frozenset(self.health.down))
        if self._view is not None and self._view.key == key:
            return self._view
        # This replica's own view of health counts at once; the control state catches up on the next sync.
        states = [s if s.name not in self.health.down else replace(s, healthy=False) for s in state.snapshot.states]
        gateway = self.fleet.gateway
        bounds, calibrated = {}, {}
        for region in self.fleet.regions:
            knobs = state.knobs[region.name]
            replicas = region.capacity_replicas if region.endpoint_url else self.fleet.serving.replicas_per_region
            bounds[region.name] = admission_bound(
                knobs.work_slots, replicas, gateway.replicas, gateway.admission_queue_factor
            )
            item_ms = self.calibration.cpu_ms_per_item(knobs.precision_for("tolerant"), knobs.work_slots)
            servers = replicas * self.fleet.serving.torch_threads / gateway.replicas
            calibrated[region.name] = queue_wait_ms(1, item_ms, servers) / 1000.0
        # A new view is the one place a knob change shows (a DR rung halving the batch, say): each region's learned
        # pace moves at once by the change in its calibrated cost, rather than over a few half-lives of answers.
        if self._view is not None:
            for name, seconds in calibrated.items():
                if seconds != self._view.calibrated_s_per_item[name]:
                    self.pace[name].rescale(seconds / self._view.calibrated_s_per_item[name])
        stress = {s.name: s.stress_level for s in states}
        self._view = _View(key, states, stress, {s.name: s.headroom for s in states}, bounds, calibrated)
        return self._view

    def queue_wait_s(self, region: str, view: _View) -> float:
        """How long work joining `region` now waits for the items this replica has in flight there: at the pace the
        region delivers while busy, as this replica observes it (router.admission.BusyPace), which counts the
        contention on its cores; until it has seen enough, at the calibrated cost scaled as the other regions' paces
        are (router.admission.PaceRatio)."""
        return self.in_flight_items[region] * self.seconds_per_item(region, view)

    def admission_paces(self, state: ControlState) -> dict[str, float]:
        """Per region, the seconds per item admission costs its queue at now (for operators: GET /v1/regions)."""
        view = self._view_of(state)
        return {name: self.seconds_per_item(name, view) for name in self.fleet.region_names}

    def seconds_per_item(self, region: str, view: _View) -> float:
        """The pace admission costs `region`'s queue at (router.admission.expected_pace)."""
        calibrated = view.calibrated_s_per_item[region]
        return expected_pace(self.pace[region].seconds_per_item(), calibrated, self.fleet_pace.ratio())

    def _try_order(
        self, request: RouteRequest, ranked: tuple[str, ...], view: _View
    ) -> tuple[tuple[str, ...], tuple[str, ...]]:
        """The ranked regions in the order to try, and those passed over because their queue would miss the budget
        (router.admission.budget_order). Real-time work keeps the ranking: it stays at its origin."""
        if request.mode is not RoutingMode.SHIFT:
            return ranked, ()
        row = self.rtt_ms.get(request.origin, {})
        avoid_level = self.fleet.routing.avoid_stress_level
        # The wait for the work ahead, not the request's own pass: that costs the same in every region, and an idle
        # region must always fit (costing its own items moved work off the router's choice at light load).
        fits = {
            name: row.get(name, 0.0) + 1000.0 * self.queue_wait_s(name, view) <= request.latency_budget_ms
            for name in ranked
        }
        return budget_order(ranked, fits, {name: view.stress[name] < avoid_level for name in ranked})

    def decide(
        self, request: RouteRequest, state: ControlState, draw: float | None = None, explain: bool = False
    ) -> RouteDecision:
        view = self._view_of(state)
        return self._router.decide(
            request,
            view.states,
            draw=self._rng.random() if draw is None else draw,
            explain=explain,
            plan_key=view.key,  # the ranking is computed once per state; each request draws over it
        )

    async def serve(self, request: RouteRequest, texts: list[str]) -> Served:
        state = await self.ready_state()
        view = self._view_of(state)
        decision = self.decide(request, state)
        gateway = self.fleet.gateway
        urgent = request.mode is RoutingMode.STAY
        avoid_level = self.fleet.routing.avoid_stress_level
        attempts: list[str] = []
        full: list[str] = []
        wan = gateway.wan_emulation
        row = self.rtt_ms.get(request.origin, {})
        started_s = self._monotonic_s()
        items = len(texts)
        order, passed = self._try_order(request, decision.ranked, view)
        # Regions in ranked order, tolerant work first where its queue fits the budget. A full region (at its
        # admission bound) is skipped, not waited on; a region that fails is left for the next. An attempt is never
        # abandoned while it works: it waits up to forward_timeout_s, which the bounded queues keep well above a
        # working region's answer time.
        for region in order:
            backend = self.backends.get(region)
            if backend is None:
                continue
            if full and view.stress[region] >= avoid_level and any(view.stress[f] < avoid_level for f in full):
                # A region without a grid emergency was merely full: rejecting (the client retries) beats
                # spilling into the one region the grid asked to shed. Only failures open an emergency region.
                continue
            if not admits(
                self.in_flight[region], view.bounds[region], urgent=urgent, realtime_reserve=gateway.realtime_reserve
            ) or (not urgent and self.queue_wait_s(region, view) > gateway.admission_max_wait_s):
                # Real-time work is bounded by count only (admitted first); tolerant work also by the time it waits.
                full.append(region)
                continue
            self.pace[region].started(self.in_flight[region])
            attempts.append(region)
            self.in_flight[region] += 1
            self.in_flight_items[region] += items
            try:
                if wan:
                    await self._sleep(row.get(region, 0.0) / 1000.0)  # the real round trip, emulated on one machine
                result = await backend.embed(texts, gateway.forward_timeout_s, request.workload_class)
            except BackendError as error:
                self.pace[region].failed()
                self.health.failed(region)
                logger.warning("forward to %s failed (%s); trying the next candidate", region, error)
                self.metrics.failed_over(region)
                continue
            finally:
                self.in_flight[region] -= 1
                self.in_flight_items[region] -= items
            self.health.succeeded(region)
            busy_s = self.pace[region].answered(self._monotonic_s(), items, self.in_flight[region])
            if busy_s is not None:
                self.fleet_pace.add(items, busy_s, items * view.calibrated_s_per_item[region])
            self.served_by_region[region] += 1
            if request.mode is RoutingMode.SHIFT and region != request.origin:
                self._moved.append((self._monotonic_s(), request.origin, len(texts)))
                self.metrics.shifted(request.origin, region, len(texts))
            self.metrics.served(region, decision, request.workload_class, self._monotonic_s() - started_s)
            skipped = (*passed, *(name for name in full if name not in passed))
            return Served(result, decision, view.headroom[region], state.version, tuple(attempts), skipped)
        self.metrics.unserved(request.origin, request.workload_class)
        if full:
            raise RegionsFull(f"every region that can serve the request is full ({', '.join(full)}); retry shortly")
        raise NoRegionAvailable(f"no region could serve the request (tried {attempts or 'none'})")

    def route_request(self, origin: str, workload_class: str, budget_ms: float | None) -> RouteRequest:
        """Build a request from validated hints, applying the class's default budget."""
        workload = self.fleet.workload_classes[workload_class]
        budget = budget_ms if budget_ms is not None else workload.latency_budget_ms
        if budget is None or workload.mode is RoutingMode.DEFER:
            raise ValueError(f"class {workload_class!r} is deferred (batch): submit it as a batch pipeline")
        return RouteRequest(origin, workload_class, workload.mode, float(budget))
