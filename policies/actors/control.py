"""The control actor: the named, restartable Ray actor that owns the clock and signals and serves the control state.

It is the control plane itself (`ControlPlane`, which implements `ControlApi`), built from the fleet config in the
actor's process, with a thread polling a live fleet's signal sources into its store.
"""

from __future__ import annotations

from typing import Any

from ray.actor import ActorHandle

from fleet.clock import WallClock, clock_for_source
from fleet.config import FleetConfig
from fleet.loaders import parse_fleet
from grid.sources.poller import start_background_polling
from grid.sources.store import load_live_context
from policies.actors.client import ActorClient
from policies.actors.registry import CONTROL_ACTOR_NAME, get_or_create_fleet_actor
from policies.control import ControlPlane
from policies.control_api import ControlApi


class ControlActor(ControlPlane):
    """The control plane, built from plain fleet data (what crosses into the actor's process)."""

    def __init__(self, fleet_data: dict[str, Any]) -> None:
        fleet = parse_fleet(fleet_data, source="control actor fleet")
        context, store = load_live_context(fleet)
        super().__init__(context, clock_for_source(fleet.signal_source), WallClock())
        # A live fleet's sources are polled into its store by a thread of this actor; None for a trace fleet.
        self._signal_poller = start_background_polling(fleet, store)


def get_or_create_control_actor(fleet: FleetConfig) -> ActorHandle[ControlActor]:
    """The fleet's control actor, started if absent."""
    return get_or_create_fleet_actor(ControlActor, CONTROL_ACTOR_NAME, fleet)


def control_client(fleet: FleetConfig | None = None, *, timeout_s: float | None = None) -> ActorClient[ControlApi]:
    """A client of the fleet's control actor: started if absent when `fleet` is given, else looked up by name on
    first use (a regional replica may start before it)."""
    handle = None if fleet is None else get_or_create_control_actor(fleet)
    if timeout_s is None:
        return ActorClient(CONTROL_ACTOR_NAME, handle)
    return ActorClient(CONTROL_ACTOR_NAME, handle, timeout_s=timeout_s)
