"""The OpenADR actor: runs the fleet's VEN (openadr) in the cluster, so a utility's VTN can dispatch it.

Named `gridshift-openadr`, detached, restarted by Ray if it dies (the VEN re-registers idempotently and re-reads
the VTN's events, which it maps to the same instruction ids, so a restart changes nothing). It drives the fleet
through the control actor (DR events, import limits, price and GHG signals) and reports the policy's power
figures back to the VTN. Started by the gateway deployment when the fleet config has an `openadr` section.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from ray.actor import ActorHandle

from fleet.config import FleetConfig
from fleet.loaders import parse_fleet
from fleet.sources import TraceSourceConfig
from openadr.ven import VEN
from policies.actors.control import control_client
from policies.actors.openadr_port import ControlFleetPort
from policies.actors.registry import OPENADR_ACTOR_NAME, get_or_create_fleet_actor
from policies.control_api import ControlApi

STATUS_PUSH_S = 1.0
"""How often the VEN's status is pushed to the control plane (for GET /v1/openadr/status)."""

logger = logging.getLogger("gridshift.openadr")


class ControlClock:
    """The control plane's clock, followed locally: one call to learn where it is, then the monotonic clock times
    its speed-up. The VEN stamps DR events with it, so they land on the fleet's timeline (trace time under replay)."""

    def __init__(self, control_now_s: float, speedup: float, monotonic_s: Callable[[], float] = time.monotonic) -> None:
        self._origin_s = control_now_s
        self._speedup = speedup
        self._monotonic_s = monotonic_s
        self._started = monotonic_s()

    def now_s(self) -> float:
        return self._origin_s + (self._monotonic_s() - self._started) * self._speedup


class OpenADRActor:
    """Runs the VEN on its own event loop thread; `status()` answers from the actor's thread meanwhile."""

    def __init__(self, fleet_data: dict[str, Any]) -> None:
        self._fleet = parse_fleet(fleet_data, source="openadr actor fleet")
        if self._fleet.openadr is None:
            raise ValueError("the fleet has no openadr section: there is no VEN to run")
        self._control = control_client(self._fleet)
        source = self._fleet.signal_source
        speedup = source.speedup if isinstance(source, TraceSourceConfig) else 1.0
        self._clock = ControlClock(self._control.call_sync(ControlApi.clock_now_s), speedup)
        self._loop = asyncio.new_event_loop()
        self._stop: asyncio.Event | None = None
        self._ven: VEN | None = None
        self._thread = threading.Thread(target=self._run, name="gridshift-openadr", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.run_until_complete(self._main())

    async def _main(self) -> None:
        self._stop = asyncio.Event()
        port = ControlFleetPort(self._control, self._clock)
        async with VEN.for_fleet(self._fleet, port, self._clock) as ven:
            self._ven = ven
            await asyncio.gather(ven.run(self._stop), self._push_status(ven))

    async def _push_status(self, ven: VEN) -> None:
        stop = self._stop
        while stop is not None and not stop.is_set():
            try:
                await self._control.call(
                    ControlApi.set_openadr_status, ven.status().model_dump(mode="json", by_alias=True)
                )
            except Exception as error:  # the control actor may be restarting: the next push catches up
                logger.warning("openadr: status push failed: %s", error)
            try:
                await asyncio.wait_for(stop.wait(), STATUS_PUSH_S)
            except TimeoutError:
                continue

    def status(self) -> dict[str, object] | None:
        ven = self._ven
        if ven is None:
            return None
        future = asyncio.run_coroutine_threadsafe(_status_json(ven), self._loop)
        return future.result(timeout=5.0)

    def stop(self) -> None:
        stop = self._stop
        if stop is not None:
            self._loop.call_soon_threadsafe(stop.set)
        self._thread.join(timeout=10.0)


async def _status_json(ven: VEN) -> dict[str, object]:
    return ven.status().model_dump(mode="json", by_alias=True)


def get_or_create_openadr_actor(fleet: FleetConfig) -> ActorHandle[OpenADRActor]:
    """The fleet's VEN actor, started if absent; detached and restarted by Ray whenever it dies."""
    return get_or_create_fleet_actor(OpenADRActor, OPENADR_ACTOR_NAME, fleet)
