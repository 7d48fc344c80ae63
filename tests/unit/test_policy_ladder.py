"""The magnitude ladder, battery and power model (pure): sequences of stress, hysteresis, floors, physics."""

from __future__ import annotations

from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fleet.config import FleetConfig
from fleet.errors import ConfigError
from fleet.loaders import load_fleet, parse_fleet
from fleet.power import BatteryConfig, BatteryDispatchConfig
from fleet.serving import Knobs, Precision
from policies.battery import BatteryState, deliverable_kwh, dispatch_kw, initial_state, integrate
from policies.calibration import Calibration, load_calibration
from policies.ladder import RegionDecision, RegionInputs, batch_policy_for_step, decide_region, knobs_for_step
from policies.load import RegionLoad
from policies.power import Lever, PowerInputs, estimate_power

HOUR = 3600.0


@pytest.fixture(scope="module")
def fleet() -> FleetConfig:
    return load_fleet()


@pytest.fixture(scope="module")
def calibration() -> Calibration:
    return load_calibration()


def _run(
    fleet: FleetConfig,
    calibration: Calibration,
    stresses: list[int],
    *,
    step_s: float = 300.0,
    region: str = "us-east-2",
    load: RegionLoad | None = None,
    limit_kw: float | None = None,
) -> list[RegionDecision]:
    """Decisions for a sequence of stress levels, one every `step_s` control-clock seconds."""
    decisions: list[RegionDecision] = []
    previous = None
    for index, stress in enumerate(stresses):
        inputs = RegionInputs(
            region=region,
            now_s=1_000_000.0 + index * step_s,
            stress_level=stress,
            headroom=0.6 if stress == 0 else 0.1,
            load=load or RegionLoad(),
            power_limit_kw=limit_kw,
        )
        previous = decide_region(inputs, previous, fleet.region(region), fleet, calibration)
        decisions.append(previous)
    return decisions


def _steps(decisions: list[RegionDecision]) -> list[int]:
    return [d.step for d in decisions]


# The ladder ---------------------------------------------------------------------------------------------------


def test_stress_rising_escalates_at_once(fleet: FleetConfig, calibration: Calibration) -> None:
    assert _steps(_run(fleet, calibration, [0, 1, 3, 3])) == [0, 1, 3, 3]


def test_recovery_is_one_rung_per_dwell(fleet: FleetConfig, calibration: Calibration) -> None:
    # Dwell 900 s, decisions every 300 s: calm must last 900 s before each rung down.
    steps = _steps(_run(fleet, calibration, [3] + [0] * 12))
    assert steps == [3, 3, 3, 3, 2, 2, 2, 1, 1, 1, 0, 0, 0]


def test_flapping_stress_holds_the_higher_rung(fleet: FleetConfig, calibration: Calibration) -> None:
    steps = _steps(_run(fleet, calibration, [1, 2] * 10))
    assert steps == [1] + [2] * 19  # never back to 1 while stress keeps returning to 2
    knobs = [d.knobs for d in _run(fleet, calibration, [2, 3] * 6)]
    assert len({k.model_dump_json() for k in knobs[1:]}) == 1  # the knobs do not oscillate either


def test_a_short_calm_spell_resets_the_dwell(fleet: FleetConfig, calibration: Calibration) -> None:
    # Two calm readings (600 s < 900 s dwell), stress again, then calm: the dwell starts over.
    steps = _steps(_run(fleet, calibration, [2, 0, 0, 2, 0, 0, 0, 0]))
    assert steps == [2, 2, 2, 2, 2, 2, 2, 1]


def test_rungs_degrade_by_class_with_measured_floors(fleet: FleetConfig, calibration: Calibration) -> None:
    defaults, policy = fleet.serving.knobs, fleet.policy
    rung = [knobs_for_step(step, defaults, policy, calibration) for step in policy.steps]
    # Rung 0 is the serving defaults; 1 moves tolerant work to bf16 (cheapest with mean cosine >= 0.99) and leaves
    # real-time work at fp32; 2 moves real-time work too. int8 (0.97) never qualifies for either.
    assert rung[0].precision_for("tolerant") is Precision.FP32
    assert rung[1].precision_for("tolerant") is Precision.BF16
    assert rung[1].precision_for("realtime") is Precision.FP32
    assert rung[2].precision_for("realtime") is Precision.BF16
    assert all(k.precision_for(c) is not Precision.INT8 for k in rung for c in ("tolerant", "realtime"))
    assert [k.max_batch_size for k in rung] == [16, 16, 8, 4]
    assert [k.max_concurrency for k in rung] == [32, 24, 16, 8]
    batch = [batch_policy_for_step(step, defaults, policy, calibration) for step in policy.steps]
    assert batch[1].precision is Precision.INT8  # batch work's floor (0.95) admits int8
    assert [b.may_run for b in batch] == [True, True, False, False]


def test_a_floor_is_never_crossed_even_when_a_cheaper_precision_exists(
    fleet: FleetConfig, calibration: Calibration
) -> None:
    strict = fleet.policy.model_copy(update={"quality_floor": {"realtime": 1.0, "tolerant": 0.99999, "batch": 0.5}})
    knobs = knobs_for_step(strict.steps[3], fleet.serving.knobs, strict, calibration)
    assert knobs.precision_for("realtime") is Precision.FP32  # nothing but fp32 reaches cosine 1.0
    assert knobs.precision_for("tolerant") is Precision.FP32  # bf16 measured 0.99995 < 0.99999


def test_a_ladder_that_degrades_realtime_first_is_refused(fleet: FleetConfig) -> None:
    data = fleet.model_dump(mode="json")
    data["policy"]["steps"][1]["degrade_classes"] = ["realtime"]
    with pytest.raises(ConfigError, match=r"policy.*real-time work must be degraded last"):
        parse_fleet(data, source="bad ladder")
    data = fleet.model_dump(mode="json")
    data["policy"]["steps"][2]["max_batch_size"] = 32
    with pytest.raises(ConfigError, match=r"policy"):
        parse_fleet(data, source="bad ladder")


def test_import_limit_climbs_a_rung_per_decision_until_met(fleet: FleetConfig, calibration: Calibration) -> None:
    # us-east-2 has no battery: only the ladder can bring it under the limit. Offered load keeps it busy.
    busy = RegionLoad(
        replicas=1, busy_cpu_s_per_s=1.0, busy_by_class={"tolerant": 0.7, "realtime": 0.3}, busy_by_precision={}
    )
    decisions = _run(fleet, calibration, [0] * 5, load=busy, limit_kw=1000.0)
    assert _steps(decisions) == [0, 1, 2, 3, 3]
    assert decisions[1].reason.startswith("grid draw")
    assert "import limit" in decisions[1].reason


# Battery -----------------------------------------------------------------------------------------------------

BATTERY = BatteryConfig(
    capacity_kwh=1000, max_power_kw=500, round_trip_efficiency=0.81, initial_soc=0.9, reserve_soc=0.2
)


def test_battery_losses_are_split_between_charge_and_discharge() -> None:
    state = BatteryState(soc_kwh=500.0, power_kw=100.0)
    after = integrate(BATTERY, state, HOUR)
    assert after.soc_kwh == pytest.approx(500 - 100 / 0.9)  # sqrt(0.81) = 0.9 on the way out
    charging = integrate(BATTERY, BatteryState(500.0, -100.0), HOUR)
    assert charging.soc_kwh == pytest.approx(500 + 100 * 0.9)


def test_battery_never_goes_below_its_reserve_or_above_capacity() -> None:
    drained = integrate(BATTERY, BatteryState(250.0, 500.0), 10 * HOUR)
    assert drained.soc_kwh == pytest.approx(200.0)
    assert drained.power_kw == pytest.approx(50 * 0.9 / 10)  # what it really delivered on average
    full = integrate(BATTERY, BatteryState(990.0, -500.0), HOUR)
    assert full.soc_kwh == pytest.approx(1000.0)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.tuples(st.floats(-800, 800), st.floats(1, 7200)), min_size=1, max_size=30),
    st.floats(200.0, 1000.0),
)
def test_battery_state_stays_within_reserve_and_capacity(steps: list[tuple[float, float]], soc: float) -> None:
    state = BatteryState(soc)
    for power, seconds in steps:
        state = integrate(BATTERY, BatteryState(state.soc_kwh, min(max(power, -500.0), 500.0)), seconds)
        assert 200.0 - 1e-6 <= state.soc_kwh <= 1000.0 + 1e-6


def test_dispatch_discharges_to_last_the_forecast_stress_and_never_exports() -> None:
    dispatch = BatteryDispatchConfig()
    state = initial_state(BATTERY)  # 900 kWh, reserve 200: 630 kWh deliverable after losses
    assert deliverable_kwh(BATTERY, state) == pytest.approx(630.0)
    power, why = dispatch_kw(
        BATTERY, dispatch, state, stress_level=3, headroom=0.1, site_kw=10_000, limit_kw=None, stressed_s_ahead=6 * HOUR
    )
    assert power == pytest.approx(105.0)  # 630 kWh over 6 forecast hours
    assert "6.0 h" in why
    power, _ = dispatch_kw(
        BATTERY, dispatch, state, stress_level=3, headroom=0.1, site_kw=80, limit_kw=None, stressed_s_ahead=0
    )
    assert power == pytest.approx(80.0)  # capped by what the site draws: no export
    power, why = dispatch_kw(
        BATTERY, dispatch, state, stress_level=0, headroom=0.1, site_kw=9_000, limit_kw=8_700, stressed_s_ahead=0
    )
    assert power == pytest.approx(300.0)  # the import limit's excess, even without stress
    assert "import limit" in why


def test_dispatch_recharges_only_in_headroom_windows_and_holds_the_reserve() -> None:
    dispatch = BatteryDispatchConfig()
    low = BatteryState(400.0)
    assert dispatch_kw(
        BATTERY, dispatch, low, stress_level=0, headroom=0.8, site_kw=1000, limit_kw=None, stressed_s_ahead=0
    )[0] == pytest.approx(-500.0)
    assert dispatch_kw(
        BATTERY, dispatch, low, stress_level=1, headroom=0.8, site_kw=1000, limit_kw=None, stressed_s_ahead=0
    )[0] == pytest.approx(0.0)
    at_reserve = BatteryState(200.0)
    power, why = dispatch_kw(
        BATTERY, dispatch, at_reserve, stress_level=3, headroom=0.0, site_kw=1000, limit_kw=None, stressed_s_ahead=0
    )
    assert power == 0.0
    assert "reserve" in why


# Power model -------------------------------------------------------------------------------------------------


def test_power_estimate_scales_measured_load_and_names_what_each_lever_could_shed(
    fleet: FleetConfig, calibration: Calibration
) -> None:
    region = fleet.region("us-west-1")  # 15 MW, PUE 1.2, idle 35 %
    load = RegionLoad(
        replicas=1,
        busy_cpu_s_per_s=0.5,
        busy_by_class={"tolerant": 0.3, "realtime": 0.2},
        busy_by_precision={"fp32": 0.5},
        mean_batch_requests=8,
    )
    inputs = PowerInputs(load=load, knobs=Knobs(), compute_cpus=1.0, running_batch_jobs=0)
    estimate = estimate_power(region, inputs, fleet.power, calibration, fleet.policy.quality_floor, 5000.0)
    idle_kw, dynamic_kw = 15_000 * 0.35, 15_000 * 0.65
    assert estimate.it_kw == pytest.approx(idle_kw + dynamic_kw * 0.5)
    assert estimate.site_kw == pytest.approx(estimate.it_kw * 1.2)
    assert estimate.baseline_kw == pytest.approx(estimate.site_kw)  # fp32, nothing moved: no control
    assert estimate.flexible_kw[Lever.SHIFT_AWAY] == pytest.approx(1.2 * dynamic_kw * 0.3)
    bf16_ratio = calibration.cost_ratio(Precision.BF16, Precision.FP32, 8)
    assert estimate.flexible_kw[Lever.REDUCE] == pytest.approx(1.2 * dynamic_kw * 0.5 * (1 - bf16_ratio))
    assert estimate.flexible_kw[Lever.BATTERY] == 5000.0
    # The same work at bf16 (as measured after degrading), with some of the origin's work moved elsewhere.
    degraded = replace(
        load,
        busy_cpu_s_per_s=0.5 * bf16_ratio,
        busy_by_class={"tolerant": 0.3 * bf16_ratio, "realtime": 0.2 * bf16_ratio},
        busy_by_precision={"bf16": 0.5 * bf16_ratio},
    )
    bf16_knobs = Knobs(class_precision={"tolerant": Precision.BF16, "realtime": Precision.BF16})
    moved = PowerInputs(degraded, bf16_knobs, 1.0, shifted_away_items_per_s=20.0, battery_kw=1000.0)
    after = estimate_power(region, moved, fleet.power, calibration, fleet.policy.quality_floor)
    fp32_item_s = calibration.cpu_ms_per_item(Precision.FP32, 8) / 1000
    assert after.baseline_kw == pytest.approx(1.2 * (idle_kw + dynamic_kw * (0.5 + 20 * fp32_item_s)))
    assert after.grid_kw == pytest.approx(after.site_kw - 1000.0)
    assert after.flexible_kw[Lever.REDUCE] == pytest.approx(0.0)  # already at the floors
    assert after.saved_kw > 0


def test_power_uses_measured_gpu_power_where_nvml_reports_it(fleet: FleetConfig, calibration: Calibration) -> None:
    load = RegionLoad(replicas=1, gpu_power_w=400.0, gpu_max_power_w=700.0, gpu_idle_power_w=100.0)
    inputs = PowerInputs(load=load, knobs=Knobs(), compute_cpus=1.0)
    estimate = estimate_power(fleet.region("us-east-2"), inputs, fleet.power, calibration, {})
    assert estimate.source == "nvml"
    assert estimate.utilization == pytest.approx(0.5)  # (400 - 100) / (700 - 100)


# The replayed heat wave ----------------------------------------------------------------------------------------


def test_heat_wave_steps_california_down_and_back_and_the_battery_carries_the_peak(
    fleet: FleetConfig, calibration: Calibration
) -> None:
    from fleet.times import utc_now_from
    from grid.context import load_context
    from policies.outlook import replay_policy

    context = load_context(fleet)
    start = int(utc_now_from("2022-09-05T18:00:00Z").timestamp())
    offered = RegionLoad(replicas=2, busy_cpu_s_per_s=1.0, busy_by_class={"tolerant": 0.6, "realtime": 0.4})
    hours = replay_policy(context, "us-west-1", range(start, start + 20 * 3600, 3600), calibration, offered=offered)
    steps = [h.decision.step for h in hours]
    stress = [h.stress_level for h in hours]
    # The evening of 5 September: stress climbs to emergency at 22:00 and holds through the night, clearing by 07:00.
    assert stress[4] == 3
    assert max(steps) == 3
    peak = [i for i, level in enumerate(stress) if level == 3]
    assert all(steps[i] == 3 for i in peak)
    assert steps[-1] < 3  # back down after the peak
    socs = [h.decision.battery.soc_kwh for h in hours if h.decision.battery is not None]
    discharging = [h.decision.battery.power_kw for h in hours if h.stress_level == 3 and h.decision.battery]
    assert all(power > 0 for power in discharging[:-1])  # carries load through the peak ...
    reserve = fleet.region("us-west-1").battery.reserve_soc * 20_000  # type: ignore[union-attr]
    assert min(socs) >= reserve - 1e-6  # ... never below the outage reserve
    assert socs[peak[-1]] < socs[peak[0]]
    grid = [h.decision.power for h in hours]
    assert all(p.grid_kw <= p.baseline_kw + 1e-6 for p in grid if p.battery_kw >= 0)
    assert all(set(p.flexible_kw) == set(Lever) for p in grid)
