"""What the VEN asks of the fleet and reads from it: instruction types and the narrow FleetPort it drives.

The VEN never touches the control plane directly; whoever runs it passes a FleetPort (the policy actor's
adapter in production, a fake in tests). Every instruction has a deterministic id, so applying the same
OpenADR event twice changes nothing, and clearing it removes exactly what it created.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

from fleet.events import DREvent, GridSignal


@dataclass(frozen=True)
class PowerReading:
    """A region's power figures at one moment, kW (estimates from the policy actor's power model)."""

    region: str
    at_s: float
    grid_kw: float  # what the region draws from the grid now
    baseline_kw: float  # what it would draw with no grid control
    flexible_kw: Mapping[str, float] = field(default_factory=dict)  # kW each lever could still take off now

    @property
    def flexible_total_kw(self) -> float:
        return sum(self.flexible_kw.values())


Instruction = DREvent | GridSignal
"""A DR event carries a stress level, an import limit (power_limit_kw), or both; a signal carries a value."""


def instruction_id(instruction: Instruction) -> str:
    return instruction.event_id if isinstance(instruction, DREvent) else instruction.signal_id


class FleetPort(Protocol):
    """The fleet as the VEN sees it. Setting an id that is already set replaces it; clearing an unknown id is
    not an error. Implementations must not block the event loop for long."""

    async def power(self, region: str) -> PowerReading:
        """The region's current power figures."""
        ...

    async def post_event(self, event: DREvent) -> None:
        """Post (or replace) a DR event: a stress level, an import limit in kW, or both."""
        ...

    async def clear_event(self, event_id: str) -> None: ...

    async def set_signal(self, signal: GridSignal) -> None: ...

    async def clear_signal(self, signal_id: str) -> None: ...


async def apply_instruction(port: FleetPort, instruction: Instruction) -> None:
    if isinstance(instruction, DREvent):
        await port.post_event(instruction)
    else:
        await port.set_signal(instruction)


async def clear_instruction(port: FleetPort, instruction: Instruction) -> None:
    if isinstance(instruction, DREvent):
        await port.clear_event(instruction.event_id)
    else:
        await port.clear_signal(instruction.signal_id)


@dataclass(frozen=True)
class Changes:
    """What to do to go from the applied instructions to the desired ones (decide first, then act)."""

    clear: tuple[Instruction, ...]
    apply: tuple[Instruction, ...]

    def __bool__(self) -> bool:
        return bool(self.clear or self.apply)


def plan_changes(applied: Mapping[str, Instruction], desired: Mapping[str, Instruction]) -> Changes:
    """Clear what is no longer wanted, apply what is new or changed; leave what is the same alone."""
    clear = tuple(applied[key] for key in sorted(applied) if key not in desired)
    apply = tuple(desired[key] for key in sorted(desired) if applied.get(key) != desired[key])
    return Changes(clear, apply)
