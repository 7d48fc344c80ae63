"""FleetPort over the control plane: what the OpenADR VEN reads from the fleet and asks of it.

Power figures come from the policy's latest decisions (its power model); DR events and import limits go to the
control plane as DREvents; price and GHG signals go to the control plane, which uses them in the headroom formula
while they are active (policies.control.ControlPlane.set_grid_signal).
"""

from __future__ import annotations

from fleet.clock import Clock
from fleet.errors import OpenADRError
from fleet.events import DREvent, GridSignal
from openadr.fleet import PowerReading
from policies.actors.client import Client
from policies.control_api import ControlApi
from policies.ladder import RegionDecision


def power_reading(region: str, decision: RegionDecision | None, at_s: float) -> PowerReading:
    """What the VEN reports for a region: the policy's power estimate (grid draw, baseline, flexible kW by lever)."""
    if decision is None:
        raise OpenADRError(f"no power estimate for {region!r} yet (has the policy run?)")
    power = decision.power
    flexible = {lever.value: kw for lever, kw in power.flexible_kw.items()}
    return PowerReading(region, at_s, power.grid_kw, power.baseline_kw, flexible)


class ControlFleetPort:
    """The VEN's FleetPort, backed by the control plane through its client."""

    def __init__(self, control: Client[ControlApi], clock: Clock) -> None:
        self._control = control
        self._clock = clock

    async def power(self, region: str) -> PowerReading:
        decisions = await self._control.call(ControlApi.policy_decisions)
        return power_reading(region, decisions.get(region), self._clock.now_s())

    async def post_event(self, event: DREvent) -> None:
        await self._control.call(ControlApi.post_event, event)

    async def clear_event(self, event_id: str) -> None:
        await self._control.call(ControlApi.clear_event, event_id)

    async def set_signal(self, signal: GridSignal) -> None:
        await self._control.call(ControlApi.set_grid_signal, signal)

    async def clear_signal(self, signal_id: str) -> None:
        await self._control.call(ControlApi.clear_grid_signal, signal_id)
