"""Routing checker: judges each load-test answer against the routing core, replayed on the control state it names.

Pure and Ray-free, locust-free: the locustfile feeds it `/v1/regions` bodies and answers; unit tests feed it
hand-made ones. It never re-implements a routing rule. It rebuilds the `RegionState`s of the control state
version an answer names and calls `router.routing.choose_region` itself, then accepts any region the gateway
could have chosen with those inputs. What the checker cannot see is enumerated, not guessed:

- the weighted draw: any eligible region passes (the observed split is compared over the run instead);
- the gateway's `previous_eligible` (stickiness), which depends on that replica's history: the set of regions
  the core can choose over *every* possible previous set is exactly the union of its choices for
  `frozenset()`, for every region, and for `{origin}` (see `_PreviousSets` below), so the check replays those three;
- the replica's own view of health, which runs ahead of the control state by up to one refresh: regions with
  evidence of failure (a failed attempt, a poll showing them down) may be taken as down, in any combination;
- `/v1/regions` rounds headroom to four decimals: before calling an answer wrong, the checker replays once more
  with every headroom moved by that rounding in the answer's favour.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from enum import StrEnum

from fleet.config import FleetConfig
from fleet.routing import RoutingMode
from loadtests.control_view import ControlView
from router.routing import RegionState, RouteDecision, RouteReason, RouteRequest, choose_region
from router.sticky import StickyRouter

FAILOVER_PREFIX = "failover:"
HEADROOM_ROUNDING = 0.00005  # /v1/regions publishes headroom rounded to four decimals
_MAX_SUSPECT_SUBSETS_OF = 4  # up to 2**4 health views; beyond that only "none down" and "all suspects down"


class Rule(StrEnum):
    """The rules a load test enforces. Stable strings: they start every violation message and name report rows."""

    ANSWERED = "answered"  # every request gets a 2xx answer (nothing dropped, even while a region fails)
    HEADERS = "routing_headers"  # a 2xx answer says where it ran, why, and on which control state version
    FEASIBLE = "feasible_region"  # the serving region is healthy and within the budget from the origin
    REALTIME = "realtime_stays"  # real-time work runs at its origin, or the nearest healthy region
    TOLERANT = "tolerant_choice"  # tolerant work runs where the core could have sent it on that state
    REASON = "routing_reason"  # the reason header is the core's reason for that choice
    SPLIT = "spread_split"  # over the run, the observed split across eligible regions matches the intended one
    DR_REACTION = "dr_reaction"  # tolerant traffic leaves a region under a DR event within the reaction time
    DR_RETURN = "dr_return"  # and comes back within the reaction time once the event is cleared
    NO_SPILL = "no_emergency_spill"  # tolerant work is served under a grid emergency only when no calm region could
    COVERAGE = "checked_coverage"  # enough answers could be checked for the run to prove anything


class Outcome(StrEnum):
    PASS = "pass"
    VIOLATION = "violation"
    UNCHECKED = "unchecked"  # the control state the answer names was never seen: reported, not a violation
    REJECTED = "rejected"  # 503 "overloaded" with Retry-After at once, in a run that offers more than capacity


@dataclass(frozen=True, slots=True)
class Observation:
    """One request and its answer as the load test saw it."""

    origin: str
    workload_class: str
    latency_budget_ms: float
    status: int  # HTTP status; 0 when no answer came (connection error, timeout)
    region: str | None = None
    reason: str | None = None
    state_version: int | None = None
    attempts: tuple[str, ...] = ()
    error: str = ""
    full: tuple[str, ...] = ()  # regions the gateway skipped as full (X-Gridshift-Full)
    rejected: bool = False  # 503 "overloaded" with Retry-After: admission turned it away, at once


@dataclass(frozen=True, slots=True)
class Check:
    """The checker's verdict on one answer. `intended` is the split the core intends for such requests now;
    `under_event` the regions the answer's control state had under a DR event (empty when the state is unknown)."""

    outcome: Outcome
    rule: Rule | None = None
    message: str = ""
    intended: tuple[tuple[str, float], ...] = ()
    under_event: tuple[str, ...] = ()

    def failure_text(self) -> str:
        """The locust failure message: the rule first, so reports group and grep by rule."""
        return f"{self.rule}: {self.message}" if self.rule else self.message


@dataclass(frozen=True, slots=True)
class _Replay:
    decision: RouteDecision
    down: frozenset[str]


class RoutingChecker:
    """Judges answers with the routing core. Keeps one piece of state, as the gateway does: the previous
    eligible set per (origin, class), used only to say which split the core intends (never to fail an answer)."""

    def __init__(
        self, fleet: FleetConfig, rtt_ms: Mapping[str, Mapping[str, float]], *, allow_rejections: bool = False
    ) -> None:
        self.fleet = fleet
        self.rtt_ms = rtt_ms
        self.allow_rejections = allow_rejections  # overload runs: admission's fast 503s are the expected answer
        self._router = StickyRouter(rtt_ms, fleet.routing)
        self._under_event: frozenset[str] = frozenset()

    def judge(
        self, observation: Observation, view: ControlView | None, suspects: frozenset[str] = frozenset()
    ) -> Check:
        obs = observation
        what = f"{obs.workload_class} request from {obs.origin} ({obs.latency_budget_ms:g} ms)"
        if obs.rejected and self.allow_rejections:
            return Check(Outcome.REJECTED, None, f"{what}: rejected at once, every region that may serve was full")
        if not 200 <= obs.status < 300:
            answer = f"HTTP {obs.status}" if obs.status else "no answer"
            detail = f": {obs.error}" if obs.error else ""
            return Check(Outcome.VIOLATION, Rule.ANSWERED, f"{what} failed: {answer}{detail}")
        problem = self._header_problem(obs)
        if problem:
            return Check(Outcome.VIOLATION, Rule.HEADERS, f"{what}: {problem}")
        if view is None:
            return Check(Outcome.UNCHECKED, None, f"{what}: control state v{obs.state_version} was never seen")
        if obs.workload_class not in self.fleet.workload_classes:
            return Check(Outcome.UNCHECKED, None, f"{what}: class not in the fleet")
        mode = self.fleet.workload_classes[obs.workload_class].mode
        request = RouteRequest(obs.origin, obs.workload_class, mode, obs.latency_budget_ms)
        region = obs.region or ""
        reason = obs.reason or ""
        failover = reason.startswith(FAILOVER_PREFIX)
        base_reason = reason.removeprefix(FAILOVER_PREFIX)

        replays = self._replays(request, view.states, frozenset())
        verdict = self._verdict(replays, region, base_reason, failover, obs.full[:1] + obs.attempts[:1])
        if verdict is None and suspects:
            replays += self._replays(request, view.states, suspects, skip_empty=True)
            verdict = self._verdict(replays, region, base_reason, failover, obs.full[:1] + obs.attempts[:1])
        if verdict is None:
            nudged = _nudged(view.states, region)
            replays += self._replays(request, nudged, suspects)
            verdict = self._verdict(replays, region, base_reason, failover, obs.full[:1] + obs.attempts[:1])
        under_event = tuple(sorted(view.under_event))
        if verdict is not None and mode is RoutingMode.SHIFT:
            spill = self._spilled(view, verdict.decision, region, base_reason, obs)
            if spill:
                return Check(
                    Outcome.VIOLATION, Rule.NO_SPILL, f"{what} served by {region}: {spill}", under_event=under_event
                )
        if verdict is not None:
            if failover or mode is not RoutingMode.SHIFT:
                return Check(Outcome.PASS, under_event=under_event)
            # The split is intended on the health view that explained the answer (usually: the state as published).
            seen = [s if s.name not in verdict.down else replace(s, healthy=False) for s in view.states]
            return Check(
                Outcome.PASS, intended=self._intended(request, seen, view.under_event), under_event=under_event
            )
        rule, message = self._explain(request, replays, region, failover, obs.attempts)
        # No version in the message: locust groups failures by message, and versions change many times a second.
        return Check(
            Outcome.VIOLATION, rule, f"{what} served by {region} [{reason}]: {message}", under_event=under_event
        )

    # Replays --------------------------------------------------------------------------------------------

    def _replays(
        self,
        request: RouteRequest,
        states: Sequence[RegionState],
        suspects: frozenset[str],
        *,
        skip_empty: bool = False,
    ) -> list[_Replay]:
        replays = []
        for down in _down_sets(suspects):
            if skip_empty and not down:
                continue
            seen = [s if s.name not in down else replace(s, healthy=False) for s in states]
            for previous in _PreviousSets.of(request, self.fleet.region_names):
                decision = choose_region(
                    request, seen, self.rtt_ms, self.fleet.routing, previous_eligible=previous, explain=False
                )
                replays.append(_Replay(decision, down))
        return replays

    def _spilled(
        self, view: ControlView, decision: RouteDecision, region: str, reason: str, obs: Observation
    ) -> str | None:
        """Why serving tolerant work in `region` broke the no-spill rule, if it did: the region was in grid emergency
        while a calm region of the ranking had not failed (it was full, or never tried)."""
        avoid = self.fleet.routing.avoid_stress_level
        stress = {state.name: state.stress_level for state in view.states}
        if stress.get(region, 0) < avoid or reason == RouteReason.ONLY_STRESSED.value:
            return None  # a calm region, or only regions in emergency fit: nothing to spill from
        failed = set(obs.attempts[:-1])
        calm = [name for name in decision.ranked if stress.get(name, 0) < avoid and name not in failed]
        if not calm:
            return None
        return f"its grid is in emergency (stress {stress[region]}) while {_names(calm)} had not failed"

    @staticmethod
    def _verdict(
        replays: Sequence[_Replay], region: str, reason: str, failover: bool, first: tuple[str, ...]
    ) -> _Replay | None:
        for replay in replays:
            decision = replay.decision
            if decision.reason.value != reason:
                continue
            eligible = {name for name, _ in decision.eligible}
            if failover:
                # A fallback served: the first attempt was the core's choice, the server a ranked fallback.
                # `first`: the first region the gateway considered (skipped as full, or tried).
                if region in decision.ranked and (not first or any(name in eligible for name in first)):
                    return replay
            elif region in eligible:
                return replay
        return None

    def _explain(
        self,
        request: RouteRequest,
        replays: Sequence[_Replay],
        region: str,
        failover: bool,
        attempts: tuple[str, ...],
    ) -> tuple[Rule, str]:
        class_rule = Rule.REALTIME if request.mode is RoutingMode.STAY else Rule.TOLERANT
        feasible = _union(set(r.decision.ranked) for r in replays if r.decision.feasible)
        if any(r.decision.feasible for r in replays) and region not in feasible:
            return Rule.FEASIBLE, (
                f"not healthy or not within the budget from {request.origin} (feasible: {_names(feasible)})"
            )
        eligible = _union({n for n, _ in r.decision.eligible} for r in replays)
        if failover and attempts and attempts[0] not in eligible:
            return class_rule, f"its first attempt went to {attempts[0]}; the core could choose only {_names(eligible)}"
        choices = _union(set(r.decision.ranked) for r in replays) if failover else eligible
        if region in choices:
            expected = sorted({r.decision.reason.value for r in replays if _could_serve(r, region, failover)})
            return Rule.REASON, f"the core's reason for {region} is {' or '.join(expected) or 'none'}"
        if class_rule is Rule.REALTIME:
            return class_rule, f"real-time work stays at its origin or the nearest healthy region: {_names(choices)}"
        return class_rule, f"the routing core could choose only {_names(choices)}"

    def _intended(
        self, request: RouteRequest, states: Sequence[RegionState], under_event: frozenset[str]
    ) -> tuple[tuple[str, float], ...]:
        # The gateway's own sticky router, so the intended split is what a replica in steady state draws from; like
        # the gateway, it decides from scratch once the set of DR events changes.
        if under_event != self._under_event:
            self._router.forget()
            self._under_event = under_event
        return self._router.decide(request, states).eligible

    def _header_problem(self, obs: Observation) -> str:
        if not obs.region:
            return "no X-Gridshift-Region header"
        if obs.region not in self.fleet.region_names:
            return f"X-Gridshift-Region {obs.region!r} is not a region of the fleet"
        if not obs.reason:
            return "no X-Gridshift-Reason header"
        if obs.state_version is None:
            return "no (or a non-integer) X-Gridshift-State-Version header"
        return ""


class _PreviousSets:
    """The previous-eligible sets whose choices cover every previous set the gateway could hold.

    For any previous set P other than {origin}, the origin stays under the plain margin (as with P = all), and
    otherwise the eligible set is the near-best regions plus those of P within the sticky margin: a subset of
    what P = all regions gives, and a superset of what P = {} gives. So all-regions covers every region choice,
    {} covers "a single eligible region" (reason most_headroom), and {origin} covers the sticky stay.
    """

    @staticmethod
    def of(request: RouteRequest, regions: Sequence[str]) -> tuple[frozenset[str], ...]:
        if request.mode is RoutingMode.STAY:
            return (frozenset(),)  # stickiness plays no part in real-time routing
        return (frozenset(), frozenset(regions), frozenset((request.origin,)))


def _down_sets(suspects: frozenset[str]) -> list[frozenset[str]]:
    if not suspects:
        return [frozenset()]
    names = sorted(suspects)
    if len(names) > _MAX_SUSPECT_SUBSETS_OF:
        return [frozenset(), frozenset(names)]
    return [frozenset(c) for size in range(len(names) + 1) for c in itertools.combinations(names, size)]


def _nudged(states: Sequence[RegionState], region: str) -> list[RegionState]:
    """States with each published (rounded) headroom moved by the rounding in favour of `region` being chosen."""

    def moved(state: RegionState) -> RegionState:
        step = HEADROOM_ROUNDING if state.name == region else -HEADROOM_ROUNDING
        return replace(state, headroom=min(1.0, max(0.0, state.headroom + step)))

    return [moved(state) for state in states]


def _could_serve(replay: _Replay, region: str, failover: bool) -> bool:
    if failover:
        return region in replay.decision.ranked
    return region in {name for name, _ in replay.decision.eligible}


def _union(sets: Iterable[set[str]]) -> set[str]:
    result: set[str] = set()
    for item in sets:
        result |= item
    return result


def _names(regions: Iterable[str]) -> str:
    listed = sorted(regions)
    return ", ".join(listed) if listed else "none"


def parse_attempts(header: str | None) -> tuple[str, ...]:
    """X-Gridshift-Attempts: the regions tried, in order, the last one serving."""
    if not header:
        return ()
    return tuple(part.strip() for part in header.split(",") if part.strip())


def parse_version(header: str | None) -> int | None:
    if header is None:
        return None
    try:
        return int(header)
    except ValueError:
        return None
