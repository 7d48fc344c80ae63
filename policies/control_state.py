"""Control state building: the grid inputs an operator or utility posts (DR events, price and GHG signals), what
gateways report, and the versioned state consumers route and gate with."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

from fleet.config import FleetConfig
from fleet.errors import UnknownRegionError
from fleet.events import DREvent, GridSignal
from fleet.serving import Knobs
from grid.context import FleetContext
from grid.signal_health import SignalsStatus
from grid.trace import Observation
from router.state import FleetSnapshot, snapshot

LOAD_REPORT_TTL_S = 5.0
"""A gateway's load and health report counts for this long (wall seconds); a silent gateway drops out."""

# Utility signals that stand in for a signal column: only in the unit the headroom formula reads.
_SIGNAL_COLUMN = {("price", "USD/MWh"): "price_usd_per_mwh", ("ghg", "gCO2/kWh"): "carbon_g_per_kwh"}


@dataclass(frozen=True)
class ControlState:
    """What consumers route and gate with. `version` grows whenever any routing-relevant figure changes."""

    version: int
    snapshot: FleetSnapshot
    events: tuple[DREvent, ...]
    knobs: Mapping[str, Knobs]  # in force: an operator's pin, else the policy's fresh decision, else serving.knobs
    wall_s: float  # when the control plane built it; consumers treat an old state as stale
    knob_sources: Mapping[str, str] = field(default_factory=dict)  # per region: operator | policy | defaults
    signals: SignalsStatus | None = None  # live fleets: each signal source's health and the values held


@dataclass(frozen=True)
class GatewayLoad:
    """What a gateway replica reports with each sync: requests it has in flight per region, regions it finds down,
    and per origin the tolerant items per second it served elsewhere (what geographic shifting took away)."""

    in_flight: Mapping[str, int]
    unhealthy: frozenset[str]
    moved_items_per_s: Mapping[str, float] = field(default_factory=dict)


class KnobsInForce(Protocol):
    """Per region, the knobs in force and where they come from (the knob leases)."""

    def in_force(self, region: str) -> tuple[Knobs, str]: ...


def check_region(fleet: FleetConfig, region: str) -> None:
    """Raise UnknownRegionError unless `region` is one of the fleet's."""
    if region not in fleet.region_names:
        raise UnknownRegionError(f"region {region!r} is not in the fleet {list(fleet.region_names)}")


@dataclass
class GridInputs:
    """DR events and utility signals in force, by id; posting an id again replaces it."""

    fleet: FleetConfig
    events: dict[str, DREvent] = field(default_factory=dict)
    grid_signals: dict[str, GridSignal] = field(default_factory=dict)

    def post_event(self, event: DREvent) -> DREvent:
        check_region(self.fleet, event.region)
        self.events[event.event_id] = event
        return event

    def clear_event(self, event_id: str) -> DREvent | None:
        return self.events.pop(event_id, None)

    def clear_region_events(self, region: str) -> list[DREvent]:
        check_region(self.fleet, region)
        cleared = [event for event in self.events.values() if event.region == region]
        for event in cleared:
            del self.events[event.event_id]
        return cleared

    def set_grid_signal(self, signal: GridSignal) -> None:
        check_region(self.fleet, signal.region)
        self.grid_signals[signal.signal_id] = signal

    def clear_grid_signal(self, signal_id: str) -> GridSignal | None:
        return self.grid_signals.pop(signal_id, None)

    def active_events(self) -> tuple[DREvent, ...]:
        return tuple(sorted(self.events.values(), key=lambda e: (e.start, e.event_id)))

    def signal_overrides(self, at_s: float) -> dict[str, dict[str, Observation]]:
        """Per region, the observed signals that active utility signals replace (in the headroom formula's units)."""
        overrides: dict[str, dict[str, Observation]] = {}
        # Oldest first, so the latest-starting active signal of a kind wins.
        for signal in sorted(self.grid_signals.values(), key=lambda g: (g.start_s, g.signal_id)):
            column = _SIGNAL_COLUMN.get((signal.kind, signal.unit))
            active = signal.start_s <= at_s and (signal.end_s is None or at_s < signal.end_s)
            if column is not None and active:
                # Stamped now: the utility vouches for the value over the whole interval, so it never reads as stale.
                overrides.setdefault(signal.region, {})[column] = Observation(signal.value, int(at_s))
        return overrides


@dataclass
class GatewayReports:
    """Each gateway's latest load report; a report counts until LOAD_REPORT_TTL_S passes without a newer one."""

    _reports: dict[str, tuple[float, GatewayLoad]] = field(default_factory=dict)

    def report(self, gateway_id: str, load: GatewayLoad, wall_s: float) -> None:
        self._reports[gateway_id] = (wall_s, load)

    def live(self, wall_s: float) -> list[GatewayLoad]:
        horizon = wall_s - LOAD_REPORT_TTL_S
        for gateway_id in [g for g, (at_s, _) in self._reports.items() if at_s < horizon]:
            del self._reports[gateway_id]
        return [load for _, load in self._reports.values()]


@dataclass
class StateBuilder:
    """Builds the versioned control state; the version grows only when something routing reads has changed."""

    context: FleetContext
    _version: int = 0
    _signature: tuple[object, ...] = ()
    _state: ControlState | None = None

    @property
    def latest(self) -> ControlState | None:
        return self._state

    def build(
        self, at_s: float, wall_s: float, inputs: GridInputs, reports: list[GatewayLoad], knobs: KnobsInForce
    ) -> ControlState:
        fleet = self.context.fleet
        in_flight = {name: sum(r.in_flight.get(name, 0) for r in reports) for name in fleet.region_names}
        unhealthy = frozenset().union(*(r.unhealthy for r in reports)) if reports else frozenset()
        leases = {name: knobs.in_force(name) for name in fleet.region_names}
        # Utilisation against what a region works on at once: its replicas times one batch each (or fewer, where the
        # concurrency knob caps it). A region the policy turned down fills sooner, so routing sends it less.
        utilization = {
            name: in_flight[name] / (fleet.serving.replicas_per_region * leases[name][0].work_slots)
            for name in fleet.region_names
        }
        active = inputs.active_events()
        # The sources' health is read before their values: a poll landing while the snapshot is built is then at
        # most in the values, never only in the health, and its newer revision makes the next call rebuild.
        store = self.context.signals
        signals = None if store is None else store.status(int(at_s))
        snap = snapshot(
            fleet,
            self.context.reader,
            int(at_s),
            events=active,
            healthy={name: name not in unhealthy for name in fleet.region_names},
            utilization=utilization,
            overrides=inputs.signal_overrides(at_s),
            version=self._version,
        )
        signature = (
            tuple(
                (s.name, round(s.headroom, 4), s.stress_level, s.healthy, round(s.utilization, 2)) for s in snap.states
            ),
            tuple(event.event_id for event in active),
            tuple(sorted((name, knobs.model_dump_json(), source) for name, (knobs, source) in leases.items())),
            None if signals is None else signals.revision,
        )
        if signature != self._signature or self._state is None:
            self._version += 1
            self._signature = signature
            self._state = ControlState(
                version=self._version,
                snapshot=FleetSnapshot(snap.at_s, self._version, snap.regions),
                events=active,
                knobs={name: knobs for name, (knobs, _) in leases.items()},
                wall_s=wall_s,
                knob_sources={name: source for name, (_, source) in leases.items()},
                signals=signals,
            )
        return self._state
