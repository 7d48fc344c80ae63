"""The policy actor: the named, restartable Ray actor that turns each region's knobs and battery every period.

It reads the control actor's inputs (grid stress, DR events and limits, measured load, batch jobs, shifted work),
runs the pure decisions of policies.ladder for every region, and publishes them back; regional replicas and batch
runners pick them up from the control plane within their refresh period, without restarts. If this actor dies,
Ray restarts it and it resumes from the decisions it last published (rung, dwell, battery charge); if it stays
down, the control plane stops honouring its stale decisions after `policy.fallback_after_s`.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from ray.actor import ActorHandle

from fleet.config import FleetConfig
from fleet.loaders import parse_fleet
from policies.actors.control import control_client
from policies.actors.registry import POLICY_ACTOR_NAME, get_or_create_fleet_actor
from policies.calibration import load_calibration
from policies.control_api import ControlApi
from policies.ladder import RegionDecision, decide_fleet

CALL_TIMEOUT_S = 5.0

logger = logging.getLogger("gridshift.policy")


class PolicyActor:
    """Every `policy.period_s` wall seconds: read inputs, decide every region, publish. Runs on its own thread so
    status calls answer while a decision is in progress."""

    def __init__(self, fleet_data: dict[str, Any]) -> None:
        self._fleet = parse_fleet(fleet_data, source="policy actor fleet")
        self._calibration = load_calibration(self._fleet.policy.calibration_file)
        self._control = control_client(self._fleet, timeout_s=CALL_TIMEOUT_S)
        # Resume from what was last published: a restart keeps the rung, its dwell and the battery's charge.
        self._previous: dict[str, RegionDecision] = self._control.call_sync(ControlApi.policy_decisions)
        self._restored: list[str] = sorted(self._previous)
        self._decisions: int = 0
        self._errors: int = 0
        self._last_error: str = ""
        self._stop: threading.Event = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="gridshift-policy", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        period = self._fleet.policy.period_s
        while not self._stop.is_set():
            started = time.monotonic()
            try:
                self.decide_once()
            except Exception as error:  # the control actor may be restarting: try again next period
                self._errors += 1
                self._last_error = f"{type(error).__name__}: {error}"
                logger.warning("policy decision failed: %s", self._last_error)
            self._stop.wait(max(period - (time.monotonic() - started), 0.0))

    def decide_once(self) -> dict[str, RegionDecision]:
        inputs = self._control.call_sync(ControlApi.policy_inputs)
        decisions = decide_fleet(inputs, self._previous, self._fleet, self._calibration)
        self._control.call_sync(ControlApi.publish_policy, decisions, self._calibration)
        self._previous = decisions
        self._decisions += 1
        return decisions

    def status(self) -> dict[str, object]:
        return {
            "restored_regions": self._restored,
            "decisions": self._decisions,
            "errors": self._errors,
            "last_error": self._last_error,
            "steps": {name: decision.step for name, decision in sorted(self._previous.items())},
        }

    def stop(self) -> None:
        self._stop.set()


def get_or_create_policy_actor(fleet: FleetConfig) -> ActorHandle[PolicyActor]:
    """The fleet's policy actor, started if absent; detached and restarted by Ray whenever it dies."""
    return get_or_create_fleet_actor(PolicyActor, POLICY_ACTOR_NAME, fleet)
