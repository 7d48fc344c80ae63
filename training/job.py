"""A training job's driver process: what a Ray Job runs (`python -m training.job`, spec and fleet in its environment),
and `run_driver`, the same code in the foreground for `gridshift train submit --local`."""

from __future__ import annotations

import sys
from collections.abc import Callable

from fleet.config import FleetConfig
from policies.actors.control import control_client
from policies.actors.gate_line import GATE_TIMEOUT_S
from policies.training_gate import TrainingProgress, deadline_problem
from rayjobs.driver import run_job_main
from training.control import training_gate
from training.runner import RunResult, restored, run_job
from training.spec import TrainingJobSpec, TrainingSpecError, validate_spec

SPEC_ENV = "GRIDSHIFT_TRAINING_SPEC"
"""The environment variable that carries a submitted job's spec (JSON) into its Ray Job (the fleet: rayjobs.driver)."""


def failed(spec: TrainingJobSpec, error: BaseException) -> TrainingProgress:
    return TrainingProgress(
        job_id=spec.job_id,
        region=spec.region,
        signal=spec.signal,
        deadline_s=spec.deadline.timestamp(),
        flex_tier=spec.flex_tier,
        state="failed",
        steps_done=0,
        steps_total=spec.steps,
        step_s=spec.step_s,
        max_workers=spec.workers,
        threads_per_worker=spec.threads_per_worker,
        reason=f"{type(error).__name__}: {error}",
        tenant_id=spec.tenant_id,
    )


def check_deadline(spec: TrainingJobSpec, fleet: FleetConfig, now_s: float, steps_done: int = 0) -> None:
    """Refuse, before any work, a deadline too close for the estimated steps left even at full size."""
    work_wall_s = (spec.steps - steps_done) * spec.step_s
    problem = deadline_problem(now_s, spec.deadline.timestamp(), work_wall_s, fleet.signal_source.speedup)
    if problem is not None:
        raise TrainingSpecError(f"deadline: {problem}; set a later deadline, or a smaller step_s if steps are faster")


def run_driver(
    spec: TrainingJobSpec,
    fleet: FleetConfig,
    *,
    create_control: bool = False,
    on_progress: Callable[[TrainingProgress], None] | None = None,
) -> RunResult:
    """Run the job in this process (Ray initialised). `create_control` starts the fleet's control actor when the
    cluster has none (a local run); a Ray Job finds the one its cluster's gateway started, by name."""
    validate_spec(spec)
    client = control_client(fleet if create_control else None, timeout_s=GATE_TIMEOUT_S)
    gate = training_gate(client, fleet)
    try:
        now_s = gate.now_s()
        if now_s is not None:
            check_deadline(spec, fleet, now_s, restored(spec)[0])
        return run_job(spec, gate, on_progress=on_progress)
    except Exception as error:
        gate.report(failed(spec, error))
        raise


def _summary(spec: TrainingJobSpec, result: RunResult) -> str:
    return (
        f"training job {spec.job_id}: {result.steps_done} steps committed in {result.segments} segment(s), "
        f"{len(result.pauses)} pause(s); final checkpoint {result.checkpoint_path}; metrics {result.metrics}"
    )


def main() -> int:
    """The Ray Job's entry point (rayjobs.driver): the spec and fleet come in the job's environment."""
    return run_job_main(
        "training", "gridshift train submit", SPEC_ENV, TrainingJobSpec.model_validate_json, run_driver, _summary
    )


if __name__ == "__main__":
    sys.exit(main())
