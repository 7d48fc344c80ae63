"""Where a fleet's long-lived actors are found: their names, and get-or-create with the options they all share."""

from __future__ import annotations

from typing import TypeVar, cast

import ray
from ray.actor import ActorHandle

from fleet.config import FleetConfig
from policies.actors.client import NAMESPACE

T = TypeVar("T")

CONTROL_ACTOR_NAME = "gridshift-control"
POLICY_ACTOR_NAME = "gridshift-policy"
OPENADR_ACTOR_NAME = "gridshift-openadr"
RATE_LIMIT_ACTOR_NAME = "gridshift-rate-limits"
FLEET_ACTOR_NAMES = (CONTROL_ACTOR_NAME, POLICY_ACTOR_NAME, OPENADR_ACTOR_NAME, RATE_LIMIT_ACTOR_NAME)
"""Every long-lived actor of a fleet: what `gridshift down` removes."""


def get_or_create_fleet_actor(actor_class: type[T], name: str, fleet: FleetConfig) -> ActorHandle[T]:
    """The fleet's actor of that name, started if absent: detached (it outlives whoever started it, so gateways
    created by `serve deploy` and by `gridshift up` find the same one), restarted by Ray whenever it dies, and
    holding no CPU (each is a control loop, not compute)."""
    handle = (
        ray.remote(actor_class)
        .options(
            name=name,
            namespace=NAMESPACE,
            get_if_exists=True,
            lifetime="detached",
            max_restarts=-1,
            max_task_retries=3,
            num_cpus=0,
        )
        .remote(fleet.model_dump(mode="json"))
    )
    return cast("ActorHandle[T]", handle)
