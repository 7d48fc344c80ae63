"""The training gate without Ray: tier rules and shrink, the run-pause decision, the registry over a real control plane
(window plan, slack rule, DR events, operators' pauses), the power model's training terms, and the run's book."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fleet.clock import FixedClock
from fleet.events import DREvent
from fleet.loaders import load_fleet
from grid.context import FleetContext, load_context
from policies.batch_gate import PlanVerdict
from policies.control import ControlPlane
from policies.power import TrainingLoad
from policies.tiers import max_slowdown
from policies.training_gate import (
    TrainingAnswer,
    TrainingProgress,
    TrainingShape,
    deadline_problem,
    decide_training,
    shrink,
)
from training.book import Boundary, Command, RunBook

SEPT_6_NOON_S = 1_662_465_600  # CISO's solar hours (17-21 UTC) are the cleanest ahead: a deferrable job waits
PEAK_S = 1_662_512_400  # 2022-09-07T01:00Z: CISO at stress 3


@pytest.fixture(scope="module")
def context() -> FleetContext:
    return load_context(load_fleet())


def progress(**overrides: object) -> TrainingProgress:
    base = TrainingProgress(
        job_id="t1",
        region="us-west-1",
        signal="carbon",
        deadline_s=SEPT_6_NOON_S + 3 * 86_400,
        flex_tier=3,
        state="running",
        steps_done=0,
        steps_total=1000,
        step_s=0.05,
        max_workers=4,
        threads_per_worker=2,
        cpu_s_per_s=8.0,
        full_cpu_s_per_s=8.0,
    )
    return replace(base, **overrides)  # type: ignore[arg-type]


RUN = PlanVerdict(True, False, "in a planned window", None)
WAIT = PlanVerdict(False, False, "waiting for its planned window", SEPT_6_NOON_S + 3600)


@given(
    workers=st.integers(1, 64),
    threads=st.integers(1, 16),
    tier=st.integers(0, 3),
    fraction=st.floats(0.01, 1.0),
)
def test_shrink_never_slows_past_the_tier_and_never_grows(
    workers: int, threads: int, tier: int, fraction: float
) -> None:
    full = TrainingShape(workers, threads)
    shape = shrink(full, tier, fraction)
    assert 1 <= shape.workers <= workers
    assert 1 <= shape.threads_per_worker <= threads
    # Capacity kept is at least what the tier requires, so (speed at most proportional) slowdown <= tolerance.
    assert shape.threads >= full.threads * (1 - max_slowdown(tier)) - 1e-9
    # And no more than the ladder's share asks for, up to one worker's worth of rounding.
    wanted = max(fraction, 1 - max_slowdown(tier)) * full.threads
    assert shape.threads < wanted + threads + shape.workers


def test_tiers_accept_0_10_25_50_percent_and_tier_0_is_never_shrunk() -> None:
    assert [max_slowdown(tier) for tier in range(4)] == [0.0, 0.10, 0.25, 0.50]
    full = TrainingShape(4, 1)
    assert shrink(full, 0, 0.25) == full
    assert shrink(full, 1, 0.25) == full  # 90 % of 4 threads is 3.6: all 4 stay
    assert shrink(full, 2, 0.25) == TrainingShape(3, 1)
    assert shrink(full, 3, 0.25) == TrainingShape(2, 1)
    assert shrink(TrainingShape(1, 8), 3, 0.25) == TrainingShape(1, 4)  # one worker: its threads go instead
    with pytest.raises(ValueError, match="flex_tier"):
        max_slowdown(4)


def decide(job: TrainingProgress, **overrides: object) -> TrainingAnswer:
    arguments: dict[str, object] = {
        "progress": job,
        "manual_pause": False,
        "verdict": RUN,
        "stress_level": 0,
        "workers_fraction": 1.0,
        "now_s": 0.0,
        "speedup": 1.0,
    }
    arguments.update(overrides)
    return decide_training(**arguments)  # type: ignore[arg-type]


def test_stress_pauses_a_deferrable_job_but_never_a_tier_0_one() -> None:
    paused = decide(progress(flex_tier=3), stress_level=2)
    assert not paused.run
    assert "grid stress 2" in paused.reason
    tier0 = decide(progress(flex_tier=0), stress_level=3, workers_fraction=0.25, policy_pause="rung 3 pauses jobs")
    assert tier0.run
    assert tier0.shape == TrainingShape(4, 2)
    assert "tier 0" in tier0.reason
    # An operator's pause holds even for tier 0: the operator owns it.
    assert not decide(progress(flex_tier=0), manual_pause=True).run


@pytest.mark.parametrize(("tier", "floor"), [(1, TrainingShape(4, 2)), (2, TrainingShape(3, 2))])
def test_tiers_1_and_2_are_never_paused_by_the_grid_but_run_at_their_floor(tier: int, floor: TrainingShape) -> None:
    # Where the grid would pause a deferrable job (stress, the policy's pause rung, the plan), tiers 1 and 2 run on,
    # shrunk to their floor (90 %, 75 % of 8 threads), as the one tier table says (policies/tiers.py).
    for grid in ({"stress_level": 2}, {"policy_pause": "rung 3 pauses jobs"}, {"verdict": WAIT}):
        answer = decide(progress(flex_tier=tier), **grid)
        assert answer.run, grid
        assert answer.shape == floor
        assert f"flex tier {tier}: never deferred" in answer.reason
    # An operator still may.
    assert not decide(progress(flex_tier=tier), manual_pause=True).run


def test_below_the_pause_rung_a_job_runs_smaller_within_its_tier() -> None:
    answer = decide(progress(flex_tier=3), stress_level=1, workers_fraction=0.5)
    assert answer.run
    assert answer.shape == TrainingShape(2, 2)
    assert answer.expected_slowdown == pytest.approx(0.5)
    assert "shrunk to 2 worker(s)" in answer.reason
    tier1 = decide(progress(flex_tier=1), stress_level=1, workers_fraction=0.5)
    assert tier1.shape.threads >= 0.9 * 8


def test_out_of_slack_or_not_checkpointing_runs_at_full_size_whatever_the_grid() -> None:
    forced = PlanVerdict(True, True, "slack exhausted: running regardless of the grid", None)
    answer = decide(progress(flex_tier=3), verdict=forced, stress_level=3, workers_fraction=0.25, policy_pause="x")
    assert answer.run
    assert answer.shape == TrainingShape(4, 2)
    stubborn = decide(progress(flex_tier=3, checkpointing=False), stress_level=2, workers_fraction=0.25)
    assert stubborn.run
    assert stubborn.shape == TrainingShape(4, 2)
    assert "does not checkpoint" in stubborn.reason


def test_the_deadline_check_names_the_work_and_the_time_left() -> None:
    assert deadline_problem(0.0, 3600.0, 3000.0, 1.0) is None
    problem = deadline_problem(0.0, 3600.0, 3000.0, 12.0)  # under replay, a wall second is 12 control seconds
    assert problem is not None
    assert "10.00 h of work" in problem
    assert "1.00 h left" in problem


def test_a_deferrable_job_waits_for_its_planned_window_and_a_tier_0_one_runs(context: FleetContext) -> None:
    plane = ControlPlane(context, FixedClock(SEPT_6_NOON_S), FixedClock(0.0))
    # 5 wall s of work: an hour of trace time under the default replay (one trace hour every five wall seconds).
    job = progress(step_s=0.05, steps_total=100, deadline_s=SEPT_6_NOON_S + 86_400, state="starting")
    waiting = plane.training_gate(job)
    assert not waiting.run
    assert "planned window" in waiting.reason
    assert waiting.resume_at_s is not None
    assert waiting.resume_at_s > SEPT_6_NOON_S
    assert plane.training_gate(replace(job, job_id="t0", flex_tier=0)).run
    # Batch and training plans are cached apart: a batch job of the same id has no plan.
    assert plane.plan_of("t1") is None
    assert plane.training_statuses()[0]["state"] == "starting"


def test_out_of_slack_a_job_runs_through_a_dr_event_and_a_flexible_one_pauses(context: FleetContext) -> None:
    plane = ControlPlane(context, FixedClock(SEPT_6_NOON_S), FixedClock(0.0))
    event = DREvent(
        region="us-west-1",
        level=2,
        start="2022-09-06T11:00:00Z",
        end="2022-09-06T14:00:00Z",
    )
    plane.post_event(event)
    roomy = progress(step_s=0.05, steps_total=100, deadline_s=SEPT_6_NOON_S + 86_400)
    assert "grid stress 2" in plane.training_gate(roomy).reason
    tight = progress(job_id="t2", step_s=0.05, steps_total=90, deadline_s=SEPT_6_NOON_S + 3600)  # 0.9 h of 1 h
    answer = plane.training_gate(tight)
    assert answer.run
    assert answer.shape == TrainingShape(4, 2)


def test_operator_pause_is_refused_for_a_trainer_that_never_checkpoints(context: FleetContext) -> None:
    plane = ControlPlane(context, FixedClock(SEPT_6_NOON_S), FixedClock(0.0))
    assert not plane.pause_training("nope").known
    plane.training_report(progress(checkpointing=False))
    refused = plane.pause_training("t1")
    assert refused.known
    assert not refused.accepted
    assert "checkpoint" in refused.reason
    plane.training_report(progress(job_id="t3"))
    assert plane.pause_training("t3").accepted
    assert not plane.training_gate(progress(job_id="t3")).run
    assert plane.resume_training("t3").accepted
    assert plane.training_gate(progress(job_id="t3", flex_tier=0)).run


def test_the_power_model_counts_training_workers_and_their_flexibility(context: FleetContext) -> None:
    plane = ControlPlane(context, FixedClock(PEAK_S), FixedClock(0.0))
    plane.training_report(progress(flex_tier=3, cpu_s_per_s=2.0, full_cpu_s_per_s=2.0))
    plane.training_report(progress(job_id="t0", flex_tier=0, cpu_s_per_s=1.0, full_cpu_s_per_s=1.0))
    plane.training_report(progress(job_id="done", state="done", cpu_s_per_s=5.0, full_cpu_s_per_s=5.0))
    load = plane.training_jobs.load("us-west-1")
    assert load == TrainingLoad(running_cpu=3.0, full_cpu=3.0, deferrable_cpu=2.0, reducible_cpu=1.0)
    assert plane.policy_inputs()["us-west-1"].training == load
    assert plane.training_jobs.load("us-east-1") == TrainingLoad()


def test_power_estimate_with_training_load(context: FleetContext) -> None:
    from policies.calibration import load_calibration
    from policies.load import RegionLoad
    from policies.power import Lever, PowerInputs, estimate_power

    fleet = context.fleet
    region = fleet.region("us-west-1")
    calibration = load_calibration(None)
    base = PowerInputs(load=RegionLoad(), knobs=fleet.serving.knobs, compute_cpus=8.0)
    busy = replace(base, training=TrainingLoad(running_cpu=4.0, full_cpu=4.0, deferrable_cpu=4.0, reducible_cpu=2.0))
    idle = estimate_power(region, base, fleet.power, calibration, fleet.policy.quality_floor)
    training = estimate_power(region, busy, fleet.power, calibration, fleet.policy.quality_floor)
    dynamic_kw = region.capacity_kw * (1 - fleet.power.idle_fraction) * fleet.power.pue
    assert training.site_kw - idle.site_kw == pytest.approx(dynamic_kw * 4.0 / 8.0)
    assert training.flexible_kw[Lever.DEFER] == pytest.approx(dynamic_kw * 4.0 / 8.0)
    assert training.flexible_kw[Lever.REDUCE] == pytest.approx(dynamic_kw * 2.0 / 8.0)
    assert training.baseline_kw == pytest.approx(training.site_kw)


def test_the_book_records_boundaries_commits_and_a_checkpoint_without_its_step() -> None:
    book = RunBook()
    book.set_command(Command(1, False, "", 2, 10.0, 0.0))
    assert book.exchange(Boundary(1, 10, 100.0)) == (book.command, 0)
    book.exchange(Boundary(1, 30, 101.0, asked_checkpoint=True))
    book.commit(30, 101.5)
    book.cpu(1, 0, 0.9)
    book.cpu(1, 1, 0.8)
    book.cpu(0, 1, 5.0)  # a previous segment's late report is not this one's
    view = book.view()
    assert view.steps_per_second == pytest.approx(20.0)
    assert view.committed_step == 30
    assert view.asked == 1
    assert view.cpu_s_per_s == pytest.approx(1.7)
    book.commit(None, 102.0)
    assert "without a whole 'step' metric" in book.view().errors[0]
    book.set_command(Command(2, False, "", 2, 10.0, 0.0))  # a new segment keeps commits, clears live figures
    view = book.view()
    assert view.last is None
    assert view.committed_step == 30
    assert math.isclose(view.cpu_s_per_s, 0.0)
