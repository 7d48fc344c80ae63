"""Headroom and stress: components, missing signals drop out, staleness decays, DR events override."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fleet.events import DREvent, active_event_level
from fleet.headroom import HeadroomConfig, HeadroomWeights
from grid.headroom import GridSignals, assess, components, stress_from_headroom, trust_after
from grid.trace import Observation

AT = 1_662_512_400  # 2022-09-07T01:00Z
CONFIG = HeadroomConfig()


def _obs(value: float, age_s: int = 0) -> Observation:
    return Observation(value, AT - age_s)


def test_demand_at_its_recent_peak_has_no_capacity_headroom_and_is_an_emergency() -> None:
    signals = GridSignals(AT, demand_mw=_obs(51_104), reference_peak_mw=46_000, carbon_g_per_kwh=_obs(250))
    result = assess(signals, CONFIG)
    capacity = next(c for c in result.components if c.name == "capacity")
    assert capacity.raw == 0.0
    assert result.reliability_headroom == 0.0
    assert result.grid_stress == 3
    assert result.stress_level == 3
    # Carbon alone keeps some headroom, but less than a calm, clean grid has.
    calm = assess(GridSignals(AT, demand_mw=_obs(7_700), reference_peak_mw=10_500, carbon_g_per_kwh=_obs(40)), CONFIG)
    assert calm.stress_level == 0
    assert calm.headroom > result.headroom + 0.3


def test_capacity_component_is_linear_between_span_and_peak() -> None:
    terms = components(GridSignals(AT, demand_mw=_obs(80), reference_peak_mw=100), CONFIG)
    assert [t.name for t in terms] == ["capacity"]
    assert terms[0].raw == pytest.approx((1 - 0.8) / CONFIG.capacity_span)
    assert components(GridSignals(AT, demand_mw=_obs(10), reference_peak_mw=100), CONFIG)[0].raw == 1.0


def test_missing_signals_drop_out_instead_of_counting_as_zero() -> None:
    only_carbon = assess(GridSignals(AT, carbon_g_per_kwh=_obs(50)), CONFIG)
    assert [c.name for c in only_carbon.components] == ["carbon"]
    assert only_carbon.headroom == 1.0  # the cleanest grid, and nothing else known against it
    assert only_carbon.reliability_headroom is None
    assert only_carbon.grid_stress == 0  # no adequacy signal: no evidence of stress
    nothing = assess(GridSignals(AT), CONFIG)
    assert nothing.components == ()
    assert nothing.headroom == CONFIG.stale_headroom  # unknown grid: conservative, not zero, not one


def test_demand_above_day_ahead_forecast_lowers_headroom() -> None:
    on_plan = components(GridSignals(AT, demand_mw=_obs(100), demand_forecast_mw=_obs(100)), CONFIG)
    over = components(GridSignals(AT, demand_mw=_obs(108), demand_forecast_mw=_obs(100)), CONFIG)
    assert on_plan[0].raw == 1.0
    assert over[0].name == "forecast"
    assert over[0].raw == pytest.approx(1 - 0.08 / CONFIG.forecast_error_span)


def test_price_maps_negative_to_full_and_scarcity_to_zero() -> None:
    cheap = components(GridSignals(AT, price_usd_per_mwh=_obs(-20)), CONFIG)[0]
    dear = components(GridSignals(AT, price_usd_per_mwh=_obs(900)), CONFIG)[0]
    assert (cheap.raw, dear.raw) == (1.0, 0.0)


def test_stale_signals_decay_toward_the_conservative_value() -> None:
    fresh = assess(GridSignals(AT, carbon_g_per_kwh=_obs(50, age_s=1800)), CONFIG)
    assert not fresh.stale
    ages = [int(CONFIG.fresh_for_s) + hours * 3600 for hours in (1, 3, 12, 48)]
    values = [assess(GridSignals(AT, carbon_g_per_kwh=_obs(50, age_s=age)), CONFIG).headroom for age in ages]
    assert all(a > b for a, b in itertools.pairwise(values))
    assert values[0] == pytest.approx(CONFIG.stale_headroom + 0.5 * (1 - CONFIG.stale_headroom))
    assert values[-1] == pytest.approx(CONFIG.stale_headroom, abs=1e-6)
    # A dirty grid's stale headroom rises toward the conservative value too: stale means "don't know".
    dirty = assess(GridSignals(AT, carbon_g_per_kwh=_obs(600, age_s=ages[-1])), CONFIG)
    assert dirty.headroom == pytest.approx(CONFIG.stale_headroom, abs=1e-6)
    assert dirty.stale


def test_trust_is_one_while_fresh_then_halves_per_decay_period() -> None:
    assert trust_after(0, CONFIG) == 1.0
    assert trust_after(CONFIG.fresh_for_s, CONFIG) == 1.0
    assert trust_after(CONFIG.fresh_for_s + CONFIG.stale_decay_s, CONFIG) == pytest.approx(0.5)


@pytest.mark.parametrize(("headroom", "level"), [(0.9, 0), (0.25, 0), (0.24, 1), (0.11, 2), (0.019, 3), (0.0, 3)])
def test_stress_thresholds(headroom: float, level: int) -> None:
    assert stress_from_headroom(headroom, CONFIG) == level


def test_dr_event_overrides_stress_and_caps_headroom() -> None:
    signals = GridSignals(AT, demand_mw=_obs(50), reference_peak_mw=100, carbon_g_per_kwh=_obs(50))
    calm = assess(signals, CONFIG)
    assert calm.stress_level == 0
    assert calm.headroom > 0.9
    emergency = assess(signals, CONFIG, event_level=3)
    assert emergency.stress_level == 3
    assert emergency.grid_stress == 0
    assert emergency.headroom == 0.0
    assert emergency.grid_headroom == calm.headroom
    # An operator's level-0 event overrides a stressed grid too (e.g. a utility says all clear).
    stressed = GridSignals(AT, demand_mw=_obs(100), reference_peak_mw=100)
    assert assess(stressed, CONFIG).stress_level == 3
    assert assess(stressed, CONFIG, event_level=0).stress_level == 0


def test_trace_dr_level_acts_as_an_event_while_fresh() -> None:
    signals = GridSignals(AT, carbon_g_per_kwh=_obs(50), dr_level=_obs(2))
    assert assess(signals, CONFIG).stress_level == 2
    old = GridSignals(AT, carbon_g_per_kwh=_obs(50), dr_level=_obs(2, age_s=int(CONFIG.fresh_for_s) + 1))
    assert assess(old, CONFIG).stress_level == 0  # an old event row is not an active event


def test_active_event_level_respects_window_and_region() -> None:
    events = [
        DREvent(region="us-west-1", level=2, start="2022-09-07T00:00:00Z", end="2022-09-07T02:00:00Z"),
        DREvent(region="us-west-1", level=3, start="2022-09-07T01:00:00Z", end="2022-09-07T01:30:00Z"),
    ]
    assert active_event_level(events, "us-west-1", AT) == 3
    assert active_event_level(events, "us-west-1", AT + 1800) == 2  # end is exclusive
    assert active_event_level(events, "us-west-1", AT + 3600) is None
    assert active_event_level(events, "us-west-2", AT) is None


def test_event_validation() -> None:
    with pytest.raises(ValueError, match="must be after start"):
        DREvent(region="r", level=1, start="2022-09-07T02:00:00Z", end="2022-09-07T01:00:00Z")
    with pytest.raises(ValueError, match="less than or equal to 3"):
        DREvent(region="r", level=4, start="2022-09-07T00:00:00Z", end="2022-09-07T01:00:00Z")


@settings(max_examples=200, deadline=None)
@given(
    demand=st.floats(0, 2e5),
    peak=st.floats(1, 2e5),
    forecast=st.one_of(st.none(), st.floats(1, 2e5)),
    carbon=st.one_of(st.none(), st.floats(0, 2000)),
    price=st.one_of(st.none(), st.floats(-500, 5000)),
    age=st.integers(0, 10 * 86400),
    event=st.one_of(st.none(), st.integers(0, 3)),
    weights=st.tuples(*[st.floats(0, 1)] * 4).filter(lambda w: sum(w) > 0.01),
)
def test_headroom_is_always_in_unit_interval_and_stress_in_scale(
    demand: float,
    peak: float,
    forecast: float | None,
    carbon: float | None,
    price: float | None,
    age: int,
    event: int | None,
    weights: tuple[float, float, float, float],
) -> None:
    config = HeadroomConfig(
        weights=HeadroomWeights(capacity=weights[0], forecast=weights[1], carbon=weights[2], price=weights[3])
    )
    signals = GridSignals(
        AT,
        demand_mw=_obs(demand, age),
        reference_peak_mw=peak,
        demand_forecast_mw=None if forecast is None else _obs(forecast, age),
        carbon_g_per_kwh=None if carbon is None else _obs(carbon, age),
        price_usd_per_mwh=None if price is None else _obs(price, age),
    )
    result = assess(signals, config, event)
    assert 0.0 <= result.headroom <= 1.0
    assert 0.0 <= result.grid_headroom <= 1.0
    assert result.stress_level in (0, 1, 2, 3)
    assert result.headroom <= result.grid_headroom
    if event is not None:
        assert result.stress_level == event


def test_open_ended_event_lasts_until_cleared() -> None:
    event = DREvent(region="r", level=2, start="2022-09-07T00:00:00Z")
    assert active_event_level([event], "r", AT + 10 * 365 * 86400) == 2
    assert active_event_level([event], "r", AT - 3601) is None
