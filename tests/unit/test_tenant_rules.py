"""The two-tenant load test's rules, on hand-made calls: tiers under a DR event, rate limits, usage reconciliation."""

from __future__ import annotations

import itertools

from loadtests.tenant_plan import TenantCall, TenantLoad, parse_effects, tenants_plan
from loadtests.tenant_rules import EventWindow, TenantRule, UsageTotals, answered_totals, judge_calls, reconcile

FIRM = TenantLoad(name="firm", tier=0, users=1)
FLEX = TenantLoad(name="flex", tier=2, users=1)
LIMITED = TenantLoad(name="limited", tier=1, users=1, requests_per_s=1.0, rate_limited=True)
LOADS = (FIRM, FLEX, LIMITED)
EVENT = EventWindow(10.0, 20.0)
_ids = itertools.count()


def call(
    load: TenantLoad, at_s: float, status: int = 200, region: str | None = "us-west-2", **kwargs: object
) -> TenantCall:
    fields: dict[str, object] = {"precision": "fp32", "effects": (), "retry_after": None, **kwargs}
    return TenantCall(
        load.name,
        load.tier,
        f"r{next(_ids)}",
        2,
        "us-west-2",
        at_s,
        at_s + 0.05,
        status,
        region,
        **fields,  # type: ignore[arg-type]
    )


def healthy_run() -> list[TenantCall]:
    calls = [call(FIRM, t) for t in (1.0, 12.0, 25.0)]
    calls += [call(FLEX, 1.0), call(FLEX, 12.0, region="us-east-2", effects=("moved",)), call(FLEX, 25.0)]
    calls += [call(LIMITED, 1.0), call(LIMITED, 1.2, status=429, region=None, retry_after="1"), call(LIMITED, 2.5)]
    return calls


def rules(calls: list[TenantCall]) -> dict[str, int]:
    return judge_calls(calls, LOADS, "fp32", EVENT, replicas=1, lease_s=0.1).counts


def test_a_run_that_keeps_every_promise_breaks_no_rule() -> None:
    assert sum(rules(healthy_run()).values()) == 0


def test_tier0_moved_or_degraded_is_a_violation() -> None:
    moved = call(FIRM, 12.0, region="us-east-2", effects=("moved",))
    degraded = call(FIRM, 13.0, precision="int8", effects=("degraded",))
    assert rules([*healthy_run(), moved, degraded])[TenantRule.FIRM.value] == 2


def test_flexible_work_left_in_place_during_the_event_is_a_violation() -> None:
    stayed = call(FLEX, 15.0)
    assert rules([*healthy_run(), stayed])[TenantRule.FLEX.value] == 1
    degraded = call(FLEX, 16.0, precision="int8", effects=("degraded",))
    assert rules([*healthy_run(), degraded])[TenantRule.FLEX.value] == 0
    without = [c for c in healthy_run() if not (c.tenant == "flex" and 10.0 <= c.sent_s <= 20.0)]
    assert rules(without)[TenantRule.FLEX.value] == 1  # nothing shown under the event


def test_rate_limits_need_a_429_with_retry_after_and_no_more_than_the_bound() -> None:
    no_429 = [c for c in healthy_run() if c.status != 429]
    assert rules(no_429)[TenantRule.RATE.value] == 1
    bare = call(LIMITED, 1.3, status=429, region=None)
    assert rules([*healthy_run(), bare])[TenantRule.RATE.value] == 1
    flood = [call(LIMITED, 1.0 + i * 0.01) for i in range(10)]  # 10 passed in 0.1 s at 1/s: over 1 + 1 + 1
    assert rules([*healthy_run(), *flood])[TenantRule.RATE.value] == 1


def test_a_5xx_or_no_answer_is_never_acceptable_and_429_only_for_the_limited_tenant() -> None:
    bad = [call(FLEX, 3.0, status=503), call(LIMITED, 3.0, status=0), call(FIRM, 4.0, status=429, retry_after="1")]
    assert rules([*healthy_run(), *bad])[TenantRule.ANSWERED.value] == 3


def test_usage_reconciles_by_count_items_and_request_id() -> None:
    calls = healthy_run()
    usage = {load.name: answered_totals(calls, load.name) for load in LOADS}
    verdicts = judge_calls(calls, LOADS, "fp32", EVENT, 1, 0.1)
    table = reconcile(calls, usage, LOADS, verdicts)
    assert verdicts.total == 0
    assert table["limited"]["answered"] == table["limited"]["recorded"] == 2
    lost = dict(usage)
    lost["flex"] = UsageTotals(2, 4, frozenset(list(usage["flex"].request_ids)[:2]))
    reconcile(calls, lost, LOADS, verdicts)
    assert verdicts.counts[TenantRule.USAGE.value] == 1


def test_the_scenario_plan_has_a_firm_a_flexible_and_a_limited_tenant() -> None:
    plan = tenants_plan("tenants", "records.jsonl", "us-west-2", 2.0, "x")
    assert [(t.tier, t.rate_limited) for t in plan.tenants] == [(0, False), (2, False), (1, True)]
    assert len(plan.user_tenants()) == sum(t.users for t in plan.tenants)
    assert parse_effects("none") == ()
    assert parse_effects("moved,degraded") == ("moved", "degraded")
