"""Batch and training jobs for a simulated fleet: sizes, deadlines and flex tiers from a documented, seeded
distribution, sized so that each class's mean load matches its share of the mix."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

import numpy as np

HOUR_S: Final = 3600
JOB_UNITS_PER_REGION: Final = 100
"""A region's compute in job units: a job of width w keeps w % of its region's compute busy while it runs."""


@dataclass(frozen=True)
class JobClass:
    """How one deferrable class's jobs are drawn. Slack: deadline = release + work x slack[tier] (flex tiers 0..3:
    tier 0 accepts no delay at all, tier 3 the most)."""

    name: str
    work_hours: tuple[int, int]  # uniform, inclusive
    width_units: tuple[int, int]  # uniform, inclusive
    tier_probabilities: tuple[float, float, float, float]
    slack: tuple[float, float, float, float]

    @property
    def mean_unit_hours(self) -> float:
        return (sum(self.work_hours) / 2.0) * (sum(self.width_units) / 2.0)


BATCH: Final = JobClass("batch", (1, 6), (2, 6), (0.1, 0.3, 0.4, 0.2), (1.0, 1.5, 3.0, 6.0))
TRAINING: Final = JobClass("training", (24, 96), (10, 30), (0.2, 0.4, 0.3, 0.1), (1.0, 1.25, 1.5, 2.0))
JOB_CLASSES: Final = (BATCH, TRAINING)


@dataclass(frozen=True)
class Job:
    job_id: str
    region: str
    kind: str  # batch | training
    release_s: int
    deadline_s: int
    work_s: int  # at full width
    width_units: int
    tier: int


def generate_jobs(
    regions: Sequence[str], start_s: int, end_s: int, shares: dict[str, float], utilization: float, seed: int
) -> list[Job]:
    """Poisson arrivals per region and hour, so that each class's expected busy units equal utilization x share x
    JOB_UNITS_PER_REGION. One generator per (seed, region, class): adding a region leaves the others' jobs alone."""
    jobs: list[Job] = []
    hours = np.arange(start_s, end_s, HOUR_S, dtype=np.int64)
    for region_index, region in enumerate(regions):
        for class_index, job_class in enumerate(JOB_CLASSES):
            share = shares.get(job_class.name, 0.0)
            if share <= 0:
                continue
            rng = np.random.default_rng([seed, region_index, class_index])
            rate = utilization * share * JOB_UNITS_PER_REGION / job_class.mean_unit_hours
            counts = rng.poisson(rate, len(hours))
            for hour, count in zip(hours, counts, strict=True):
                for _ in range(int(count)):
                    work_h = int(rng.integers(job_class.work_hours[0], job_class.work_hours[1] + 1))
                    width = int(rng.integers(job_class.width_units[0], job_class.width_units[1] + 1))
                    tier = int(rng.choice(4, p=job_class.tier_probabilities))
                    deadline = int(hour) + math.ceil(work_h * job_class.slack[tier]) * HOUR_S
                    jobs.append(
                        Job(
                            job_id=f"{region}-{job_class.name}-{len(jobs)}",
                            region=region,
                            kind=job_class.name,
                            release_s=int(hour),
                            deadline_s=deadline,
                            work_s=work_h * HOUR_S,
                            width_units=width,
                            tier=tier,
                        )
                    )
    return jobs
