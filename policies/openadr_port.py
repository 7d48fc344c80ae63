"""FleetPort over the control actor: what the OpenADR VEN reads from the fleet and asks of it.

Power figures come from the policy's latest decisions (its power model); DR events and import limits go to the
control plane as DREvents; price and GHG signals go to the control plane, which uses them in the headroom formula
while they are active (policies.control.ControlPlane.set_grid_signal).
"""

from __future__ import annotations

from typing import Any

from ray.actor import ActorHandle

from policies.actor import ControlActor
from policies.ladder import RegionDecision
from router.clock import Clock
from router.errors import OpenADRError
from router.events import DREvent
from router.openadr.fleet import GridSignal, PowerReading


def power_reading(region: str, decision: RegionDecision | None, at_s: float) -> PowerReading:
    """What the VEN reports for a region: the policy's power estimate (grid draw, baseline, flexible kW by lever)."""
    if decision is None:
        raise OpenADRError(f"no power estimate for {region!r} yet (has the policy run?)")
    power = decision.power
    flexible = {lever.value: kw for lever, kw in power.flexible_kw.items()}
    return PowerReading(region, at_s, power.grid_kw, power.baseline_kw, flexible)


class ControlActorFleetPort:
    """The VEN's FleetPort, backed by the named control actor."""

    def __init__(self, control: ActorHandle[ControlActor], clock: Clock) -> None:
        self._control: Any = control  # Ray's stubs do not type awaiting a remote call; the methods below do
        self._clock = clock

    async def power(self, region: str) -> PowerReading:
        decisions: dict[str, RegionDecision] = await self._control.policy_decisions.remote()
        return power_reading(region, decisions.get(region), self._clock.now_s())

    async def post_event(self, event: DREvent) -> None:
        await self._control.post_event.remote(event)

    async def clear_event(self, event_id: str) -> None:
        await self._control.clear_event.remote(event_id)

    async def set_signal(self, signal: GridSignal) -> None:
        await self._control.set_grid_signal.remote(signal)

    async def clear_signal(self, signal_id: str) -> None:
        await self._control.clear_grid_signal.remote(signal_id)
