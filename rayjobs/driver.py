"""A gridshift job's driver process as a Ray Job runs it (`python -m batch.job`, `python -m training.job`): the spec
and fleet arrive as JSON in the job's environment (set at submission), and the process answers with an exit status a
Ray Job reports: 0 done, 1 the job failed with a gridshift error (its message on stderr), 2 not submitted properly."""

from __future__ import annotations

import json
import logging
import os
import sys
from collections.abc import Callable, Mapping
from typing import Protocol, TypeVar

from pydantic import BaseModel

from fleet.config import FleetConfig
from fleet.errors import GridshiftError
from fleet.loaders import parse_fleet

FLEET_ENV = "GRIDSHIFT_FLEET"
"""The environment variable that carries a submitted job's fleet (JSON) into its Ray Job; each kind names its own
for the spec."""


class JobSpec(Protocol):
    @property
    def job_id(self) -> str: ...


Spec = TypeVar("Spec", bound=JobSpec)
Result = TypeVar("Result")


def job_environment(spec_env: str, spec: BaseModel, fleet: FleetConfig) -> dict[str, str]:
    """What a submission puts in the job's environment, for `run_job_main` to read back."""
    return {spec_env: spec.model_dump_json(), FLEET_ENV: fleet.model_dump_json()}


def run_job_main(
    kind: str,
    submit_command: str,
    spec_env: str,
    parse_spec: Callable[[str], Spec],
    run: Callable[[Spec, FleetConfig], Result],
    summary: Callable[[Spec, Result], str],
    environ: Mapping[str, str] = os.environ,
) -> int:
    """Read the job's spec and fleet, connect to the cluster the job runs in, run it, print its summary line."""
    import ray

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        spec = parse_spec(environ[spec_env])
        fleet = parse_fleet(json.loads(environ[FLEET_ENV]), source=FLEET_ENV)
    except KeyError as missing:
        print(f"{kind} job: {missing} is not set; submit jobs with `{submit_command}`", file=sys.stderr)
        return 2
    except (GridshiftError, ValueError) as error:  # a pydantic ValidationError is a ValueError
        print(f"{kind} job: its environment holds no valid spec and fleet: {error}", file=sys.stderr)
        return 2
    ray.init(address="auto", namespace="gridshift", logging_level=logging.WARNING)
    try:
        result = run(spec, fleet)
    except GridshiftError as error:
        print(f"{kind} job {spec.job_id} failed: {error}", file=sys.stderr)
        return 1
    print(summary(spec, result))
    return 0
