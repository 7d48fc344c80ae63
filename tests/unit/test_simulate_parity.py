"""The simulator decides with the live functions: on the same inputs it gives what the live control plane gives."""

from __future__ import annotations

from dataclasses import replace

import pytest

from fleet.clock import FixedClock
from fleet.loaders import load_fleet
from fleet.times import utc_now_from
from grid.context import FleetContext
from policies.batch_gate import JobProgress
from policies.control import ControlPlane
from policies.load import RegionLoad
from policies.outlook import replay_policy
from simulate.engine import SimulationSpec, _Engine, simulate_fleet, simulation_fleet
from simulate.engine_jobs import JobState
from simulate.inputs import load_inputs
from simulate.jobs import HOUR_S, Job
from simulate.mix import LEVERS, parse_mix

START = int(utc_now_from("2022-09-06T12:00:00Z").timestamp())
END = START + 24 * HOUR_S


@pytest.fixture(scope="module")
def inputs():  # the default fleet replayed at trace speed, so the live planner's margin is the simulator's
    fleet = load_fleet(None)
    fleet = fleet.model_copy(update={"signal_source": fleet.signal_source.model_copy(update={"speedup": 1.0})})
    return load_inputs(fleet)


def _spec(mix: str, levers: frozenset[str]) -> SimulationSpec:
    return SimulationSpec(START, END, parse_mix(mix), levers, warmup_hours=0)


def test_snapshot_matches_the_control_plane_hour_by_hour(inputs):
    run = simulate_fleet(inputs.context, inputs.reader, inputs.calibration, _spec("realtime=1", frozenset(LEVERS)))
    fleet = simulation_fleet(inputs.context.fleet, frozenset(LEVERS))
    context = FleetContext(fleet, inputs.context.trace, inputs.context.rtt_ms)
    for column, at in enumerate(run.times_s):
        state = ControlPlane(context, FixedClock(float(at)), FixedClock(0.0)).state()
        assert state is not None
        for i, region in enumerate(state.snapshot.regions):
            assert run.series["stress"][i, column] == region.assessment.stress_level
            assert run.series["headroom"][i, column] == pytest.approx(region.assessment.headroom, abs=1e-12)
    assert run.series["stress"].max() == 3  # the heat wave is in the window: the test compares something


def test_ladder_and_battery_match_the_policy_replay(inputs):
    levers = frozenset({"magnitude", "battery"})
    spec = _spec("realtime=0.5,tolerant=0.5", levers)
    run = simulate_fleet(inputs.context, inputs.reader, inputs.calibration, spec)
    fleet = simulation_fleet(inputs.context.fleet, levers)
    context = replace(inputs.context, fleet=fleet)
    engine = _Engine(inputs.context, inputs.reader, inputs.calibration, spec)
    cpu = spec.utilization * 0.5 * engine.compute
    offered: RegionLoad = engine._offered(cpu, cpu)
    i = run.regions.index("us-west-1")
    hours = replay_policy(context, "us-west-1", [int(t) for t in run.times_s], inputs.calibration, offered=offered)
    assert [h.decision.step for h in hours] == [int(v) for v in run.series["rung"][i]]
    assert [h.decision.power.battery_kw for h in hours] == pytest.approx(list(run.series["battery_kw"][i]))
    assert max(h.decision.step for h in hours) == 3


@pytest.mark.parametrize("hour", [0, 6, 12, 18])
def test_first_gate_matches_the_live_job_registry(inputs, hour):
    at = START + hour * HOUR_S
    spec = _spec("batch=1", frozenset({"time"}))
    engine = _Engine(inputs.context, inputs.reader, inputs.calibration, spec)
    fleet = engine.fleet
    plane = ControlPlane(
        FleetContext(fleet, inputs.context.trace, inputs.context.rtt_ms), FixedClock(at), FixedClock(0)
    )
    state = plane.state()
    assert state is not None
    for k, region in enumerate(fleet.region_names):
        for tier_hours in (3, 8, 30):
            job = Job(f"j{k}-{tier_hours}", region, "batch", at, at + tier_hours * HOUR_S, 3 * HOUR_S, 4, 1)
            stress = next(r.assessment.stress_level for r in state.snapshot.regions if r.config.name == region)
            ours = engine.jobs.runs(JobState(job, job.work_s), at, stress, None)
            live = plane.batch_gate(
                JobProgress(job.job_id, region, "carbon", job.deadline_s, "running", 0, job.work_s, 1.0, max_workers=4)
            )
            assert ours == live.run, (region, tier_hours, live.reason)


def test_tolerant_work_leaves_the_stressed_region(inputs):
    run = simulate_fleet(
        inputs.context, inputs.reader, inputs.calibration, _spec("realtime=0.5,tolerant=0.5", frozenset({"geo"}))
    )
    west1 = run.regions.index("us-west-1")
    assert run.moved_cpu_h[west1].sum() > 0
    assert run.counters["realtime_slo_miss_hours"] == 0
