"""Routing summary of a load-test run: requests per region over time, violations, reaction times, observed split.

Pure: it reads the per-request records the locust process wrote and the runner's log of grid actions, and
returns plain JSON-able values; the runner writes them and the text form (`loadtests.summary_text`).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from typing import Any

from loadtests.checker import Outcome, Rule
from loadtests.records import ActionRecord, Records, RequestRecord
from loadtests.scenarios import ActionKind
from loadtests.verdicts import Violations, reaction_to, split_by_origin

MAX_UNCHECKED_SHARE = 0.05  # more unchecked answers than this and the run proves too little


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
    rejected = [r for r in requests if r.outcome is Outcome.REJECTED]
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
        reaction_to(action, actions, requests, started, max_reaction_s, violations)
        for action in actions
        if action.kind in (ActionKind.POST_DR_EVENT, ActionKind.KILL_REGION)
    ]
    split = split_by_origin(requests, violations)
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
            "failed": len(requests) - len(answered) - len(rejected),
            "failover": sum(r.failover for r in requests),
            "rejected": len(rejected),
            "time_to_reject_ms": _quantiles([(r.done_s - r.sent_s) * 1000 for r in rejected]),
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


def _quantiles(values: list[float]) -> dict[str, float] | None:
    """p50 and max, rounded to the millisecond's tenth; None without values."""
    if not values:
        return None
    ordered = sorted(values)
    return {"p50": round(ordered[len(ordered) // 2], 1), "max": round(ordered[-1], 1)}
