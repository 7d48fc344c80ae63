"""Calibration: the model's measured cost per item at each precision and batch size, and its quality against fp32.

The ladder picks precisions from these figures and the power model turns them into kW, so nothing about a
precision's cost or quality is assumed. The packaged file is produced by `python -m benchmarks.bench_precision
--write-calibration PATH` (schema gridshift.calibration/v1); `policy.calibration_file` names another.
"""

from __future__ import annotations

import itertools
import json
import math
from collections.abc import Iterable, Mapping
from functools import cached_property
from importlib import resources
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, PositiveFloat, PositiveInt, ValidationError, model_validator

from fleet.errors import ConfigError
from fleet.loaders import format_validation_errors
from fleet.serving import Precision

CALIBRATION_SCHEMA = "gridshift.calibration/v1"
PACKAGED_CALIBRATION = "calibration_minilm_cpu.json"


class CostPoint(BaseModel):
    """Measured cost of one precision at one batch size (one torch thread, tokenisation included)."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    precision: Precision
    batch_size: PositiveInt
    cpu_ms_per_item: PositiveFloat = Field(description="Process CPU time per item, ms: what energy follows.")
    ms_per_item: PositiveFloat = Field(description="Wall time per item, ms.")


class QualityPoint(BaseModel):
    """Agreement of one precision's embeddings with fp32's on the fixed evaluation sentences."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    mean_cosine_to_fp32: float = Field(ge=-1.0, le=1.0)
    min_cosine_to_fp32: float = Field(ge=-1.0, le=1.0)
    n: PositiveInt


class Calibration(BaseModel):
    """Cost and quality of every precision of one model on one machine."""

    model_config = ConfigDict(extra="ignore", frozen=True, populate_by_name=True)

    schema_: str = Field(alias="schema")
    model: str
    machine: str
    measured_at: str
    command: str
    results: tuple[CostPoint, ...] = Field(min_length=1)
    quality: dict[Precision, QualityPoint]

    @model_validator(mode="after")
    def _complete(self) -> Calibration:
        if self.schema_ != CALIBRATION_SCHEMA:
            raise ValueError(f"schema is {self.schema_!r}, expected {CALIBRATION_SCHEMA!r}")
        for precision in Precision:
            if not any(point.precision is precision for point in self.results):
                raise ValueError(f"results: no cost measured for {precision.value}")
            if precision not in self.quality:
                raise ValueError(f"quality: no quality measured for {precision.value}")
        return self

    @cached_property
    def _memo(self) -> dict[tuple[object, ...], object]:
        # The policy and the power model ask the same few (precision, batch size) and (floor, batch size) questions
        # every decision; the model is frozen, so each answer is computed once. A cached_property lives in the
        # instance __dict__ (a plain lookup), where a pydantic private attribute costs a __getattr__ call.
        return {}

    def model_copy(self, *, update: Mapping[str, Any] | None = None, deep: bool = False) -> Calibration:
        # A copy shares the instance __dict__'s entries, the memo included: an updated copy starts afresh.
        copied = super().model_copy(update=update, deep=deep)
        copied.__dict__.pop("_memo", None)
        return copied

    def _points(self, precision: Precision) -> list[CostPoint]:
        return sorted((p for p in self.results if p.precision is precision), key=lambda p: p.batch_size)

    def cpu_ms_per_item(self, precision: Precision, batch_size: float) -> float:
        """CPU ms per item at a (possibly fractional, e.g. mean occupancy) batch size: log-linear interpolation
        between measured sizes, clamped to the measured range (no extrapolation beyond what was seen)."""
        key = (precision, batch_size)
        memo = self._memo
        cached = memo.get(key)
        if cached is None:
            cached = memo[key] = self._interpolated_cpu_ms(Precision(precision), batch_size)
        return cached  # type: ignore[return-value]

    def _interpolated_cpu_ms(self, precision: Precision, batch_size: float) -> float:
        points = self._points(precision)
        size = max(batch_size, 1.0)
        if size <= points[0].batch_size:
            return points[0].cpu_ms_per_item
        for low, high in itertools.pairwise(points):
            if size <= high.batch_size:
                t = (math.log(size) - math.log(low.batch_size)) / (math.log(high.batch_size) - math.log(low.batch_size))
                return low.cpu_ms_per_item + t * (high.cpu_ms_per_item - low.cpu_ms_per_item)
        return points[-1].cpu_ms_per_item

    def cost_ratio(self, precision: Precision, reference: Precision, batch_size: float) -> float:
        """CPU cost of `precision` over `reference` at the same batch size."""
        return self.cpu_ms_per_item(precision, batch_size) / self.cpu_ms_per_item(reference, batch_size)

    def cheapest_meeting(
        self, floor: float, batch_size: float, candidates: Iterable[Precision] = Precision
    ) -> Precision:
        """The cheapest precision whose mean cosine to fp32 is at least `floor` (fp32 always qualifies)."""
        options = tuple(candidates)
        key = ("cheapest", floor, batch_size, options)
        memo = self._memo
        cached = memo.get(key)
        if cached is None:
            allowed = [p for p in options if p is Precision.FP32 or self.quality[p].mean_cosine_to_fp32 >= floor]
            if Precision.FP32 not in allowed:
                allowed.append(Precision.FP32)
            cached = memo[key] = min(
                allowed, key=lambda p: (self.cpu_ms_per_item(p, batch_size), p is not Precision.FP32)
            )
        return cached  # type: ignore[return-value]


def calibration_to_dict(calibration: Calibration) -> dict[str, object]:
    """Measured cost (CPU ms per item by precision and batch size) and quality, for operators."""
    costs: dict[str, dict[str, float]] = {}
    for point in calibration.results:
        costs.setdefault(point.precision.value, {})[str(point.batch_size)] = point.cpu_ms_per_item
    return {
        "model": calibration.model,
        "machine": calibration.machine,
        "measured_at": calibration.measured_at,
        "command": calibration.command,
        "cpu_ms_per_item": costs,
        "quality": {
            precision.value: {
                "mean_cosine_to_fp32": point.mean_cosine_to_fp32,
                "min_cosine_to_fp32": point.min_cosine_to_fp32,
                "n": point.n,
            }
            for precision, point in calibration.quality.items()
        },
    }


def parse_calibration(data: object, source: str) -> Calibration:
    try:
        return Calibration.model_validate(data)
    except ValidationError as error:
        raise ConfigError(f"{source}: invalid calibration\n{format_validation_errors(error)}") from None


def load_calibration(path: str | Path | None = None) -> Calibration:
    """The calibration at `path`, or the packaged one (all-MiniLM-L6-v2 on the development machine's CPU)."""
    if path is None:
        text = resources.files("policies").joinpath("data", PACKAGED_CALIBRATION).read_text(encoding="utf-8")
        source = f"policies/data/{PACKAGED_CALIBRATION}"
    else:
        try:
            text = Path(path).read_text(encoding="utf-8")
        except OSError as error:
            raise ConfigError(f"policy.calibration_file: cannot read {path}: {error.strerror or error}") from None
        source = str(path)
    try:
        data = json.loads(text)
    except json.JSONDecodeError as error:
        raise ConfigError(f"{source}: not valid JSON: {error}") from None
    return parse_calibration(data, source)


HOST_COST_MARGIN = 1.25
"""How much more than fp32 a lower precision may cost on the host before it is served as fp32: above run-to-run noise
(a few percent for a pass of a few sentences), far below what a missing instruction set costs (bf16 without AVX-512
BF16 took 6x fp32 on the project's machine)."""


def costlier_than_fp32(cpu_s: Mapping[Precision, float], margin: float = HOST_COST_MARGIN) -> frozenset[Precision]:
    """The precisions that cost more than fp32 on this host, from one probe's CPU seconds per precision (the same
    texts at each). A lower precision exists to save compute, and fp32 meets every quality floor, so serving fp32
    where one of these is asked for is both cheaper and better. Empty when fp32 was not measured."""
    reference = cpu_s.get(Precision.FP32)
    if reference is None or reference <= 0:
        return frozenset()
    return frozenset(p for p, seconds in cpu_s.items() if p is not Precision.FP32 and seconds > reference * margin)
