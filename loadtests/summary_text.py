"""The routing summary of a load-test run as text on one screen."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


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
    ]
    if req.get("rejected"):
        reject = req["time_to_reject_ms"]
        lines.append(
            f"rejected at once (503 overloaded, Retry-After): {req['rejected']}; time to reject p50 "
            f"{reject['p50']:.0f} ms, max {reject['max']:.0f} ms"
        )
    lines.append("served by region:")
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
