"""Run-level routing verdicts of a load test: the violation tally, reaction times to grid actions, the split.

Pure: each judge reads request and action records and adds what it finds wrong to one `Violations` tally.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from loadtests.checker import Outcome, Rule
from loadtests.records import ActionRecord, RequestRecord
from loadtests.scenarios import ActionKind

PRE_EVENT_WINDOW_S = 10.0  # where traffic went just before an event: what "leaving" and "returning" refer to
MIN_REACTION_SAMPLES = 5  # fewer moved-or-not requests than this cannot show a reaction
AFFECTED_SHARE = 0.8  # a group whose tolerant work went this much to a region before an action is "affected"
LEAVE_SHARE = 0.95  # "95th-percentile moved request": from then on, this share of requests is served elsewhere
SPLIT_MIN_REQUESTS = 50  # an origin's split is judged only on this many spread-eligible answers or more
SPLIT_SIGMAS = 5.0  # observed count may differ from the intended by this many standard deviations ...
SPLIT_SLACK_SHARE = 0.05  # ... plus this share of the requests (stickiness after state changes, ordering)
EXAMPLES_PER_RULE = 5


@dataclass
class Violations:
    """The rules a run broke: a count per rule and the first few distinct messages of each."""

    counts: Counter[str] = field(default_factory=Counter)
    examples: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))

    def add(self, rule: Rule, message: str) -> None:
        self.counts[rule.value] += 1
        if len(self.examples[rule.value]) < EXAMPLES_PER_RULE and message not in self.examples[rule.value]:
            self.examples[rule.value].append(message)

    @property
    def total(self) -> int:
        return sum(self.counts.values())


def reaction_times(
    event_s: float, samples: Sequence[tuple[float, bool]], target_share: float
) -> tuple[float | None, float | None]:
    """(first, settled) seconds after `event_s`: the first request that moved, and the earliest moved request
    from which on at least `target_share` of the requests moved. `samples`: (sent time, moved), any order."""
    ordered = sorted(samples)
    first = next((sent - event_s for sent, moved in ordered if moved), None)
    moved_after = 0
    settled: float | None = None
    # Walk backwards: at each moved request, the share of moved ones from it to the end of the window.
    for index in range(len(ordered) - 1, -1, -1):
        sent, moved = ordered[index]
        moved_after += moved
        if moved and moved_after / (len(ordered) - index) >= target_share:
            settled = sent - event_s
    return first, settled


def reaction_to(
    action: ActionRecord,
    actions: Sequence[ActionRecord],
    requests: Sequence[RequestRecord],
    started: float,
    max_reaction_s: float,
    violations: Violations,
) -> dict[str, Any]:
    """How tolerant traffic that was served by `action.region` left it, and (DR events) came back.

    Requests are grouped by origin and budget (a tight budget may never reach the region); a group is affected
    when at least AFFECTED_SHARE of its tolerant requests in the PRE_EVENT_WINDOW_S before the action went there.
    """
    region, event_s = action.region, action.sent_s
    is_dr = action.kind is ActionKind.POST_DR_EVENT
    tolerant = [r for r in requests if r.workload_class == "tolerant" and r.ok and r.region]
    before = [r for r in tolerant if event_s - PRE_EVENT_WINDOW_S <= r.sent_s < event_s]
    share_before = _share_at(before, region)
    affected = sorted(group for group, share in share_before.items() if share >= AFFECTED_SHARE)
    result: dict[str, Any] = {
        "kind": action.kind.value,
        "region": region,
        "level": action.level,
        "at_s": round(event_s - started, 3),
        "affected": affected,
        "share_at_region_before": {group: round(share, 4) for group, share in sorted(share_before.items())},
        "max_reaction_s": max_reaction_s,
    }
    name = f"{action.kind.value} on {region}"
    if is_dr:
        clears = [a.sent_s for a in actions if a.kind is ActionKind.CLEAR_DR_EVENT and a.region == region]
        clear_s = min((sent for sent in clears if sent > event_s), default=None)
        result["cleared_at_s"] = None if clear_s is None else round(clear_s - started, 3)
        if not affected:
            before_text = f"in the {PRE_EVENT_WINDOW_S:g} s before"
            violations.add(
                Rule.DR_REACTION, f"{name}: no origin and budget sent most tolerant work there {before_text}"
            )
            return result
        window_end = math.inf if clear_s is None else clear_s
        # Moved: served elsewhere. The event changes the grid, not the region's health, so nothing fails over.
        during = [(r.sent_s, r.region != region) for r in tolerant if _group(r) in affected and event_s <= r.sent_s]
        during = [sample for sample in during if sample[0] < window_end]
        first, settled = reaction_times(event_s, during, LEAVE_SHARE)
        result["leave"] = _leave(during, first, settled)
        what = f"{name}: tolerant traffic"
        _judge_reaction(Rule.DR_REACTION, what, "left", len(during), first, settled, max_reaction_s, violations)
        if clear_s is not None:
            result["return"] = _return(region, clear_s, tolerant, affected, max_reaction_s, violations, name)
        return result
    # A kill: requests sent after it either fail over (tried the dead region first) or are routed around it, until
    # Serve's new replica answers the gateway's probe and the region serves again.
    after_kill = [r for r in requests if r.sent_s >= event_s]
    back_s = next((r.sent_s for r in after_kill if r.region == region and not r.failover), None)
    window_end = math.inf if back_s is None else back_s
    during = [
        (r.sent_s, r.region != region and not r.failover)
        for r in tolerant
        if _group(r) in affected and event_s <= r.sent_s < window_end
    ]
    first, settled = reaction_times(event_s, during, LEAVE_SHARE)
    result["routed_around"] = _leave(during, first, settled)
    result["failed_after"] = sum(not r.ok for r in after_kill)
    result["failed_tolerant_after"] = sum(not r.ok and r.workload_class == "tolerant" for r in after_kill)
    result["failover_after"] = sum(r.failover for r in after_kill)
    result["region_serving_again_s"] = _round(None if back_s is None else back_s - event_s)
    return result


def _return(
    region: str,
    clear_s: float,
    tolerant: Sequence[RequestRecord],
    affected: Sequence[str],
    max_reaction_s: float,
    violations: Violations,
    name: str,
) -> dict[str, Any]:
    """How routing came back to `region` once its event was cleared.

    Leaving is deterministic (a region in emergency is avoided), coming back is not: without the event, where an
    affected group's work goes depends on load and on each replica's anti-flap memory, and the gateway may
    legitimately split it or keep it at its origin (every answer is still checked against the core). So the
    reaction is judged on the control state each answer was decided on: a request counts as back once its
    state no longer holds the event. That traffic really returns is judged separately: at least one affected
    request must be served by the region again, and the observed split is compared with the intended one.
    """
    after = [
        r for r in tolerant if _group(r) in affected and r.sent_s >= clear_s and r.outcome is not Outcome.UNCHECKED
    ]
    decided = [(r.sent_s, region not in r.under_event) for r in after]
    first_decided, settled = reaction_times(clear_s, decided, LEAVE_SHARE)
    first_served = next((r.sent_s - clear_s for r in after if r.region == region), None)
    what = f"{name} cleared: tolerant traffic"
    if len(decided) < MIN_REACTION_SAMPLES:
        violations.add(
            Rule.DR_RETURN, f"{what}: only {len(decided)} request(s) to measure, need {MIN_REACTION_SAMPLES}"
        )
    elif first_served is None:
        violations.add(Rule.DR_RETURN, f"{what} never came back ({len(after)} requests after the clear)")
    else:
        _judge_reaction(
            Rule.DR_RETURN, what, "came back", len(decided), first_decided, settled, max_reaction_s, violations
        )
    return {
        "requests": len(after),
        "decided_without_event": sum(back for _, back in decided),
        "returned": sum(r.region == region for r in after),
        "first_returned_s": _round(first_served),
        "p95_returned_s": _round(settled),
    }


def _leave(samples: Sequence[tuple[float, bool]], first: float | None, settled: float | None) -> dict[str, Any]:
    return {
        "requests": len(samples),
        "moved": sum(moved for _, moved in samples),
        "first_moved_s": _round(first),
        "p95_moved_s": _round(settled),
    }


def _judge_reaction(
    rule: Rule,
    what: str,
    verb: str,
    samples: int,
    first: float | None,
    settled: float | None,
    limit_s: float,
    violations: Violations,
) -> None:
    if samples < MIN_REACTION_SAMPLES:
        violations.add(rule, f"{what}: only {samples} request(s) to measure, need {MIN_REACTION_SAMPLES}")
    elif first is None or settled is None:
        violations.add(rule, f"{what} never {verb}")
    elif settled > limit_s:
        violations.add(rule, f"{what} {verb} after {settled:.2f} s (95%), more than the {limit_s:g} s reaction time")


def _group(record: RequestRecord) -> str:
    return f"{record.origin}@{record.budget_ms:g}ms"


def _share_at(requests: Iterable[RequestRecord], region: str) -> dict[str, float]:
    """Per origin and budget, the share of requests served by `region`."""
    totals: Counter[str] = Counter()
    there: Counter[str] = Counter()
    for record in requests:
        totals[_group(record)] += 1
        there[_group(record)] += record.region == region
    return {group: there[group] / count for group, count in totals.items()}


def split_by_origin(requests: Sequence[RequestRecord], violations: Violations) -> dict[str, Any]:
    """Observed against intended split of tolerant work, per origin, over answers the core could spread."""
    spread = [r for r in requests if r.outcome is Outcome.PASS and len(r.intended) > 1 and not r.failover]
    by_origin: dict[str, list[RequestRecord]] = defaultdict(list)
    for record in spread:
        by_origin[record.origin].append(record)
    result: dict[str, Any] = {}
    for origin, rows in sorted(by_origin.items()):
        expected: defaultdict[str, float] = defaultdict(float)
        variance: defaultdict[str, float] = defaultdict(float)
        for row in rows:
            for name, p in row.intended:
                expected[name] += p
                variance[name] += p * (1.0 - p)
        observed = Counter(row.region for row in rows if row.region)
        names = sorted(set(expected) | set(observed))
        n = len(rows)
        deviation = {name: observed[name] - expected[name] for name in names}
        total_variation = sum(abs(d) for d in deviation.values()) / (2 * n)
        off = [
            name
            for name in names
            if abs(deviation[name]) > SPLIT_SIGMAS * math.sqrt(variance[name]) + SPLIT_SLACK_SHARE * n
        ]
        judged = n >= SPLIT_MIN_REQUESTS
        if judged and off:
            violations.add(
                Rule.SPLIT,
                f"tolerant work from {origin}: observed {dict(observed)} over {n} spread answers, intended "
                f"{ {k: round(v, 1) for k, v in expected.items()} } (off: {', '.join(off)})",
            )
        result[origin] = {
            "requests": n,
            "observed": {name: observed[name] for name in names},
            "intended": {name: round(expected[name], 2) for name in names},
            "total_variation": round(total_variation, 4),
            "judged": judged,
            "ok": not (judged and off),
        }
    return result


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 3)
