"""The load-test runner's shared vocabulary: the settings of one run, its failure type and its progress line."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from loadtests.scenarios import LoadPlan, Scenario


class RunError(Exception):
    """The run could not be carried out (gateway did not start, locust failed): exit status 1."""


@dataclass(frozen=True)
class RunSettings:
    """One run as the command line resolved it: the scenario with its overrides, and where results go."""

    scenario: Scenario
    users: int
    spawn_rate: float
    duration_s: float
    user_rps: float
    results: Path
    fleet_path: str | None
    event_region: str
    event_level: int
    max_reaction_s: float
    plan: LoadPlan


def say(message: str) -> None:
    """One progress line, flushed at once: a run lasts minutes and is watched as it goes."""
    print(f"loadtest: {message}", flush=True)
