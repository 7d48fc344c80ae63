"""A job's driver entry point refuses a job that was not submitted properly, before it touches Ray
(rayjobs.driver.run_job_main: exit status 2 and a message that says what to do)."""

from __future__ import annotations

from typing import Any

import pytest

from batch.job import SPEC_ENV as BATCH_SPEC_ENV
from batch.spec import BatchJobSpec
from fleet.loaders import load_fleet
from rayjobs.driver import FLEET_ENV, run_job_main


def _never(*_args: Any) -> Any:
    raise AssertionError("a job that was not submitted properly must not run")


def _main(environ: dict[str, str]) -> int:
    return run_job_main(
        "batch", "gridshift batch submit", BATCH_SPEC_ENV, BatchJobSpec.model_validate_json, _never, _never, environ
    )


def test_a_job_without_its_environment_is_told_how_to_submit(capsys: pytest.CaptureFixture[str]) -> None:
    assert _main({}) == 2
    err = capsys.readouterr().err
    assert BATCH_SPEC_ENV in err
    assert "gridshift batch submit" in err


def test_a_job_with_a_broken_spec_names_it(capsys: pytest.CaptureFixture[str]) -> None:
    fleet = load_fleet(None)
    assert _main({BATCH_SPEC_ENV: '{"job_id": 7}', FLEET_ENV: fleet.model_dump_json()}) == 2
    assert "no valid spec and fleet" in capsys.readouterr().err
