"""The runner's side of the two-tenant load test: create the tenants, hand their keys to locust, reconcile usage.

Before locust starts, the tenants are created through the gateway's admin API (fresh names each run, so the usage
the gateway reports is this run's alone); their keys go to the locust process in its environment, never to a file.
After it stops, each tenant's usage is read back from `GET /v1/usage?tenant=` (the admin token), once the replicas'
recorders have flushed, and judged against what the users saw (loadtests/tenant_rules.py).
"""

from __future__ import annotations

import json
import time
import urllib.parse
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from fleet.loaders import load_fleet
from loadtests.actions import admin_call
from loadtests.gateways import Gateway
from loadtests.records import ActionRecord
from loadtests.run_settings import RunSettings, say
from loadtests.scenarios import ActionKind
from loadtests.tenant_plan import KEYS_ENV, TenantCall, TenantsPlan, read_calls, tenants_plan
from loadtests.tenant_rules import EventWindow, UsageTotals, judge_calls, reconcile

TENANT_LOCUSTFILE = Path(__file__).with_name("tenant_locustfile.py")
USAGE_SETTLE_S = 15.0  # the recorders flush every usage_flush_s (0.5 s); allow for a slow database write too


def prepare(settings: RunSettings, gateway: Gateway, plan_path: Path) -> dict[str, str]:
    """Write the plan, create its tenants; the environment entries that carry their keys to locust."""
    suffix = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%f")
    plan = tenants_plan(
        settings.scenario.name, settings.plan.records_path, settings.event_region, settings.user_rps, suffix
    )
    plan_path.write_text(plan.model_dump_json(indent=2))
    keys = {}
    for load in plan.tenants:
        body = {"name": load.name, "default_tier": load.tier, "max_tier": load.tier}
        if load.requests_per_s is not None:
            body["requests_per_s"] = load.requests_per_s
        keys[load.name] = str(admin_call(gateway, "POST", "/v1/admin/tenants", body)["api_key"])
        say(f"tenant {load.name}: tier {load.tier}, {load.users} user(s), limit {load.requests_per_s or 'default'}/s")
    return {KEYS_ENV: json.dumps(keys)}


def event_window(actions: Sequence[ActionRecord], max_reaction_s: float) -> EventWindow | None:
    posted = next((a for a in actions if a.kind is ActionKind.POST_DR_EVENT and a.ok), None)
    cleared = next((a for a in actions if a.kind is ActionKind.CLEAR_DR_EVENT and a.ok), None)
    if posted is None:
        return None
    return EventWindow(posted.acked_s + max_reaction_s, cleared.sent_s if cleared else float("inf"))


def _usage(gateway: Gateway, tenant: str) -> UsageTotals:
    query = urllib.parse.urlencode({"tenant": tenant, "limit": 10_000})
    answer = admin_call(gateway, "GET", f"/v1/usage?{query}")
    rows = [row for row in answer["records"] if row.get("kind", "inference") == "inference"]
    return UsageTotals(len(rows), sum(int(row["items"]) for row in rows), frozenset(str(r["request_id"]) for r in rows))


def _settled_usage(gateway: Gateway, plan: TenantsPlan, calls: Sequence[TenantCall]) -> dict[str, UsageTotals]:
    """Each tenant's usage once it stops changing and covers what was answered (or the settle time is up)."""
    answered = {load.name: sum(1 for c in calls if c.tenant == load.name and c.ok) for load in plan.tenants}
    deadline = time.monotonic() + USAGE_SETTLE_S
    while True:
        usage = {load.name: _usage(gateway, load.name) for load in plan.tenants}
        if all(usage[name].requests >= n for name, n in answered.items()) or time.monotonic() > deadline:
            return usage
        time.sleep(0.5)


def finish(settings: RunSettings, gateway: Gateway, plan_path: Path, actions: Sequence[ActionRecord]) -> dict[str, Any]:
    """Judge the run: the summary (JSON-able) with its violations by rule."""
    plan = TenantsPlan.model_validate_json(plan_path.read_text())
    calls = read_calls(Path(plan.records_path))
    fleet = load_fleet(settings.fleet_path)
    event = event_window(actions, settings.max_reaction_s)
    verdicts = judge_calls(
        calls,
        plan.tenants,
        fleet.serving.knobs.precision.value,
        event,
        fleet.gateway.replicas,
        fleet.tenants.rate_lease_s,
    )
    usage = reconcile(calls, _settled_usage(gateway, plan, calls), plan.tenants, verdicts)
    per_tenant: dict[str, Any] = {}
    for load in plan.tenants:
        mine = [c for c in calls if c.tenant == load.name]
        per_tenant[load.name] = {
            "tier": load.tier,
            "limit_requests_per_s": load.requests_per_s,
            "calls": len(mine),
            "status": {str(s): sum(1 for c in mine if c.status == s) for s in sorted({c.status for c in mine})},
            "moved": sum(1 for c in mine if "moved" in c.effects),
            "degraded": sum(1 for c in mine if "degraded" in c.effects),
            "deferred": sum(1 for c in mine if "deferred" in c.effects),
            "regions": {
                r: sum(1 for c in mine if c.ok and c.region == r)
                for r in sorted({c.region or "" for c in mine if c.ok})
            },
            "usage": usage[load.name],
        }
    return {
        "scenario": settings.scenario.name,
        "url": gateway.url,
        "origin": plan.origin,
        "duration_s": settings.duration_s,
        "event": None if event is None else {"from_s": event.start_s, "to_s": event.end_s},
        "tenants": per_tenant,
        "violations": {"total": verdicts.total, "by_rule": verdicts.counts, "examples": verdicts.messages},
    }


def render(summary: dict[str, Any]) -> str:
    lines = [f"scenario {summary['scenario']} against {summary['url']}, every call from {summary['origin']}"]
    for name, tenant in summary["tenants"].items():
        usage = tenant["usage"]
        lines.append(
            f"  {name}: tier {tenant['tier']}, {tenant['calls']} calls {tenant['status']}, moved {tenant['moved']}, "
            f"degraded {tenant['degraded']}, deferred {tenant['deferred']}, regions {tenant['regions']}; usage "
            f"{usage['recorded']} of {usage['answered']} answered ({usage['recorded_items']} of "
            f"{usage['answered_items']} items)"
        )
    violations = summary["violations"]
    lines.append(f"violations: {violations['total']} {violations['by_rule']}")
    lines += [f"  {message}" for messages in violations["examples"].values() for message in messages]
    return "\n".join(lines)
