"""The policy section: the magnitude ladder's rungs, quality floors, battery dispatch and safety timeouts."""

from __future__ import annotations

import itertools

from pydantic import (
    Field,
    NonNegativeFloat,
    PositiveFloat,
    PositiveInt,
    model_validator,
)

from fleet.base import Fraction, StrictModel
from fleet.power import BatteryDispatchConfig


class LadderStep(StrictModel):
    """One rung of the magnitude ladder (docs/policy.md). Rung k answers grid stress level k."""

    max_batch_size: PositiveInt = Field(description="Regional apps' largest dynamic batch at this rung.")
    max_concurrency: PositiveInt = Field(description="Requests a regional replica admits at once at this rung.")
    degrade_classes: list[str] = Field(
        default_factory=list,
        description="Workload classes that run at the cheapest precision meeting their quality floor at this rung.",
    )
    batch_wait_ms: float = Field(
        5.0,
        ge=0.0,
        le=1000.0,
        description="How long a partial batch of non-urgent work waits for more at this rung, ms: fuller batches "
        "cost less per item.",
    )
    batch_may_run: bool = Field(True, description="Whether batch jobs may start new input blocks at this rung.")
    batch_size: PositiveInt = Field(description="Batch size the batch jobs' pipelines use at this rung.")
    batch_workers_fraction: float = Field(
        1.0,
        gt=0.0,
        le=1.0,
        description="Share of each batch job's max_workers its pipeline stages may run at this rung (at least one).",
    )


def _default_steps() -> list[LadderStep]:
    return [
        LadderStep(max_batch_size=16, max_concurrency=32, degrade_classes=[], batch_size=16),
        LadderStep(
            max_batch_size=16,
            max_concurrency=24,
            degrade_classes=["tolerant", "batch"],
            batch_wait_ms=10.0,
            batch_size=16,
            batch_workers_fraction=0.5,
        ),
        LadderStep(
            max_batch_size=8,
            max_concurrency=16,
            degrade_classes=["tolerant", "batch", "realtime"],
            batch_wait_ms=25.0,
            batch_may_run=False,
            batch_size=8,
            batch_workers_fraction=0.25,
        ),
        LadderStep(
            max_batch_size=4,
            max_concurrency=8,
            degrade_classes=["tolerant", "batch", "realtime"],
            batch_wait_ms=40.0,
            batch_may_run=False,
            batch_size=4,
            batch_workers_fraction=0.25,
        ),
    ]


def _default_quality_floor() -> dict[str, float]:
    return {"realtime": 0.999, "tolerant": 0.99, "batch": 0.95}


class PolicyConfig(StrictModel):
    """The policy actor: magnitude ladder, quality floors, battery dispatch and safety timeouts."""

    enabled: bool = Field(True, description="Run the policy actor; false leaves every region on serving.knobs.")
    period_s: PositiveFloat = Field(1.0, le=60.0, description="How often the policy decides, wall seconds.")
    min_dwell_s: NonNegativeFloat = Field(
        900.0,
        description="A rung is held at least this long (control-clock s) and stress must stay lower this long "
        "before the ladder recovers one rung; escalation is immediate.",
    )
    fallback_after_s: PositiveFloat = Field(
        10.0,
        description="Decisions older than this (wall s) are ignored: regions and batch runners return to safe "
        "defaults (serving.knobs, batch allowed) rather than stay degraded or paused.",
    )
    knob_refresh_s: PositiveFloat = Field(
        0.25, le=10.0, description="How often each regional replica reads its knobs and reports its load, wall s."
    )
    quality_floor: dict[str, Fraction] = Field(
        default_factory=_default_quality_floor,
        description="Per workload class, the lowest mean cosine similarity to fp32 (measured on the evaluation "
        "set) its embeddings may fall to; the ladder never picks a precision below it.",
    )
    steps: list[LadderStep] = Field(
        default_factory=_default_steps, min_length=1, max_length=4, description="Ladder rungs, stress 0 upward."
    )
    calibration_file: str | None = Field(
        None, description="Measured cost and quality per precision (JSON); null: the packaged calibration."
    )
    battery: BatteryDispatchConfig = Field(default_factory=BatteryDispatchConfig, description="Battery dispatch.")

    @model_validator(mode="after")
    def _monotone(self) -> PolicyConfig:
        for index, (lower, higher) in enumerate(itertools.pairwise(self.steps), start=1):
            if higher.max_batch_size > lower.max_batch_size or higher.max_concurrency > lower.max_concurrency:
                raise ValueError(f"steps.{index}: batch size and concurrency must not grow up the ladder")
            if not set(lower.degrade_classes) <= set(higher.degrade_classes):
                raise ValueError(f"steps.{index}: a class degraded at a lower rung must stay degraded")
            if lower.batch_may_run is False and higher.batch_may_run:
                raise ValueError(f"steps.{index}: batch paused at a lower rung must stay paused")
            if higher.batch_workers_fraction > lower.batch_workers_fraction:
                raise ValueError(f"steps.{index}: batch_workers_fraction must not grow up the ladder")
        for index, step in enumerate(self.steps):
            unknown = sorted(set(step.degrade_classes) - set(self.quality_floor))
            if unknown:
                raise ValueError(f"steps.{index}.degrade_classes: no quality_floor for {unknown}")
            # Real-time traffic is degraded last: never at a rung where another degradable class is not.
            spared = sorted(set(self.quality_floor) - set(step.degrade_classes))
            if "realtime" in step.degrade_classes and spared:
                raise ValueError(
                    f"steps.{index}: realtime is degraded while {spared} are not; real-time work must be degraded last"
                )
        return self
