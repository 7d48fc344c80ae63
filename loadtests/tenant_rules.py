"""The two-tenant load test's rules: tiers under a DR event, rate limits with Retry-After, usage that reconciles.

Pure: calls (loadtests/tenant_plan.py), the DR event's window from the runner's action log, and the usage totals the
gateway reported come in; verdicts go out. Each rule is a stable name that starts its violation messages.

- `tenant_answered`: a call got no answer or a 5xx, or a tenant within its limit got anything but 200;
- `tier0_firm`: a tier-0 answer was moved, degraded or deferred (its region, precision or effects header);
- `flex_yields`: a tier 2-3 answer sent while the event held at its origin was neither moved, degraded nor deferred,
  or no such answer came at all;
- `rate_limited`: the limited tenant saw no 429, a 429 came without a whole-second Retry-After, or more of its calls
  passed than the cluster-wide bound allows;
- `usage_reconciles`: a tenant's usage (requests, items, request ids) differs from the answers its users saw.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum

from loadtests.tenant_plan import TenantCall, TenantLoad

YIELDS = frozenset({"moved", "degraded", "deferred"})
MAX_MESSAGES = 5  # per rule: the first few tell the story


class TenantRule(StrEnum):
    ANSWERED = "tenant_answered"
    FIRM = "tier0_firm"
    FLEX = "flex_yields"
    RATE = "rate_limited"
    USAGE = "usage_reconciles"


@dataclass(frozen=True)
class EventWindow:
    """When the DR event held, as the runner logged it: from its acknowledgement plus the reaction allowance (the
    gateways route on it within a refresh) to when its clearing was sent."""

    start_s: float
    end_s: float


@dataclass(frozen=True)
class UsageTotals:
    requests: int
    items: int
    request_ids: frozenset[str]


@dataclass
class TenantVerdicts:
    counts: dict[str, int] = field(default_factory=lambda: {rule.value: 0 for rule in TenantRule})
    messages: dict[str, list[str]] = field(default_factory=dict)

    def add(self, rule: TenantRule, message: str) -> None:
        self.counts[rule.value] += 1
        kept = self.messages.setdefault(rule.value, [])
        if len(kept) < MAX_MESSAGES:
            kept.append(f"{rule.value}: {message}")

    @property
    def total(self) -> int:
        return sum(self.counts.values())


def limit_bound(load: TenantLoad, span_s: float, replicas: int, lease_s: float) -> float:
    """The most calls the cluster may admit for a limited tenant over `span_s` (docs/tenants.md#rate-limits)."""
    rate = load.requests_per_s or 0.0
    return rate * span_s + max(1.0, rate) + replicas * max(1.0, rate * lease_s)


def judge_calls(
    calls: Sequence[TenantCall],
    loads: Sequence[TenantLoad],
    full_precision: str,
    event: EventWindow | None,
    replicas: int,
    lease_s: float,
) -> TenantVerdicts:
    """Every rule but the usage reconciliation, over the run's calls."""
    verdicts = TenantVerdicts()
    by_name = {load.name: load for load in loads}
    yielded_under_event = 0
    for call in calls:
        load = by_name[call.tenant]
        if call.status == 0 or call.status >= 500 or (not load.rate_limited and not call.ok):
            verdicts.add(TenantRule.ANSWERED, f"{call.tenant} {call.request_id}: HTTP {call.status}")
        if call.status == 429 and not (call.retry_after or "").isdigit():
            verdicts.add(TenantRule.RATE, f"{call.tenant} {call.request_id}: 429 without Retry-After seconds")
        if not call.ok:
            continue
        if call.tier == 0 and (call.region != call.origin or call.precision != full_precision or call.effects):
            verdicts.add(
                TenantRule.FIRM,
                f"{call.tenant} {call.request_id}: served in {call.region} at {call.precision}, effects "
                f"{list(call.effects)} (origin {call.origin}, full precision {full_precision})",
            )
        if call.tier >= 2 and event is not None and event.start_s <= call.sent_s and call.done_s <= event.end_s:
            if YIELDS & set(call.effects):
                yielded_under_event += 1
            else:
                verdicts.add(
                    TenantRule.FLEX,
                    f"{call.tenant} {call.request_id}: served in {call.region} at {call.precision} during the DR "
                    f"event at its origin {call.origin}, neither moved, degraded nor deferred",
                )
    if event is not None and any(load.tier >= 2 for load in loads) and yielded_under_event == 0:
        verdicts.add(TenantRule.FLEX, "no tier 2-3 call was answered while the DR event held: nothing shown")
    for load in loads:
        if not load.rate_limited:
            continue
        mine = [call for call in calls if call.tenant == load.name]
        passed = [call for call in mine if call.ok]
        if not any(call.status == 429 for call in mine):
            verdicts.add(TenantRule.RATE, f"{load.name}: offered above its limit, never answered 429")
        if passed:
            span_s = max(call.done_s for call in passed) - min(call.sent_s for call in mine)
            bound = limit_bound(load, span_s, replicas, lease_s)
            if len(passed) > bound:
                verdicts.add(
                    TenantRule.RATE,
                    f"{load.name}: {len(passed)} calls passed in {span_s:.1f} s, over the bound {bound:.1f} at "
                    f"{load.requests_per_s} requests/s across {replicas} replica(s)",
                )
    return verdicts


def answered_totals(calls: Sequence[TenantCall], tenant: str) -> UsageTotals:
    """What a tenant's users saw answered: the usage it must have been charged."""
    ok = [call for call in calls if call.tenant == tenant and call.ok]
    return UsageTotals(len(ok), sum(call.items for call in ok), frozenset(call.request_id for call in ok))


def reconcile(
    calls: Sequence[TenantCall], usage: Mapping[str, UsageTotals], loads: Sequence[TenantLoad], verdicts: TenantVerdicts
) -> dict[str, dict[str, int]]:
    """Compare each tenant's recorded usage with its answered calls; returns the table for the report."""
    table: dict[str, dict[str, int]] = {}
    for load in loads:
        seen = answered_totals(calls, load.name)
        recorded = usage.get(load.name, UsageTotals(0, 0, frozenset()))
        table[load.name] = {
            "answered": seen.requests,
            "answered_items": seen.items,
            "recorded": recorded.requests,
            "recorded_items": recorded.items,
            "unrecorded": len(seen.request_ids - recorded.request_ids),
            "recorded_unseen": len(recorded.request_ids - seen.request_ids),
        }
        if (seen.requests, seen.items) != (
            recorded.requests,
            recorded.items,
        ) or seen.request_ids != recorded.request_ids:
            verdicts.add(TenantRule.USAGE, f"{load.name}: {table[load.name]}")
    return table
