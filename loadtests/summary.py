"""Routing summary of a load-test run: requests per region over time, violations, reaction times, observed split.

Pure: it reads the per-request records the locust process wrote and the runner's log of grid actions, and
returns plain JSON-able values; the runner writes them and the text form.
"""

from __future__ import annotations

import json
import math
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from loadtests.checker import FAILOVER_PREFIX, Outcome, Rule
from loadtests.scenarios import ActionKind

PRE_EVENT_WINDOW_S = 10.0  # where traffic went just before an event: what "leaving" and "returning" refer to
MIN_REACTION_SAMPLES = 5  # fewer moved-or-not requests than this cannot show a reaction
AFFECTED_SHARE = 0.8  # a group whose tolerant work went this much to a region before an action is "affected"
LEAVE_SHARE = 0.95  # "95th-percentile moved request": from then on, this share of requests is served elsewhere
MAX_UNCHECKED_SHARE = 0.05  # more unchecked answers than this and the run proves too little
SPLIT_MIN_REQUESTS = 50  # an origin's split is judged only on this many spread-eligible answers or more
SPLIT_SIGMAS = 5.0  # observed count may differ from the intended by this many standard deviations ...
SPLIT_SLACK_SHARE = 0.05  # ... plus this share of the requests (stickiness after state changes, ordering)
EXAMPLES_PER_RULE = 5


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


@dataclass
class Violations:
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


def summarize(
    records: Records,
    actions: Sequence[ActionRecord],
    *,
    scenario: str,
    url: str,
    users: int,
    duration_s: float,
    max_reaction_s: float,
    bin_s: float | None = None,
) -> dict[str, Any]:
    """The routing summary (JSON-able). Its `violations.total` is what decides the run's exit status."""
    requests = records.requests
    started = records.started_s if records.started_s is not None else (requests[0].sent_s if requests else 0.0)
    violations = Violations()
    for record in requests:
        if record.outcome is Outcome.VIOLATION and record.rule is not None:
            violations.add(record.rule, record.message)
    by_outcome = Counter(r.outcome.value for r in requests)
    answered = [r for r in requests if r.ok]
    unchecked_share = by_outcome[Outcome.UNCHECKED.value] / len(answered) if answered else 0.0
    if not requests:
        violations.add(Rule.COVERAGE, "no request was made: the run proves nothing")
    elif unchecked_share > MAX_UNCHECKED_SHARE:
        violations.add(
            Rule.COVERAGE,
            f"{unchecked_share:.1%} of answers named a control state the checker never saw "
            f"(limit {MAX_UNCHECKED_SHARE:.0%}): poll /v1/regions faster",
        )
    step = bin_s or max(1.0, math.ceil(duration_s / 45))
    reactions = [
        _reaction(action, actions, requests, started, max_reaction_s, violations)
        for action in actions
        if action.kind in (ActionKind.POST_DR_EVENT, ActionKind.KILL_REGION)
    ]
    split = _split(requests, violations)
    regions = sorted({r.region for r in requests if r.region})
    return {
        "schema": "gridshift.loadtest_summary/v1",
        "scenario": scenario,
        "url": url,
        "users": users,
        "duration_s": duration_s,
        "started_s": started,
        "requests": {
            "total": len(requests),
            "by_class": dict(sorted(Counter(r.workload_class for r in requests).items())),
            "by_outcome": dict(sorted(by_outcome.items())),
            "answered_2xx": len(answered),
            "failed": len(requests) - len(answered),
            "failover": sum(r.failover for r in requests),
            "unchecked_share": round(unchecked_share, 4),
            "by_region": {
                workload: dict(
                    sorted(Counter(r.region for r in requests if r.workload_class == workload and r.region).items())
                )
                for workload in sorted({r.workload_class for r in requests})
            },
        },
        "violations": {
            "total": violations.total,
            "by_rule": dict(sorted(violations.counts.items())),
            "examples": {rule: list(messages) for rule, messages in sorted(violations.examples.items())},
        },
        "actions": [
            {**a.to_json(), "at_s": round(a.sent_s - started, 3)} for a in sorted(actions, key=lambda a: a.sent_s)
        ],
        "reactions": reactions,
        "split": split,
        "timeline": _timeline(requests, regions, started, step, duration_s),
    }


def _served_by_region(requests: Sequence[RequestRecord]) -> dict[str, dict[str, int]]:
    counts: dict[str, Counter[str]] = defaultdict(Counter)
    for record in requests:
        if record.region:
            counts[record.workload_class][record.region] += 1
    return {workload: dict(sorted(c.items())) for workload, c in sorted(counts.items())}


def _timeline(
    requests: Sequence[RequestRecord], regions: Sequence[str], started: float, step: float, duration_s: float
) -> dict[str, Any]:
    """Requests per second per serving region, per class, in bins of `step` seconds over the run's duration
    (the few requests sent as locust stops count in the last bin, so no partial bin dips at the end)."""
    bins = max(1, math.floor(duration_s / step + 1e-9))
    per_class: dict[str, dict[str, list[float]]] = {}
    for record in requests:
        if not record.region:
            continue
        index = min(bins - 1, max(0, int((record.sent_s - started) // step)))
        rows = per_class.setdefault(record.workload_class, {region: [0.0] * bins for region in regions})
        rows[record.region][index] += 1.0 / step
    return {
        "bin_s": step,
        "t_s": [round(i * step, 3) for i in range(bins)],
        "requests_per_s": {
            workload: {region: [round(v, 3) for v in values] for region, values in rows.items()}
            for workload, rows in sorted(per_class.items())
        },
    }


def _reaction(
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


def _split(requests: Sequence[RequestRecord], violations: Violations) -> dict[str, Any]:
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


def render_text(summary: Mapping[str, Any]) -> str:
    """The routing summary on one screen."""
    req = summary["requests"]
    lines = [
        f"gridshift load test: {summary['scenario']} ({summary['users']} users, {summary['duration_s']:g} s, "
        f"{summary['url']})",
        f"requests: {req['total']} ({', '.join(f'{k} {v}' for k, v in req['by_class'].items())}); "
        f"2xx {req['answered_2xx']}, failed {req['failed']}, failover {req['failover']}; "
        f"checked {req['by_outcome'].get('pass', 0) + req['by_outcome'].get('violation', 0)}, "
        f"unchecked {req['by_outcome'].get('unchecked', 0)} ({req['unchecked_share']:.1%})",
        "served by region:",
    ]
    for workload, counts in req["by_region"].items():
        lines.append(f"  {workload:<9} " + "  ".join(f"{region} {count}" for region, count in counts.items()))
    for action in summary["actions"]:
        level = f" level {action['level']}" if action.get("level") is not None else ""
        status = "ok" if action["ok"] else f"FAILED {action['detail']}"
        lines.append(f"action at +{action['at_s']:.1f} s: {action['kind']} {action['region']}{level} ({status})")
    for reaction in summary["reactions"]:
        lines.append(
            f"reaction to {reaction['kind']} on {reaction['region']} at +{reaction['at_s']:.1f} s "
            f"(affected origin@budget: {', '.join(reaction['affected']) or 'none'}; "
            f"limit {reaction['max_reaction_s']:g} s):"
        )
        for key, label in (("leave", "left:    "), ("routed_around", "routed around:")):
            leave = reaction.get(key)
            if leave:
                lines.append(
                    f"  {label} first moved request after {_fmt(leave['first_moved_s'])}, 95% moved from "
                    f"{_fmt(leave['p95_moved_s'])} ({leave['moved']}/{leave['requests']} moved)"
                )
        back = reaction.get("return")
        if back:
            lines.append(
                f"  returned: first request served there again after {_fmt(back['first_returned_s'])}, 95% decided "
                f"without the event from {_fmt(back['p95_returned_s'])} ({back['returned']}/{back['requests']} "
                "served there)"
            )
        if "failed_tolerant_after" in reaction:
            lines.append(
                f"  after the kill: {reaction['failed_tolerant_after']} failed tolerant, {reaction['failed_after']} "
                f"failed in all, {reaction['failover_after']} failovers; region serving again after "
                f"{_fmt(reaction['region_serving_again_s'])}"
            )
    for origin, split in summary["split"].items():
        lines.append(
            f"split of spread tolerant work from {origin} ({split['requests']} answers): "
            f"observed {split['observed']} intended {split['intended']} "
            f"({'ok' if split['ok'] else 'OFF'}{'' if split['judged'] else ', too few to judge'})"
        )
    total = summary["violations"]["total"]
    lines.append(f"violations: {total}")
    for rule, count in summary["violations"]["by_rule"].items():
        lines.append(f"  {rule}: {count}")
        lines.extend(f"    e.g. {example}" for example in summary["violations"]["examples"].get(rule, []))
    return "\n".join(lines)


def _fmt(seconds: float | None) -> str:
    return "never" if seconds is None else f"{seconds:.2f} s"
