"""A batch job's driver process: what a Ray Job runs (`python -m batch.job`, spec and fleet in its environment),
and `run_driver`, the same code in the foreground for `gridshift batch submit --local`."""

from __future__ import annotations

import sys
from collections.abc import Callable

from batch.control import control_gate
from batch.runner import JobResult, run_job, validate_spec
from batch.spec import BatchJobSpec
from fleet.config import FleetConfig
from policies.actors.control import control_client
from policies.actors.gate_line import GATE_TIMEOUT_S
from policies.batch_gate import JobProgress
from rayjobs.driver import run_job_main

SPEC_ENV = "GRIDSHIFT_BATCH_SPEC"
"""The environment variable that carries a submitted job's spec (JSON) into its Ray Job (the fleet: rayjobs.driver)."""


def failed(spec: BatchJobSpec, error: BaseException) -> JobProgress:
    return JobProgress(
        job_id=spec.job_id,
        region=spec.region,
        signal=spec.signal,
        deadline_s=spec.deadline.timestamp(),
        state="failed",
        rows_done=0,
        rows_total=0,
        rows_per_second=0.0,
        reason=f"{type(error).__name__}: {error}",
        max_workers=spec.max_workers,
        tenant_id=spec.tenant_id,
        flex_tier=spec.flex_tier,
    )


def run_driver(
    spec: BatchJobSpec,
    fleet: FleetConfig,
    *,
    create_control: bool = False,
    on_progress: Callable[[JobProgress], None] | None = None,
) -> JobResult:
    """Run the job in this process (Ray initialised). `create_control` starts the fleet's control actor when the
    cluster has none (a local run); a Ray Job finds the one its cluster's gateway started, by name."""
    validate_spec(spec)
    client = control_client(fleet if create_control else None, timeout_s=GATE_TIMEOUT_S)
    gate = control_gate(client, fleet)
    try:
        return run_job(spec, gate, on_progress=on_progress)
    except Exception as error:
        gate.report(failed(spec, error))
        raise


def _summary(spec: BatchJobSpec, result: JobResult) -> str:
    return (
        f"batch job {spec.job_id}: {result.rows} rows committed ({result.units_run} units run, "
        f"{result.units_skipped} already committed, {result.segments} segments)"
    )


def main() -> int:
    """The Ray Job's entry point (rayjobs.driver): the spec and fleet come in the job's environment."""
    return run_job_main(
        "batch", "gridshift batch submit", SPEC_ENV, BatchJobSpec.model_validate_json, run_driver, _summary
    )


if __name__ == "__main__":
    sys.exit(main())
