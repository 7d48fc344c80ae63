"""Load-test scenarios and limits: load shapes, timed grid actions, the hard caps, and the plan handed to locust."""

from __future__ import annotations

import ipaddress
import math
from dataclasses import dataclass
from enum import StrEnum
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, PositiveFloat, model_validator

# Hard caps: a load test on a shared two-core machine must stay bounded whatever the flags say.
MAX_USERS = 50
MAX_DURATION_S = 600.0
MAX_SPAWN_RATE = 10.0  # users started per second
MAX_USER_RPS = 5.0  # requests per second per user, so at most MAX_USERS * MAX_USER_RPS in all
MAX_TRACE_RATE = 250.0  # requests per second of an open-loop trace replay: the same ceiling as users x rate
MIN_ACTION_DURATION_S = 15.0  # below this, a scenario with grid actions cannot show a move and a return

USER_CLASSES = ("realtime", "tolerant")  # the workload classes the locust users model (batch is not per request)

PEAK = "2022-09-07T01:00:00Z"
"""Replay time of the embedded gateway: the heat-wave peak, when tolerant work leaves us-west-1 for us-west-2,
so a DR event on us-west-2 moves traffic away from it and clearing the event brings it back."""


class ActionKind(StrEnum):
    POST_DR_EVENT = "post_dr_event"
    CLEAR_DR_EVENT = "clear_dr_event"
    KILL_REGION = "kill_region"


@dataclass(frozen=True, slots=True)
class Action:
    """A grid change the runner makes at a fraction of the run's duration."""

    at_fraction: float
    kind: ActionKind


@dataclass(frozen=True, slots=True)
class Stage:
    """Until `until_fraction` of the duration, run `users_fraction` of the users."""

    until_fraction: float
    users_fraction: float


@dataclass(frozen=True, slots=True)
class Scenario:
    name: str
    description: str
    users: int
    duration_s: float
    user_rps: float
    stages: tuple[Stage, ...]
    actions: tuple[Action, ...] = ()
    trace_rate_per_s: float | None = None  # replay the real arrival trace open-loop at this mean rate (not users)
    allow_overload: bool = False  # fast 503 "overloaded" answers (admission) are expected, not violations
    tenants: bool = False  # tenant users at their tiers (loadtests/tenant_locustfile.py), judged by tenant_rules

    @property
    def needs_admin(self) -> bool:
        return any(a.kind in (ActionKind.POST_DR_EVENT, ActionKind.CLEAR_DR_EVENT) for a in self.actions)

    @property
    def kills_region(self) -> bool:
        return any(a.kind is ActionKind.KILL_REGION for a in self.actions)


_FULL = (Stage(1.0, 1.0),)

SCENARIOS: dict[str, Scenario] = {
    scenario.name: scenario
    for scenario in (
        Scenario(
            "smoke",
            "a few users for under a minute, with a short DR event: what CI runs",
            users=4,
            duration_s=25.0,
            user_rps=2.0,
            stages=_FULL,
            actions=(Action(0.3, ActionKind.POST_DR_EVENT), Action(0.65, ActionKind.CLEAR_DR_EVENT)),
        ),
        Scenario(
            "steady",
            "no grid change; load steps from half to all users, so in-flight load moves the split",
            users=10,
            duration_s=60.0,
            user_rps=2.0,
            stages=(Stage(0.3, 0.5), Stage(1.0, 1.0)),
        ),
        Scenario(
            "dr_event",
            "a DR event posted on one region a third of the way in and cleared at two thirds",
            users=10,
            duration_s=90.0,
            user_rps=2.0,
            stages=_FULL,
            actions=(Action(1 / 3, ActionKind.POST_DR_EVENT), Action(2 / 3, ActionKind.CLEAR_DR_EVENT)),
        ),
        Scenario(
            "region_kill",
            "every replica of one region killed a third of the way in (Serve restarts them); no tolerant request fails",
            users=10,
            duration_s=90.0,
            user_rps=2.0,
            stages=_FULL,
            actions=(Action(1 / 3, ActionKind.KILL_REGION),),
        ),
        Scenario(
            "trace_replay",
            "the real Azure LLM arrival trace, open-loop at --rate requests/s (one to eight sentences each, 30 % "
            "real-time, origins over every region): bursts as they came, whatever the answers do",
            users=1,
            duration_s=60.0,
            user_rps=1.0,
            stages=_FULL,
            trace_rate_per_s=8.0,
        ),
        Scenario(
            "overload",
            "the trace at about twice the fleet's capacity (set --rate from benchmarks.bench_overload) during a "
            "level-3 DR event: fast 503s with Retry-After are expected; a tolerant answer from an emergency region "
            "while a calm one was up is a violation",
            users=1,
            duration_s=40.0,
            user_rps=1.0,
            stages=_FULL,
            actions=(Action(0.1, ActionKind.POST_DR_EVENT), Action(0.9, ActionKind.CLEAR_DR_EVENT)),
            trace_rate_per_s=90.0,
            allow_overload=True,
        ),
        Scenario(
            "tenants",
            "three tenants calling from the DR event's region: tier 0 (never moved or degraded), tier 2 (moved or "
            "degraded while the event holds) and one offered four times its limit (429 with Retry-After, no 5xx); "
            "each tenant's usage from /v1/usage must match the answers its users saw",
            users=6,
            duration_s=45.0,
            user_rps=2.0,
            stages=_FULL,
            actions=(Action(1 / 3, ActionKind.POST_DR_EVENT), Action(2 / 3, ActionKind.CLEAR_DR_EVENT)),
            tenants=True,
        ),
    )
}


def users_at(stages: tuple[Stage, ...] | list[Stage], users: int, fraction_done: float) -> int:
    """Users the shape asks for at `fraction_done` of the run (at least one)."""
    for stage in stages:
        if fraction_done < stage.until_fraction:
            return max(1, math.ceil(users * stage.users_fraction))
    return max(1, math.ceil(users * stages[-1].users_fraction)) if stages else users


def check_loopback(url: str) -> str:
    """The URL if its host is this machine (127.0.0.0/8, ::1, localhost); else ValueError. Load stays local."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"not an http(s) URL: {url!r}")
    host = parts.hostname
    if host != "localhost":
        try:
            loopback = ipaddress.ip_address(host).is_loopback
        except ValueError:
            loopback = False
        if not loopback:
            raise ValueError(f"refusing to load-test {host!r}: only loopback hosts (127.0.0.1, ::1, localhost)")
    return url.rstrip("/")


def check_caps(users: int, duration_s: float, spawn_rate: float, user_rps: float) -> None:
    """Raise ValueError naming the first limit a run would exceed."""
    if not 1 <= users <= MAX_USERS:
        raise ValueError(f"users must be in 1..{MAX_USERS}, got {users}")
    if not 0 < duration_s <= MAX_DURATION_S:
        raise ValueError(f"duration must be in (0, {MAX_DURATION_S:g}] s, got {duration_s:g}")
    if not 0 < spawn_rate <= MAX_SPAWN_RATE:
        raise ValueError(f"spawn rate must be in (0, {MAX_SPAWN_RATE:g}] users/s, got {spawn_rate:g}")
    if not 0 < user_rps <= MAX_USER_RPS:
        raise ValueError(f"per-user rate must be in (0, {MAX_USER_RPS:g}] requests/s, got {user_rps:g}")


class StagePlan(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    until_fraction: float = Field(gt=0.0, le=1.0, description="End of the stage, as a fraction of the run.")
    users_fraction: float = Field(gt=0.0, le=1.0, description="Share of the users running in the stage.")


class TracePlan(BaseModel):
    """An open-loop replay of the real arrival trace (loadtests/azure_trace.py)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    path: str = Field(min_length=1, description="The Azure LLM conversation trace (csv.gz).")
    rate_per_s: float = Field(gt=0.0, le=MAX_TRACE_RATE, description="Mean requests per second of the replay.")
    realtime_share: float = Field(0.3, ge=0.0, le=1.0, description="Share of requests sent as real-time work.")


class LoadPlan(BaseModel):
    """What the runner tells the locust process (a JSON file named by --gridshift-plan). Users, spawn rate and
    duration are locust's own -u/-r/-t, checked against the same caps there."""

    model_config = ConfigDict(extra="forbid")

    scenario: str = Field("adhoc", min_length=1, description="Scenario name, for the records.")
    fleet_path: str | None = Field(None, description="The gateway's fleet YAML; null: the packaged default fleet.")
    records_path: str = Field("results/records.jsonl", description="JSON lines, one per request, appended.")
    user_rps: float = Field(2.0, gt=0.0, le=MAX_USER_RPS, description="Requests per second per user (paced).")
    workload_mix: dict[str, PositiveFloat] = Field(
        default_factory=lambda: {"realtime": 3.0, "tolerant": 7.0},
        description="Weight of each workload class among users.",
    )
    origins: dict[str, PositiveFloat] | None = Field(
        None, description="Weight of each origin region per request; null: every fleet region alike."
    )
    budgets_ms: dict[str, list[PositiveFloat]] = Field(
        default_factory=lambda: {"realtime": [50.0], "tolerant": [150.0, 80.0]},
        description="Latency budgets drawn per request, per class; a class absent here uses its fleet default.",
    )
    stages: list[StagePlan] = Field(
        default_factory=lambda: [StagePlan(until_fraction=1.0, users_fraction=1.0)],
        min_length=1,
        description="The load shape: users over the run.",
    )
    trace: TracePlan | None = Field(None, description="Replay the real arrival trace open-loop instead of users.")
    allow_overload: bool = Field(False, description="503 'overloaded' with Retry-After is a rejection, not a failure.")
    poll_interval_s: float = Field(
        0.05, ge=0.02, le=1.0, description="How often the checker reads /v1/regions (control state versions), s."
    )

    @model_validator(mode="after")
    def _valid(self) -> LoadPlan:
        unknown = sorted(set(self.workload_mix) - set(USER_CLASSES))
        if unknown or not self.workload_mix:
            raise ValueError(f"workload_mix names classes {unknown}: the load test has users for {list(USER_CLASSES)}")
        ends = [stage.until_fraction for stage in self.stages]
        if ends != sorted(ends) or ends[-1] != 1.0:
            raise ValueError("stages must be in order and the last must end at 1.0")
        return self

    def shape(self) -> list[Stage]:
        return [Stage(s.until_fraction, s.users_fraction) for s in self.stages]
