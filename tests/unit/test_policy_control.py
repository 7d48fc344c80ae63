"""The policy in the control plane and at the replicas, Ray-free: leases, safe fallbacks, batch gating, load."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import numpy as np
import pytest

from fleet.clock import FixedClock
from fleet.errors import ConfigError
from fleet.events import DREvent
from fleet.loaders import load_fleet
from fleet.serving import Knobs, Precision
from grid.context import FleetContext, load_context
from policies.batch_gate import JobProgress
from policies.calibration import Calibration, costlier_than_fp32, load_calibration
from policies.control import ControlPlane
from policies.control_state import GatewayLoad
from policies.knob_leases import KnobsLease, KnobSource
from policies.ladder import RegionDecision, decide_fleet
from policies.load import LoadBook, ReplicaReport
from serve_apps.nvml import open_gpu_power
from serve_apps.regional import RegionalModel

PEAK_S = 1662512400  # 2022-09-07T01:00:00Z: us-west-1 (CISO) at stress 3, us-west-2 calm


@pytest.fixture(scope="module")
def context() -> FleetContext:
    return load_context(load_fleet())


@pytest.fixture(scope="module")
def calibration() -> Calibration:
    return load_calibration()


def _plane(context: FleetContext) -> tuple[ControlPlane, FixedClock]:
    wall = FixedClock(1000.0)
    return ControlPlane(context, FixedClock(PEAK_S), wall), wall


def _decide(plane: ControlPlane, calibration: Calibration) -> dict[str, RegionDecision]:
    """One policy period, as the policy actor runs it."""
    decisions = decide_fleet(plane.policy_inputs(), plane.decisions, plane.fleet, calibration)
    plane.publish_policy(decisions, calibration)
    return decisions


def _report(region: str, wall_s: float, items: int, cpu_s: float, replica: str = "r1") -> ReplicaReport:
    return ReplicaReport(
        region=region,
        replica_id=replica,
        wall_s=wall_s,
        requests=items,
        items=items,
        batches=items // 4,
        batched_requests=items,
        busy_cpu_s_by_class={"tolerant": cpu_s},
        busy_cpu_s_by_precision={"fp32": cpu_s},
        queued=1,
        in_flight=2,
    )


def test_replicas_run_defaults_until_the_policy_decides_then_its_knobs(
    context: FleetContext, calibration: Calibration
) -> None:
    plane, _ = _plane(context)
    lease = plane.regional_sync(_report("us-west-1", 999.0, 0, 0.0))
    assert lease.source == KnobSource.DEFAULTS
    assert lease.knobs == plane.fleet.serving.knobs
    decisions = _decide(plane, calibration)
    assert decisions["us-west-1"].step == 3  # emergency in California at the peak
    assert decisions["us-west-2"].step == 0
    lease = plane.regional_sync(_report("us-west-1", 1000.0, 0, 0.0))
    assert lease.source == KnobSource.POLICY
    assert lease.knobs.precision_for("tolerant") is Precision.BF16
    assert lease.knobs.max_batch_size == 4
    state = plane.state()
    assert state is not None
    assert state.knob_sources["us-west-1"] == KnobSource.POLICY
    assert state.knobs["us-west-1"].max_batch_size == 4


def test_a_silent_policy_falls_back_to_safe_defaults(context: FleetContext, calibration: Calibration) -> None:
    plane, wall = _plane(context)
    _decide(plane, calibration)
    version = plane.state()
    assert version is not None
    wall.advance(plane.fleet.policy.fallback_after_s + 1)
    lease = plane.knobs_lease("us-west-1")
    assert lease.source == KnobSource.DEFAULTS
    assert "policy silent" in lease.reason
    newer = plane.state(version.version)
    assert newer is not None  # the fallback is a routing-relevant change: a new version
    assert newer.knobs["us-west-1"] == plane.fleet.serving.knobs


def test_an_operator_pin_wins_over_the_policy(context: FleetContext, calibration: Calibration) -> None:
    plane, _ = _plane(context)
    _decide(plane, calibration)
    pinned = Knobs(max_batch_size=2, max_concurrency=2)
    plane.set_knobs("us-west-1", pinned)
    assert plane.knobs_lease("us-west-1") == KnobsLease(pinned, KnobSource.OPERATOR, "pinned by an operator")
    plane.set_knobs("us-west-1", None)
    assert plane.knobs_lease("us-west-1").source == KnobSource.POLICY


def test_batch_runners_pause_where_the_policy_says_and_run_again_when_it_goes_stale(
    context: FleetContext, calibration: Calibration
) -> None:
    plane, wall = _plane(context)
    # A job in calm Oregon with a far deadline; the policy at rung 2 would pause it even without grid stress.
    progress = JobProgress("job-1", "us-west-2", "carbon", PEAK_S + 7 * 86_400, "running", 0, 1000, 50.0)
    _decide(plane, calibration)
    decision = plane.decisions["us-west-2"]
    plane.decisions["us-west-2"] = RegionDecision(
        **{**decision.__dict__, "step": 2, "batch": decision.batch.__class__(8, Precision.INT8, False)}
    )
    answer = plane.batch_gate(progress)
    assert not answer.run
    assert answer.reason.startswith("policy: batch paused at rung 2")
    wall.advance(plane.fleet.policy.fallback_after_s + 1)
    answer = plane.batch_gate(progress)
    assert "policy" not in answer.reason  # the stale decision no longer holds the job
    assert answer.knobs.precision == "fp32"  # safe defaults: full quality


def test_policy_inputs_carry_load_limits_jobs_and_moved_work(context: FleetContext) -> None:
    plane, wall = _plane(context)
    plane.regional_sync(_report("us-west-2", 996.0, 0, 0.0))
    plane.regional_sync(_report("us-west-2", 1000.0, 200, 2.0))
    plane.report("gw", GatewayLoad({"us-west-2": 3}, frozenset(), {"us-west-1": 12.5}))
    plane.post_event(DREvent(region="us-west-1", power_limit_kw=9000, start="2022-09-07T00:00:00Z"))
    plane.batch_report(JobProgress("j", "us-west-1", "carbon", PEAK_S + 86_400, "paused", 0, 10, 1.0))
    inputs = plane.policy_inputs()
    west2 = inputs["us-west-2"]
    assert west2.load.items_per_s == pytest.approx(50.0)
    assert west2.load.busy_cpu_s_per_s == pytest.approx(0.5)
    assert west2.load.queued == 1
    west1 = inputs["us-west-1"]
    assert west1.power_limit_kw == 9000
    assert west1.shifted_away_items_per_s == 12.5
    assert west1.deferred_batch_jobs == 1
    assert west1.stress_level == 3  # a limit-only event leaves the grid's own stress level alone
    assert west1.stressed_s_ahead >= 0.0
    wall.advance(10.0)
    assert plane.policy_inputs()["us-west-2"].load.replicas == 0  # a silent replica drops out


def test_telemetry_shows_power_battery_and_calibration_with_units(
    context: FleetContext, calibration: Calibration
) -> None:
    plane, _ = _plane(context)
    _decide(plane, calibration)
    telemetry = plane.telemetry()
    json.dumps(telemetry)  # JSON-able as served
    west1 = telemetry["regions"]["us-west-1"]  # type: ignore[index]
    policy = west1["policy"]
    assert policy["step"] == 3
    assert policy["battery"]["power_kw"] > 0  # discharging in the emergency
    assert set(policy["power"]["flexible_kw"]) == {"shift_away", "defer", "reduce", "battery"}
    assert policy["power"]["grid_kw"] < policy["power"]["site_kw"]
    assert telemetry["calibration"]["quality"]["bf16"]["mean_cosine_to_fp32"] > 0.999  # type: ignore[index]


# Load from counters ----------------------------------------------------------------------------------------------


def test_load_book_rates_come_from_counters_and_survive_a_replica_restart() -> None:
    book = LoadBook(window_s=5.0, ttl_s=5.0)
    book.add(_report("r", 0.0, 0, 0.0))
    book.add(_report("r", 2.0, 40, 0.4))
    assert book.region("r", 2.0).items_per_s == pytest.approx(20.0)
    book.add(_report("r", 4.0, 10, 0.1))  # restarted: counters went back; no negative work
    assert book.region("r", 4.0).items_per_s >= 0.0
    book.add(_report("r", 10.0, 70, 0.7, replica="r2"))
    assert book.region("r", 10.0).replicas == 1  # r1 expired, r2 has one report


# Calibration ----------------------------------------------------------------------------------------------------


def test_calibration_interpolates_and_refuses_a_broken_file(calibration: Calibration, tmp_path: Path) -> None:
    low, high = calibration.cpu_ms_per_item(Precision.FP32, 8), calibration.cpu_ms_per_item(Precision.FP32, 16)
    assert min(low, high) <= calibration.cpu_ms_per_item(Precision.FP32, 11) <= max(low, high)
    assert calibration.cpu_ms_per_item(Precision.FP32, 1000) == calibration.cpu_ms_per_item(Precision.FP32, 32)
    assert calibration.cheapest_meeting(0.99, 8) is Precision.BF16
    assert calibration.cheapest_meeting(0.95, 8) is Precision.INT8
    assert calibration.cheapest_meeting(1.0, 8) is Precision.FP32
    bad = tmp_path / "calibration.json"
    data = json.loads(calibration.model_dump_json(by_alias=True))
    del data["quality"]["int8"]
    bad.write_text(json.dumps(data))
    with pytest.raises(ConfigError, match="no quality measured for int8"):
        load_calibration(bad)
    with pytest.raises(ConfigError, match=r"policy\.calibration_file: cannot read"):
        load_calibration(tmp_path / "missing.json")


# The regional replica's side ----------------------------------------------------------------------------------------


class _StubEmbedder:
    """Answers a constant per precision, so a test can see which precision each request ran at."""

    model_name = "stub"
    max_input_tokens = 8
    dimensions = 2

    def __init__(self, torch_threads: int = 1) -> None:
        del torch_threads

    def embed(self, texts: list[str], precision: Precision) -> np.ndarray:
        value = {"fp32": 1.0, "bf16": 2.0, "int8": 3.0}[Precision(precision).value]
        return np.full((len(texts), 2), value, dtype=np.float32)

    def count_tokens(self, texts: list[str]) -> int:
        return len(texts)


def test_a_replica_applies_leases_runs_classes_at_their_precision_and_falls_back_when_cut_off() -> None:
    async def scenario() -> None:
        clock = FixedClock(0.0)
        answers: list[KnobsLease | Exception] = []
        reports: list[ReplicaReport] = []

        async def sync(report: ReplicaReport) -> KnobsLease:
            reports.append(report)
            answer = answers.pop(0)
            if isinstance(answer, Exception):
                raise answer
            return answer

        model = RegionalModel(
            "us-west-1",
            f"{__name__}:_StubEmbedder",
            {},
            "stub",
            0.005,
            1,
            knob_refresh_s=None,  # the test drives sync_once itself
            fallback_after_s=10.0,
            knob_sync=sync,
            monotonic_s=clock.now_s,
        )
        degraded = Knobs(max_batch_size=4, max_concurrency=8, class_precision={"tolerant": Precision.BF16})
        answers.append(KnobsLease(degraded, "policy", "rung 3"))
        await model.sync_once()
        assert model.stats()["knobs"]["max_batch_size"] == 4
        results = await model.run_batch([(["a", "b"], "tolerant"), (["c"], "realtime")])
        assert [precision for _, precision in results] == ["bf16", "fp32"]
        assert results[0][0].tolist() == [[2.0, 2.0], [2.0, 2.0]]
        answers.append(RuntimeError("control actor restarting"))
        clock.advance(5.0)
        await model.sync_once()
        assert model.knob_source == "policy"  # a short outage keeps the lease
        answers.append(RuntimeError("still gone"))
        clock.advance(6.0)
        await model.sync_once()
        assert model.knob_source == "configured"  # 11 s without an answer: safe defaults
        assert model.stats()["knobs"] == Knobs().model_dump(mode="json")
        assert reports[-1].busy_cpu_s_by_class.keys() == {"tolerant", "realtime"}
        assert reports[-1].batches == 1

    asyncio.run(scenario())


def test_gpu_power_reads_nvml_when_present_and_is_absent_otherwise() -> None:
    class FakeNvml:
        readings = iter([250_000, 90_000, 300_000])

        @staticmethod
        def nvmlInit() -> None:
            return None

        @staticmethod
        def nvmlDeviceGetCount() -> int:
            return 1

        @staticmethod
        def nvmlDeviceGetHandleByIndex(index: int) -> int:
            return index

        @classmethod
        def nvmlDeviceGetPowerUsage(cls, handle: int) -> int:
            del handle
            return next(cls.readings)

        @staticmethod
        def nvmlDeviceGetEnforcedPowerLimit(handle: int) -> int:
            del handle
            return 700_000

    meter = open_gpu_power(FakeNvml)  # type: ignore[arg-type]
    assert meter is not None
    first, second, third = meter.read(), meter.read(), meter.read()
    assert first is not None
    assert first.power_w == 250.0
    assert first.limit_w == 700.0
    assert second is not None
    assert third is not None
    assert third.idle_w == 90.0  # the lowest reading so far is the idle floor
    assert open_gpu_power() is None  # no pynvml or no GPU on this machine: the CPU estimate stands


def test_a_utility_price_signal_replaces_the_regions_price_while_active(context: FleetContext) -> None:
    from fleet.events import GridSignal

    # The default 2022 trace has no prices: the signal adds the price component to the headroom formula.
    plane, _ = _plane(context)
    before = plane.state()
    assert before is not None
    west2 = next(r for r in before.snapshot.regions if r.config.name == "us-west-2")
    assert west2.signals.price_usd_per_mwh is None
    signal = GridSignal("sig-1", "us-west-2", "price", 240.0, "USD/MWh", 2, PEAK_S - 60, PEAK_S + 3600, "vtn")
    plane.set_grid_signal(signal)
    after = plane.state(before.version)
    assert after is not None
    west2 = next(r for r in after.snapshot.regions if r.config.name == "us-west-2")
    assert west2.signals.price_usd_per_mwh is not None
    assert west2.signals.price_usd_per_mwh.value == 240.0
    assert any(c.name == "price" for c in west2.assessment.components)
    assert (
        west2.assessment.headroom
        < next(r for r in before.snapshot.regions if r.config.name == "us-west-2").assessment.headroom
    )
    # In another currency it cannot enter the formula; expired, it no longer applies.
    plane.clear_grid_signal("sig-1")
    plane.set_grid_signal(GridSignal("sig-2", "us-west-2", "price", 2.0, "EUR/kWh", None, PEAK_S, None, "vtn"))
    plane.set_grid_signal(
        GridSignal("sig-3", "us-west-1", "ghg", 100.0, "gCO2/kWh", 0, PEAK_S - 7200, PEAK_S - 3600, "v")
    )
    state = plane.state()
    assert state is not None
    assert all(r.signals.price_usd_per_mwh is None for r in state.snapshot.regions)


def test_a_lower_precision_that_costs_more_than_fp32_here_is_served_as_fp32() -> None:
    probe = {Precision.FP32: 0.010, Precision.BF16: 0.060, Precision.INT8: 0.004}
    assert costlier_than_fp32(probe) == {Precision.BF16}
    assert costlier_than_fp32({**probe, Precision.BF16: 0.0120}) == frozenset()  # within the margin: noise
    assert costlier_than_fp32({Precision.BF16: 0.060}) == frozenset()  # no fp32 to compare with

    async def scenario() -> None:
        model = RegionalModel(
            "us-west-1",
            f"{__name__}:_SlowBf16Embedder",
            {},
            "stub",
            0.005,
            1,
            knob_refresh_s=None,
            warm_precisions=("fp32", "bf16", "int8"),
        )
        assert model.served_as_fp32 == {Precision.BF16}
        assert model.stats()["served_as_fp32"] == ["bf16"]
        await model.set_knobs({"class_precision": {"tolerant": "bf16", "batch": "int8"}})
        results = await model.run_batch([(["a"], "tolerant"), (["b"], "batch"), (["c"], "realtime")])
        assert [precision for _, precision in results] == ["fp32", "int8", "fp32"]
        assert results[0][0].tolist() == [[1.0, 1.0]]  # the fp32 pass's answer, not bf16's

    asyncio.run(scenario())


class _SlowBf16Embedder(_StubEmbedder):
    """bf16 burns several times fp32's CPU, as on a host without bf16 instructions."""

    def embed(self, texts: list[str], precision: Precision) -> np.ndarray:
        burn_s = {"fp32": 0.004, "bf16": 0.03, "int8": 0.002}[Precision(precision).value]
        started = time.thread_time()
        while time.thread_time() - started < burn_s:
            pass
        return super().embed(texts, precision)
