"""Pure rules of the provider surface: flexibility tiers, the price formula over forecasts, quotes, rate limits."""

from __future__ import annotations

import functools

import numpy as np
import pytest

from fleet.loaders import load_fleet
from fleet.pricing import PricingConfig
from fleet.routing import RoutingMode, WorkloadClassConfig
from grid.context import FleetContext, load_context
from grid.forecast import SeasonalNaive
from policies.plan import HOUR_S
from policies.pricing import HourConditions, forecast_hours, tier_prices
from policies.quotes import QuoteRefused, quote_job
from policies.rate_limit import TenantLimiter
from policies.tiers import TierRefused, chosen_tier, tier_route

PEAK_S = 1_662_512_400  # 2022-09-07T01:00Z: CISO at stress 3
TOLERANT = WorkloadClassConfig(mode=RoutingMode.SHIFT, latency_budget_ms=150.0)
REALTIME = WorkloadClassConfig(mode=RoutingMode.STAY, latency_budget_ms=50.0)


@functools.cache
def _context() -> FleetContext:
    return load_context(load_fleet())


def test_a_tier_header_is_honoured_within_the_key_and_refused_above_it() -> None:
    assert chosen_tier(None, 1, 3) == 1
    assert chosen_tier(" 2 ", 1, 3) == 2
    with pytest.raises(TierRefused, match="tier 3 exceeds this key's maximum tier 2") as refused:
        chosen_tier("3", 1, 2)
    assert refused.value.forbidden
    for bad in ("4", "-1", "two", "1.5"):
        with pytest.raises(TierRefused) as refused:
            chosen_tier(bad, 1, 3)
        assert not refused.value.forbidden


def test_tiers_map_onto_modes_and_classes() -> None:
    firm = tier_route(0, "tolerant", TOLERANT, "firm")
    assert (firm.mode, firm.serve_as, firm.may_move, firm.may_degrade, firm.may_defer) == (
        RoutingMode.STAY,
        "firm",
        False,
        False,
        False,
    )
    movable = tier_route(1, "tolerant", TOLERANT, "firm")
    assert (movable.mode, movable.serve_as, movable.may_degrade) == (RoutingMode.SHIFT, "firm", False)
    degradable = tier_route(2, "tolerant", TOLERANT, "firm")
    assert (degradable.mode, degradable.serve_as, degradable.may_degrade) == (RoutingMode.SHIFT, "tolerant", True)
    assert tier_route(3, "tolerant", TOLERANT, "firm").may_defer
    # A real-time class stays whatever the tier: the stricter of class and tier decides.
    assert tier_route(3, "realtime", REALTIME, "firm").mode is RoutingMode.STAY
    # Without a firm class in the fleet, low tiers keep their own class (and say they may be degraded).
    assert tier_route(0, "tolerant", TOLERANT, None).serve_as == "tolerant"


def test_the_default_fleet_has_a_firm_class_the_ladder_never_degrades() -> None:
    fleet = load_fleet()
    assert fleet.tenants.firm_class == "firm"
    assert all("firm" not in step.degrade_classes for step in fleet.policy.steps)
    data = fleet.model_dump(mode="json")
    data["policy"]["quality_floor"]["firm"] = 0.99
    for step in data["policy"]["steps"]:
        if "realtime" in step["degrade_classes"]:  # the policy's own rule: real-time is degraded last
            step["degrade_classes"].append("firm")
    with pytest.raises(ValueError, match=r"tenants\.firm_class: 'firm' is degraded"):
        type(fleet).model_validate(data)


def test_the_price_formula_by_hand() -> None:
    pricing = PricingConfig()
    hour = HourConditions("r", 0, 80.0, True, 500.0, True, 2)
    grid = 80.0 / 1000 + 500.0 / 1e6 * 50.0  # USD per kWh: energy plus carbon
    tier0_1k = (0.01 + 0.02 * grid) * 1.3
    prices = tier_prices(hour, pricing)
    assert prices[0].usd_per_1k_items == pytest.approx(tier0_1k)
    assert prices[0].usd_per_job_hour == pytest.approx((0.5 + 0.4 * grid) * 1.3)
    assert [p.usd_per_1k_items for p in prices] == pytest.approx([tier0_1k * (1 - d) for d in (0, 0.05, 0.15, 0.3)])
    # Negative wholesale prices never pay the customer: energy counts as free, carbon still costs.
    negative = tier_prices(HourConditions("r", 0, -30.0, True, 500.0, True, 0), pricing)[0]
    assert negative.usd_per_1k_items == pytest.approx(0.01 + 0.02 * 500.0 / 1e6 * 50.0)


def test_a_discount_ladder_that_pays_less_for_more_flexibility_is_refused() -> None:
    with pytest.raises(ValueError, match="must not earn less"):
        PricingConfig(tier_discount=[0.0, 0.2, 0.1, 0.3])
    with pytest.raises(ValueError, match="expected 4 values"):
        PricingConfig(stress_markup=[0.0, 0.1])


def test_prices_come_from_the_forecast_never_the_actuals() -> None:
    context = _context()
    hours = forecast_hours(context.trace, context.fleet, "us-west-1", PEAK_S, 3)
    zone = context.fleet.region("us-west-1").zone_for("carbon_g_per_kwh")
    targets = np.array([h.at_s for h in hours], dtype=np.int64)
    expected = SeasonalNaive(24).forecast(context.trace, zone, "carbon_g_per_kwh", PEAK_S - HOUR_S, targets)
    assert [h.carbon_g_per_kwh for h in hours] == pytest.approx(list(expected))
    actual = [context.trace.latest(zone, "carbon_g_per_kwh", int(t)) for t in targets]
    assert [h.carbon_g_per_kwh for h in hours] != pytest.approx([a.value for a in actual if a is not None])
    # The packaged 2022 trace carries no wholesale price: the flat one stands in, and says so.
    assert not hours[0].wholesale_forecast
    assert hours[0].carbon_forecast
    # The stressed region costs more than the calm one at the same hour.
    calm = forecast_hours(context.trace, context.fleet, "us-west-2", PEAK_S, 1)[0]
    assert hours[0].stress_level > calm.stress_level
    pricing = context.fleet.pricing
    assert tier_prices(hours[0], pricing)[0].usd_per_1k_items > tier_prices(calm, pricing)[0].usd_per_1k_items


def test_a_later_deadline_never_costs_more_at_tier_3_and_impossible_deadlines_are_named() -> None:
    context = _context()
    pricing = context.fleet.pricing
    hours = forecast_hours(context.trace, context.fleet, "us-west-1", PEAK_S, 48)
    deadlines = [PEAK_S + 5 * HOUR_S, PEAK_S + 12 * HOUR_S, PEAK_S + 24 * HOUR_S]
    quotes = quote_job(PEAK_S, 4 * HOUR_S, deadlines, 3, hours, pricing)
    costs = [q.usd for q in quotes]
    assert costs[0] >= costs[1] >= costs[2] - 1e-9
    assert costs[2] < quotes[2].run_now_usd  # waiting out the heat wave's evening peak saves money
    assert all(q.finish_s <= d for q, d in zip(quotes, deadlines, strict=True))
    firm = quote_job(PEAK_S, 4 * HOUR_S, deadlines, 0, hours, pricing)
    assert {q.intervals for q in firm} == {((PEAK_S, PEAK_S + 4 * HOUR_S),)}  # tier 0 is never deferred
    with pytest.raises(QuoteRefused, match="no plan can meet it") as refused:
        quote_job(PEAK_S, 4 * HOUR_S, [PEAK_S + 5 * HOUR_S, PEAK_S + 3 * HOUR_S], 3, hours, pricing)
    assert refused.value.field == "deadlines.1"
    with pytest.raises(QuoteRefused, match="quote horizon") as refused:
        quote_job(PEAK_S, HOUR_S, [PEAK_S + 200 * HOUR_S], 3, hours, pricing)
    assert refused.value.field == "deadlines.0"


def test_the_rate_limiter_refuses_past_the_rate_and_names_the_wait() -> None:
    limiter = TenantLimiter.for_rates(requests_per_s=2.0, items_per_s=100.0, max_items_per_call=10)
    assert limiter.admit(1, 0.0) == 0.0
    assert limiter.admit(1, 0.0) == 0.0
    assert limiter.admit(1, 0.0) == pytest.approx(0.5)  # the third call in the same instant waits half a second
    assert limiter.admit(1, 0.5) == 0.0
    items = TenantLimiter.for_rates(requests_per_s=100.0, items_per_s=10.0, max_items_per_call=10)
    assert items.admit(10, 0.0) == 0.0
    assert items.admit(5, 0.0) == pytest.approx(0.5)  # refused calls take nothing
    assert items.admit(5, 0.5) == 0.0
