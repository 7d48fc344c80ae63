"""Records of a load-test run: the per-request lines the locust process writes and the runner's log of grid actions.

Pure: plain values, their JSON form, and reading records.jsonl back.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from loadtests.checker import FAILOVER_PREFIX, Outcome, Rule
from loadtests.scenarios import ActionKind


@dataclass(frozen=True, slots=True)
class RequestRecord:
    """One request as the locust process saw and judged it (one JSON line of records.jsonl)."""

    sent_s: float  # wall clock (time.time()), shared by the runner's action log
    done_s: float
    workload_class: str
    origin: str
    budget_ms: float
    status: int
    region: str | None
    reason: str | None
    state_version: int | None
    outcome: Outcome
    rule: Rule | None = None
    message: str = ""
    intended: tuple[tuple[str, float], ...] = ()
    under_event: tuple[str, ...] = ()  # regions under a DR event in the control state the answer named

    @property
    def failover(self) -> bool:
        return bool(self.reason and self.reason.startswith(FAILOVER_PREFIX))

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": "request",
            "sent_s": round(self.sent_s, 4),
            "done_s": round(self.done_s, 4),
            "class": self.workload_class,
            "origin": self.origin,
            "budget_ms": self.budget_ms,
            "status": self.status,
            "region": self.region,
            "reason": self.reason,
            "state_version": self.state_version,
            "outcome": self.outcome.value,
            "rule": None if self.rule is None else self.rule.value,
            "message": self.message,
            "intended": [[name, round(p, 6)] for name, p in self.intended],
            "under_event": list(self.under_event),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> RequestRecord:
        rule = data.get("rule")
        return cls(
            sent_s=float(data["sent_s"]),
            done_s=float(data["done_s"]),
            workload_class=str(data["class"]),
            origin=str(data["origin"]),
            budget_ms=float(data["budget_ms"]),
            status=int(data["status"]),
            region=data.get("region"),
            reason=data.get("reason"),
            state_version=data.get("state_version"),
            outcome=Outcome(data["outcome"]),
            rule=None if rule is None else Rule(rule),
            message=str(data.get("message", "")),
            intended=tuple((str(name), float(p)) for name, p in data.get("intended", [])),
            under_event=tuple(str(name) for name in data.get("under_event", [])),
        )


@dataclass(frozen=True, slots=True)
class ActionRecord:
    """A grid change the runner made: when it was sent and when the gateway (or Ray) acknowledged it."""

    kind: ActionKind
    region: str
    sent_s: float
    acked_s: float
    ok: bool
    detail: str = ""
    level: int | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind.value,
            "region": self.region,
            "level": self.level,
            "sent_s": round(self.sent_s, 4),
            "acked_s": round(self.acked_s, 4),
            "ok": self.ok,
            "detail": self.detail,
        }


@dataclass(frozen=True, slots=True)
class Records:
    started_s: float | None
    requests: tuple[RequestRecord, ...]


def read_records(path: Path) -> Records:
    """Parse records.jsonl: a `start` line from the locust process, then one line per request."""
    started_s: float | None = None
    requests = []
    if not path.exists():
        return Records(None, ())
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        try:
            data = json.loads(line)
            if data.get("kind") == "start":
                started_s = float(data["t"]) if started_s is None else started_s
            elif data.get("kind") == "request":
                requests.append(RequestRecord.from_json(data))
        except (ValueError, KeyError, TypeError) as error:
            raise ValueError(f"{path}:{number}: bad record: {error!r}") from None
    return Records(started_s, tuple(sorted(requests, key=lambda r: r.sent_s)))
