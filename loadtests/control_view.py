"""What the routing checker knows of the control plane: each control state version as `GET /v1/regions` showed it,
rebuilt into the routing core's inputs, and a bounded history of versions and of evidence that regions were failing.

Pure and Ray-free, locust-free, like the checker that reads it."""

from __future__ import annotations

from collections import OrderedDict, deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from fleet.config import FleetConfig
from router.routing import RegionState


@dataclass(frozen=True, slots=True)
class ControlView:
    """One control state version as `GET /v1/regions` showed it."""

    version: int
    states: tuple[RegionState, ...]  # fleet order
    marked_down: frozenset[str]  # regions the answering gateway replica had marked down itself
    seen_at_s: float
    under_event: frozenset[str] = frozenset()  # regions with an active DR event (event_level above 0)


class FleetMismatchError(ValueError):
    """`/v1/regions` describes other regions than the fleet the checker was given."""


def view_from_regions_body(body: Mapping[str, Any], fleet: FleetConfig, seen_at_s: float) -> ControlView:
    """Rebuild the routing inputs of one control state from a `/v1/regions` body (schema gridshift.regions/v1).

    Service times are not published, so they come from the fleet config, which must be the gateway's.
    """
    try:
        version = int(body["state_version"])
        by_name = {str(entry["region"]): entry for entry in body["regions"]}
    except (KeyError, TypeError, ValueError) as error:
        raise ValueError(f"not a /v1/regions body: {error!r}") from None
    if set(by_name) != set(fleet.region_names):
        raise FleetMismatchError(
            f"the gateway serves regions {sorted(by_name)}, the checker's fleet {sorted(fleet.region_names)}: "
            "pass the gateway's fleet file"
        )
    states = []
    marked_down = set()
    under_event = set()
    for region in fleet.regions:
        entry = by_name[region.name]
        try:
            states.append(
                RegionState(
                    name=region.name,
                    headroom=float(entry["headroom"]),
                    stress_level=int(entry["stress_level"]),
                    healthy=bool(entry["healthy"]),
                    utilization=float(entry["utilization"]),
                    capacity_replicas=int(entry["capacity_replicas"]),
                    service_time_ms=region.service_time_ms,
                )
            )
        except (KeyError, TypeError, ValueError) as error:
            raise ValueError(f"/v1/regions entry for {region.name}: {error!r}") from None
        gateway = entry.get("gateway")
        if isinstance(gateway, Mapping) and gateway.get("marked_down"):
            marked_down.add(region.name)
        if (entry.get("event_level") or 0) > 0:
            under_event.add(region.name)
    return ControlView(version, tuple(states), frozenset(marked_down), seen_at_s, frozenset(under_event))


class StateHistory:
    """Recently seen control state versions (bounded), and recent evidence that regions were failing."""

    def __init__(self, max_versions: int = 4096, evidence_window_s: float = 10.0) -> None:
        self.max_versions = max_versions
        self.evidence_window_s = evidence_window_s
        self._views: OrderedDict[int, ControlView] = OrderedDict()
        self._evidence: deque[tuple[float, str]] = deque(maxlen=4096)  # (time, region) a failure was seen
        self.polls = 0
        self.last_poll_s: float | None = None

    def add(self, view: ControlView) -> None:
        self.polls += 1
        self.last_poll_s = view.seen_at_s
        for state in view.states:
            if not state.healthy:
                self._evidence.append((view.seen_at_s, state.name))
        for region in view.marked_down:
            self._evidence.append((view.seen_at_s, region))
        if view.version in self._views:
            return  # keep the first sighting: the state of a version never changes
        self._views[view.version] = view
        while len(self._views) > self.max_versions:
            self._views.popitem(last=False)

    def failed_attempts(self, regions: Iterable[str], at_s: float) -> None:
        """Regions an answer's X-Gridshift-Attempts shows failing before the one that served."""
        for region in regions:
            self._evidence.append((at_s, region))

    def get(self, version: int) -> ControlView | None:
        return self._views.get(version)

    @property
    def latest_version(self) -> int | None:
        return max(self._views) if self._views else None

    def suspects(self, at_s: float) -> frozenset[str]:
        """Regions with failure evidence within the window around `at_s` (either side: evidence can lag)."""
        window = self.evidence_window_s
        return frozenset(region for seen_s, region in self._evidence if abs(seen_s - at_s) <= window)
