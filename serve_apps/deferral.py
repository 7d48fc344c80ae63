"""The gateway's tier-3 deferral queue: holds a call while routing could only serve it from a region in grid
emergency, re-checking as the control state changes, up to the call's stated limit (the decisions are pure, in
policies/deferral.py; docs/tenants.md#tier-3-deferral).

One queue per gateway replica, bounded (`tenants.defer_queue_max`): a held call is an open connection and a
coroutine, nothing more, and a call that would wait past the bound is refused at once.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from fleet.config import FleetConfig
from policies.control_state import ControlState
from policies.deferral import DeferAction, defer_action, needs_deferral, retry_after_s
from policies.tiers import TierRoute
from router.routing import RouteRequest
from serve_apps.gateway import GatewayCore

RECHECK_S = 0.05
"""How often a held call looks for a newer control state (the gateway refreshes it every state_refresh_s)."""


class DeferralFull(Exception):
    """The call would wait but the queue is at its bound: answered 503 with Retry-After at once."""

    def __init__(self, queued: int, retry_after: int) -> None:
        super().__init__(
            f"every region that could serve this tier-3 call is in grid emergency and {queued} call(s) already "
            f"wait; retry in {retry_after} s"
        )
        self.retry_after_s = retry_after


@dataclass(frozen=True)
class Deferred:
    """How long a call was held, and why it stopped waiting (None: it was not held)."""

    waited_s: float
    outcome: DeferAction | None

    def headers(self) -> dict[str, str]:
        if self.outcome is None:
            return {}
        outcome = "region_qualified" if self.outcome is DeferAction.SERVE else str(self.outcome)
        return {"X-Gridshift-Deferred-Ms": str(round(self.waited_s * 1000)), "X-Gridshift-Defer-Outcome": outcome}


NOT_HELD = Deferred(0.0, None)


class DeferralQueue:
    """Holds tier-3 calls for one gateway replica."""

    def __init__(
        self,
        fleet: FleetConfig,
        monotonic_s: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._avoid_level = fleet.routing.avoid_stress_level
        self._queue_max = fleet.tenants.defer_queue_max
        self._monotonic_s = monotonic_s
        self._sleep = sleep
        self.held = 0
        self.deferred_total = 0  # calls held since start (operators' figure)

    def _needs(self, core: GatewayCore, tier: TierRoute | None, request: RouteRequest, state: ControlState) -> bool:
        decision = core.decide(request, state)
        stress = {region.name: region.stress_level for region in state.snapshot.states}
        return needs_deferral(tier, decision.region, stress, self._avoid_level)

    async def hold(self, core: GatewayCore, tier: TierRoute | None, request: RouteRequest, limit_s: float) -> Deferred:
        """Wait while the call should, up to `limit_s`; DeferralFull when it would wait and the queue is full."""
        if tier is None or not tier.may_defer:
            return NOT_HELD
        state = await core.ready_state()
        action = defer_action(
            needs=self._needs(core, tier, request, state),
            waited_s=0.0,
            limit_s=limit_s,
            queued=self.held,
            queue_max=self._queue_max,
        )
        if action is DeferAction.REFUSE:
            raise DeferralFull(self.held, retry_after_s(limit_s))
        if action is not DeferAction.WAIT:
            return NOT_HELD
        started_s = self._monotonic_s()
        self.held += 1
        self.deferred_total += 1
        waited_s = 0.0
        try:
            while True:
                await self._sleep(min(RECHECK_S, max(limit_s - waited_s, 0.0)))  # never past the limit
                waited_s = self._monotonic_s() - started_s
                if core.state is not None and core.state.version != state.version:
                    state = core.state  # only a new control state can change the answer
                    needs = self._needs(core, tier, request, state)
                else:
                    needs = True
                action = defer_action(
                    needs=needs, waited_s=waited_s, limit_s=limit_s, queued=self.held, queue_max=self._queue_max
                )
                if action is DeferAction.SERVE:
                    return Deferred(waited_s, DeferAction.SERVE)
                if action is DeferAction.SERVE_AT_LIMIT:
                    return Deferred(waited_s, action)
        finally:
            self.held -= 1
