"""A load-test scenario's grid changes: DR events through the gateway's admin API and region kills, timed and logged."""

from __future__ import annotations

import contextlib
import json
import subprocess
import time
import urllib.error
import urllib.request
from typing import Any

from loadtests.embedded_gateway import TOKEN_ENV
from loadtests.gateways import Gateway
from loadtests.records import ActionRecord
from loadtests.run_settings import RunError, RunSettings, say
from loadtests.scenarios import ActionKind

ADMIN_TIMEOUT_S = 30.0
ACTION_LABELS = {
    ActionKind.POST_DR_EVENT: "DR ON",
    ActionKind.CLEAR_DR_EVENT: "DR OFF",
    ActionKind.KILL_REGION: "KILL",
}


def admin_call(gateway: Gateway, method: str, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
    if not gateway.admin_token:
        raise RunError(f"DR events need the admin token: set {TOKEN_ENV}")
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(
        f"{gateway.url}{path}",
        data=data,
        method=method,
        headers={"Authorization": f"Bearer {gateway.admin_token}", "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=ADMIN_TIMEOUT_S) as response:
            answer: dict[str, Any] = json.loads(response.read() or b"{}")
            return answer
    except urllib.error.HTTPError as error:
        raise RunError(f"{method} {path}: HTTP {error.code}: {error.read()[:300]!r}") from None
    except (OSError, ValueError) as error:
        raise RunError(f"{method} {path}: {error}") from None


class ActionDriver:
    """Carries out a scenario's grid changes at their times, logging when each was sent and acknowledged."""

    def __init__(self, gateway: Gateway, settings: RunSettings) -> None:
        self.gateway = gateway
        self.settings = settings
        self.log: list[ActionRecord] = []
        self._open_events: list[str] = []

    def run(self, started_s: float, locust: subprocess.Popen[bytes]) -> None:
        for action in sorted(self.settings.scenario.actions, key=lambda a: a.at_fraction):
            due = started_s + action.at_fraction * self.settings.duration_s
            while time.time() < due:
                if locust.poll() is not None:
                    return  # locust ended early (refused or crashed): nothing left to drive
                time.sleep(min(0.05, max(0.0, due - time.time())))
            self.perform(action.kind)

    def perform(self, kind: ActionKind) -> None:
        region, level = self.settings.event_region, self.settings.event_level
        sent = time.time()
        detail, ok = "", True
        try:
            if kind is ActionKind.POST_DR_EVENT:
                event = admin_call(self.gateway, "POST", "/v1/admin/events", {"region": region, "level": level})
                detail = str(event["event"]["event_id"])
                self._open_events.append(detail)
            elif kind is ActionKind.CLEAR_DR_EVENT:
                if self._open_events:
                    detail = self._open_events.pop()
                    admin_call(self.gateway, "DELETE", f"/v1/admin/events/{detail}")
            else:
                detail = self.gateway.kill_region(region)
        except (RunError, KeyError, TypeError) as error:
            detail, ok = str(error), False
        acked = time.time()
        self.log.append(
            ActionRecord(kind, region, sent, acked, ok, detail, level if kind is ActionKind.POST_DR_EVENT else None)
        )
        say(f"{kind.value} {region}: {'ok' if ok else 'FAILED'} {detail} ({acked - sent:.2f} s)")

    def clear_leftovers(self) -> None:
        """Clear events a cut-short run left posted, so the gateway is left as found."""
        while self._open_events:
            event_id = self._open_events.pop()
            with contextlib.suppress(RunError):
                admin_call(self.gateway, "DELETE", f"/v1/admin/events/{event_id}")
