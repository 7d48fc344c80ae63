"""Routing sections: workload classes, the region-choice tunables and the round-trip-time matrix."""

from __future__ import annotations

import math
from enum import StrEnum
from typing import Annotated

from pydantic import (
    AfterValidator,
    Field,
    PositiveFloat,
    model_validator,
)

from fleet.base import Fraction, StrictModel


class RoutingMode(StrEnum):
    """How the router treats a workload class."""

    STAY = "stay"  # served at the origin (or the nearest healthy region); never moved for grid reasons
    SHIFT = "shift"  # moved to the feasible region with the most headroom
    DEFER = "defer"  # not routed per request: time-shifted by the batch planner


class WorkloadClassConfig(StrictModel):
    """A workload class and its defaults."""

    mode: RoutingMode = Field(description="stay (real-time), shift (latency-tolerant) or defer (batch).")
    latency_budget_ms: PositiveFloat | None = Field(
        description="Default end-to-end latency budget, ms; null for deferred (deadline-driven) classes."
    )

    @model_validator(mode="after")
    def _budget_matches_mode(self) -> WorkloadClassConfig:
        if self.mode is not RoutingMode.DEFER and self.latency_budget_ms is None:
            raise ValueError(f"latency_budget_ms is required for mode {self.mode.value!r}")
        return self


def default_workload_classes() -> dict[str, WorkloadClassConfig]:
    return {
        "realtime": WorkloadClassConfig(mode=RoutingMode.STAY, latency_budget_ms=50.0),
        "tolerant": WorkloadClassConfig(mode=RoutingMode.SHIFT, latency_budget_ms=150.0),
        # Never degraded by the policy ladder: what flexibility tiers 0 and 1 are served as (fleet/tenants.py).
        "firm": WorkloadClassConfig(mode=RoutingMode.STAY, latency_budget_ms=150.0),
        "batch": WorkloadClassConfig(mode=RoutingMode.DEFER, latency_budget_ms=None),
    }


class RoutingConfig(StrictModel):
    """Tunables of the region choice (docs/routing.md)."""

    origin_margin: Fraction = Field(
        0.1, description="Stay at the origin when its score is within this much of the best."
    )
    spread_band: Fraction = Field(
        0.05, description="Regions scoring within this much of the best share load by spare capacity."
    )
    stickiness: Fraction = Field(
        0.03, description="Extra margin a previously eligible region keeps before it drops out (anti-flap)."
    )
    load_penalty: Fraction = Field(0.2, description="Score lost at full utilisation.")
    avoid_stress_level: int = Field(
        3, ge=1, le=3, description="Tolerant traffic avoids regions at or above this stress level."
    )
    max_queue_factor: PositiveFloat = Field(
        20.0, description="Cap on the queueing slow-down 1 / (1 - utilisation) in the latency estimate."
    )


def valid_rtt_ms(value: float) -> float:
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"round-trip time must be a finite number of ms >= 0, got {value}")
    return value


RttMs = Annotated[float, AfterValidator(valid_rtt_ms)]


class LatencyConfig(StrictModel):
    """Round-trip times between regions."""

    matrix_file: str | None = Field(
        None, description="JSON file {'rtt_ms': {from: {to: ms}}}; null means the packaged AWS p50 matrix."
    )
    overrides_ms: dict[str, dict[str, RttMs]] = Field(
        default_factory=dict, description="Entries that replace or extend the matrix, ms (from -> to -> ms)."
    )
