"""Tier-3 inference deferral without Ray: the pure decision, the gateway's bounded queue over a real control plane
(held while every region is in grid emergency, served when one clears or at the limit, refused when full), and the
answer's headers over HTTP."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest
from fastapi.testclient import TestClient

from fleet.events import DREvent
from fleet.routing import RoutingMode, WorkloadClassConfig
from policies.control import ControlPlane
from policies.deferral import DeferAction, defer_action, defer_limit_s, needs_deferral, retry_after_s
from policies.tiers import tier_route
from serve_apps.deferral import DeferralFull, DeferralQueue, Deferred
from serve_apps.gateway import GatewayCore
from tests.unit.gateway_app import REGIONS, gateway_app

TOLERANT = WorkloadClassConfig(mode=RoutingMode.SHIFT, latency_budget_ms=150.0)
REALTIME = WorkloadClassConfig(mode=RoutingMode.STAY, latency_budget_ms=50.0)
EMERGENCY = {"a": 3, "b": 1}


def test_only_a_deferrable_tier_routed_into_an_emergency_waits() -> None:
    tier3, tier2 = tier_route(3, "tolerant", TOLERANT, "firm"), tier_route(2, "tolerant", TOLERANT, "firm")
    assert needs_deferral(tier3, "a", EMERGENCY, avoid_level=3)
    assert not needs_deferral(tier3, "b", EMERGENCY, avoid_level=3)
    assert not needs_deferral(tier2, "a", EMERGENCY, avoid_level=3)
    assert not needs_deferral(None, "a", EMERGENCY, avoid_level=3)
    # A real-time class is never held, whatever the tier: the stricter of class and tier decides.
    assert not needs_deferral(tier_route(3, "realtime", REALTIME, "firm"), "a", EMERGENCY, avoid_level=3)


def test_each_check_serves_waits_serves_at_the_limit_or_refuses_a_full_queue() -> None:
    def act(needs: bool, waited_s: float, queued: int = 0) -> DeferAction:
        return defer_action(needs=needs, waited_s=waited_s, limit_s=30.0, queued=queued, queue_max=2)

    assert act(False, 0.0, queued=5) is DeferAction.SERVE
    assert act(True, 0.0) is DeferAction.WAIT
    assert act(True, 0.0, queued=2) is DeferAction.REFUSE  # the bound applies on arrival
    assert act(True, 10.0, queued=2) is DeferAction.WAIT  # a call already held keeps its place
    assert act(True, 30.0) is DeferAction.SERVE_AT_LIMIT
    assert act(False, 12.0) is DeferAction.SERVE
    assert defer_action(needs=True, waited_s=0.0, limit_s=0.0, queued=0, queue_max=2) is DeferAction.SERVE_AT_LIMIT


def test_a_request_may_lower_the_limit_never_raise_it() -> None:
    assert defer_limit_s(None, 30.0) == 30.0
    assert defer_limit_s(" 2.5 ", 30.0) == 2.5
    assert defer_limit_s("600", 30.0) == 30.0
    for bad in ("soon", "-1", "nan", "inf"):
        with pytest.raises(ValueError, match="X-Gridshift-Defer-Max-S"):
            defer_limit_s(bad, 30.0)
    assert retry_after_s(0.0) == 1
    assert retry_after_s(2.1) == 3


def _emergency_everywhere(plane: ControlPlane) -> list[str]:
    return [
        plane.post_event(
            DREvent(region=region, level=3, start="2022-09-07T00:00:00Z", end="2022-09-07T04:00:00Z")
        ).event_id
        for region in REGIONS
    ]


class SteppedTime:
    """A monotonic clock advanced by the queue's own sleeps, with a hook after each (to change the grid)."""

    def __init__(self, core: GatewayCore, on_sleep: Callable[[int], object] = lambda _n: None) -> None:
        self.now_s = 0.0
        self.sleeps = 0
        self._core = core
        self._on_sleep = on_sleep

    def monotonic_s(self) -> float:
        return self.now_s

    async def sleep(self, seconds: float) -> None:
        self.now_s += seconds
        self.sleeps += 1
        self._on_sleep(self.sleeps)
        await self._core.refresh()


@pytest.fixture
def core() -> GatewayCore:
    return gateway_app()[1]


async def _hold(core: GatewayCore, queue: DeferralQueue, tier: int, limit_s: float) -> Deferred:
    await core.refresh()
    request = core.route_request("us-west-1", "tolerant", None)
    return await queue.hold(core, tier_route(tier, "tolerant", TOLERANT, "firm"), request, limit_s)


def test_a_tier_3_call_waits_out_an_emergency_and_is_served_when_a_region_clears(core: GatewayCore) -> None:
    plane: ControlPlane = core.control.target  # type: ignore[attr-defined]
    events = _emergency_everywhere(plane)
    time = SteppedTime(core, lambda n: n == 10 and plane.clear_event(events[0]))
    queue = DeferralQueue(core.fleet, time.monotonic_s, time.sleep)
    held = asyncio.run(_hold(core, queue, 3, 30.0))
    assert held.outcome is DeferAction.SERVE
    assert held.waited_s == pytest.approx(10 * 0.05)
    assert held.headers()["X-Gridshift-Defer-Outcome"] == "region_qualified"
    assert queue.held == 0
    # Tier 2 in the same emergency is served at once (moved or not, never held).
    plane.post_event(DREvent(region=REGIONS[0], level=3, start="2022-09-07T00:00:00Z", end="2022-09-07T04:00:00Z"))
    assert asyncio.run(_hold(core, queue, 2, 30.0)).outcome is None


def test_at_its_limit_a_held_call_is_served_anyway_and_a_full_queue_refuses_at_once(core: GatewayCore) -> None:
    plane: ControlPlane = core.control.target  # type: ignore[attr-defined]
    _emergency_everywhere(plane)
    time = SteppedTime(core)
    queue = DeferralQueue(core.fleet, time.monotonic_s, time.sleep)
    held = asyncio.run(_hold(core, queue, 3, 0.5))
    assert held.outcome is DeferAction.SERVE_AT_LIMIT
    assert held.waited_s == pytest.approx(0.5)
    queue.held = core.fleet.tenants.defer_queue_max
    with pytest.raises(DeferralFull) as full:
        asyncio.run(_hold(core, queue, 3, 2.5))
    assert full.value.retry_after_s == 3


def test_the_answer_says_it_was_deferred_and_for_how_long() -> None:
    app, core = gateway_app()
    plane: ControlPlane = core.control.target  # type: ignore[attr-defined]
    body = {"model": "m", "input": ["a"]}
    with TestClient(app) as client:
        _emergency_everywhere(plane)
        assert client.portal is not None
        client.portal.call(core.refresh)  # route on the emergency now, not at the next refresh period
        headers = {"X-Gridshift-Origin": "us-west-1", "X-Gridshift-Flex-Tier": "3"}
        bad = client.post("/v1/embeddings", json=body, headers={**headers, "X-Gridshift-Defer-Max-S": "soon"})
        assert bad.status_code == 422
        assert bad.json()["error"]["param"] == "X-Gridshift-Defer-Max-S"
        answer = client.post("/v1/embeddings", json=body, headers={**headers, "X-Gridshift-Defer-Max-S": "0.2"})
        assert answer.status_code == 200, answer.text
        assert answer.headers["X-Gridshift-Defer-Outcome"] == "limit_reached"
        assert int(answer.headers["X-Gridshift-Deferred-Ms"]) >= 200
        assert "deferred" in answer.headers["X-Gridshift-Flex-Effects"].split(",")
        firm = client.post("/v1/embeddings", json=body, headers={**headers, "X-Gridshift-Flex-Tier": "2"})
        assert "X-Gridshift-Defer-Outcome" not in firm.headers
