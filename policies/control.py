"""Control plane: the versioned control state (signals, headroom, stress, events, health, load, knobs) of a fleet.

`ControlPlane` is plain Python with an injected clock, so it is unit-tested without Ray; `policies.actor`
wraps it in the named Ray actor that gateways and batch runners read.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime

from router.clock import Clock
from router.config import FleetConfig, Knobs
from router.errors import UnknownRegionError
from router.events import DREvent
from router.state import FleetContext, FleetSnapshot, snapshot

LOAD_REPORT_TTL_S = 5.0
"""A gateway's load and health report counts for this long (wall seconds); a silent gateway drops out."""


@dataclass(frozen=True)
class ControlState:
    """What consumers route and gate with. `version` grows whenever any routing-relevant figure changes."""

    version: int
    snapshot: FleetSnapshot
    events: tuple[DREvent, ...]
    knobs: Mapping[str, Knobs]
    wall_s: float  # when the control plane built it; consumers treat an old state as stale


@dataclass
class _GatewayReport:
    wall_s: float
    in_flight: dict[str, int]
    unhealthy: frozenset[str]


@dataclass
class ControlPlane:
    """Holds a fleet's live control inputs and builds versioned states from them."""

    context: FleetContext
    clock: Clock
    wall_clock: Clock
    events: dict[str, DREvent] = field(default_factory=dict)
    knobs: dict[str, Knobs] = field(default_factory=dict)
    _reports: dict[str, _GatewayReport] = field(default_factory=dict)
    _version: int = 0
    _signature: tuple[object, ...] = ()
    _state: ControlState | None = None

    def __post_init__(self) -> None:
        for region in self.fleet.region_names:
            self.knobs.setdefault(region, self.fleet.serving.knobs)

    @property
    def fleet(self) -> FleetConfig:
        return self.context.fleet

    def _check_region(self, region: str) -> None:
        if region not in self.fleet.region_names:
            raise UnknownRegionError(f"region {region!r} is not in the fleet {list(self.fleet.region_names)}")

    # Inputs -------------------------------------------------------------------------------------------

    def post_event(self, event: DREvent) -> DREvent:
        self._check_region(event.region)
        self.events[event.event_id] = event
        return event

    def clear_event(self, event_id: str) -> DREvent | None:
        return self.events.pop(event_id, None)

    def clear_region_events(self, region: str) -> list[DREvent]:
        self._check_region(region)
        cleared = [event for event in self.events.values() if event.region == region]
        for event in cleared:
            del self.events[event.event_id]
        return cleared

    def set_knobs(self, region: str, knobs: Knobs) -> None:
        self._check_region(region)
        self.knobs[region] = knobs

    def report(self, gateway_id: str, in_flight: Mapping[str, int], unhealthy: frozenset[str]) -> None:
        """A gateway's view of each region: requests it has in flight there, and regions it finds down."""
        self._reports[gateway_id] = _GatewayReport(self.wall_clock.now_s(), dict(in_flight), unhealthy)

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.clock.now_s(), tz=UTC)

    # Output -------------------------------------------------------------------------------------------

    def _live_reports(self) -> list[_GatewayReport]:
        horizon = self.wall_clock.now_s() - LOAD_REPORT_TTL_S
        for gateway_id in [g for g, r in self._reports.items() if r.wall_s < horizon]:
            del self._reports[gateway_id]
        return list(self._reports.values())

    def state(self, known_version: int = -1) -> ControlState | None:
        """The current state, or None when it is still `known_version` (so polling is cheap)."""
        reports = self._live_reports()
        fleet = self.fleet
        in_flight = {name: sum(r.in_flight.get(name, 0) for r in reports) for name in fleet.region_names}
        unhealthy = frozenset().union(*(r.unhealthy for r in reports)) if reports else frozenset()
        # Utilisation against what a region can work on at once: its replicas times one full batch each.
        utilization = {
            name: in_flight[name] / (fleet.serving.replicas_per_region * self.knobs[name].max_batch_size)
            for name in fleet.region_names
        }
        active = tuple(sorted(self.events.values(), key=lambda e: (e.start, e.event_id)))
        snap = snapshot(
            fleet,
            self.context.trace,
            int(self.clock.now_s()),
            events=active,
            healthy={name: name not in unhealthy for name in fleet.region_names},
            utilization=utilization,
            version=self._version,
        )
        signature = (
            tuple(
                (s.name, round(s.headroom, 4), s.stress_level, s.healthy, round(s.utilization, 2)) for s in snap.states
            ),
            tuple(event.event_id for event in active),
            tuple(sorted((name, knobs.model_dump_json()) for name, knobs in self.knobs.items())),
        )
        if signature != self._signature or self._state is None:
            self._version += 1
            self._signature = signature
            self._state = ControlState(
                version=self._version,
                snapshot=FleetSnapshot(snap.at_s, self._version, snap.regions),
                events=active,
                knobs=dict(self.knobs),
                wall_s=self.wall_clock.now_s(),
            )
        if self._state.version == known_version:
            return None
        return self._state
