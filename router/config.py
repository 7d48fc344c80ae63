"""Fleet config: the one pydantic schema of regions, latency, workload classes, headroom and signals."""

from __future__ import annotations

import itertools
import json
import math
import os
from collections.abc import Mapping
from datetime import UTC, datetime
from enum import StrEnum
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    AfterValidator,
    Field,
    NonNegativeFloat,
    PositiveFloat,
    PositiveInt,
    ValidationError,
    field_validator,
    model_validator,
)

from router.config_base import HTTP_URL_PATTERN, StrictModel
from router.errors import ConfigError
from router.openadr.config import OpenADRConfig
from router.sources.config import LiveSourceConfig

SIGNAL_COLUMNS: tuple[str, ...] = (
    "demand_mw",
    "demand_forecast_mw",
    "carbon_g_per_kwh",
    "price_usd_per_mwh",
    "dr_level",
)
"""Trace columns, in contract order (see docs: trace files)."""

Fraction = Annotated[float, Field(ge=0.0, le=1.0)]


def _utc(value: datetime) -> datetime:
    # A naive time is ambiguous across regions; the contract is UTC, so demand an explicit offset.
    if value.tzinfo is None:
        raise ValueError("time must carry a UTC offset, e.g. 2022-09-07T01:00:00Z")
    return value.astimezone(UTC)


UtcDatetime = Annotated[datetime, AfterValidator(_utc)]


class BatteryConfig(StrictModel):
    """An on-site battery that can carry part of a region's load through a grid peak."""

    capacity_kwh: PositiveFloat = Field(description="Usable energy capacity, kWh.")
    max_power_kw: PositiveFloat = Field(description="Maximum charge or discharge power, kW.")
    round_trip_efficiency: float = Field(
        0.9, gt=0.0, le=1.0, description="Energy out divided by energy in over a full cycle."
    )
    initial_soc: Fraction = Field(0.8, description="State of charge at start, fraction of capacity.")
    reserve_soc: Fraction = Field(
        0.2, description="Charge kept for outages; discharge for grid support never goes below it."
    )

    @model_validator(mode="after")
    def _reserve_below_initial(self) -> BatteryConfig:
        if self.reserve_soc > self.initial_soc:
            raise ValueError(f"reserve_soc ({self.reserve_soc}) must not exceed initial_soc ({self.initial_soc})")
        return self


class RegionConfig(StrictModel):
    """One serving region: where it is, which grid feeds it, and how much it can do."""

    name: str = Field(min_length=1, description="Region name, also its key in the latency matrix.")
    zone: str = Field(min_length=1, description="Grid zone (balancing authority code) that feeds the region.")
    signal_zones: dict[str, str] = Field(
        default_factory=dict,
        description="Per trace column, a zone that overrides `zone` (e.g. demand from a sub-region).",
    )
    latitude: float = Field(ge=-90.0, le=90.0, description="Degrees north.")
    longitude: float = Field(ge=-180.0, le=180.0, description="Degrees east.")
    capacity_replicas: PositiveInt = Field(description="Model replicas the region can run.")
    capacity_kw: PositiveFloat = Field(description="IT power the region draws at full load, kW.")
    service_time_ms: PositiveFloat = Field(
        20.0, description="Expected model service time of one request when idle, ms."
    )
    battery: BatteryConfig | None = Field(None, description="On-site battery, if any.")
    endpoint_url: str | None = Field(
        None,
        pattern=HTTP_URL_PATTERN,
        description="Base URL of a remote gridshift or Ray Serve cluster serving this region "
        "(POST {url}/v1/embeddings); null: served by a deployment in this cluster.",
    )

    @field_validator("signal_zones")
    @classmethod
    def _known_columns(cls, value: dict[str, str]) -> dict[str, str]:
        unknown = sorted(set(value) - set(SIGNAL_COLUMNS))
        if unknown:
            raise ValueError(f"unknown trace column(s) {unknown}; expected some of {list(SIGNAL_COLUMNS)}")
        return value

    def zone_for(self, column: str) -> str:
        """The grid zone whose trace column feeds this region's `column` signal."""
        return self.signal_zones.get(column, self.zone)


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


def _default_classes() -> dict[str, WorkloadClassConfig]:
    return {
        "realtime": WorkloadClassConfig(mode=RoutingMode.STAY, latency_budget_ms=50.0),
        "tolerant": WorkloadClassConfig(mode=RoutingMode.SHIFT, latency_budget_ms=150.0),
        "batch": WorkloadClassConfig(mode=RoutingMode.DEFER, latency_budget_ms=None),
    }


class HeadroomWeights(StrictModel):
    """Relative weight of each headroom component; a component without a signal drops out."""

    capacity: NonNegativeFloat = Field(0.5, description="Demand against the zone's recent peak.")
    forecast: NonNegativeFloat = Field(0.15, description="Demand running above the day-ahead forecast.")
    carbon: NonNegativeFloat = Field(0.25, description="Average carbon intensity of the zone's supply.")
    price: NonNegativeFloat = Field(0.1, description="Wholesale energy price.")

    @model_validator(mode="after")
    def _some_weight(self) -> HeadroomWeights:
        if self.capacity + self.forecast + self.carbon + self.price <= 0:
            raise ValueError("at least one headroom weight must be positive")
        return self


def _ascending_pair(value: tuple[float, float]) -> tuple[float, float]:
    if not value[0] < value[1]:
        raise ValueError(f"expected [low, high] with low < high, got {list(value)}")
    return value


Range = Annotated[tuple[float, float], AfterValidator(_ascending_pair)]


class HeadroomConfig(StrictModel):
    """Parameters of the one headroom and stress formula (docs/headroom.md explains each)."""

    weights: HeadroomWeights = Field(default_factory=HeadroomWeights, description="Component weights.")
    peak_lookback_days: PositiveFloat = Field(
        365.0, description="Window over which the zone's reference peak demand is taken, days."
    )
    peak_quantile: float = Field(
        0.995, gt=0.5, le=1.0, description="Quantile of past demand used as the reference peak."
    )
    capacity_span: float = Field(
        0.4,
        gt=0.0,
        le=1.0,
        description="Demand/peak below 1 - span counts as full capacity headroom; at the peak it is zero.",
    )
    forecast_error_span: float = Field(
        0.1, gt=0.0, le=1.0, description="Demand this fraction above forecast counts as zero headroom."
    )
    carbon_range_g_per_kwh: Range = Field(
        (50.0, 600.0), description="[clean, dirty] carbon intensity mapped to headroom [1, 0], gCO2/kWh."
    )
    price_range_usd_per_mwh: Range = Field(
        (0.0, 250.0), description="[cheap, expensive] price mapped to headroom [1, 0], USD/MWh."
    )
    fresh_for_s: PositiveFloat = Field(
        5400.0, description="A signal younger than this is trusted fully, s (hourly data: 1.5 h)."
    )
    stale_decay_s: PositiveFloat = Field(
        3600.0, description="Past fresh_for_s, trust in a signal halves every this many seconds."
    )
    stale_headroom: Fraction = Field(
        0.25,
        description="Conservative value that stale signals decay toward (low enough that traffic is not "
        "drawn to a region nobody can see, high enough that a dead feed alone is no emergency).",
    )
    stress_thresholds: tuple[Fraction, Fraction, Fraction] = Field(
        (0.25, 0.12, 0.02),
        description="Grid-reliability headroom below each value raises stress to 1, 2, 3.",
    )
    event_headroom_cap: tuple[Fraction, Fraction, Fraction, Fraction] = Field(
        (1.0, 0.5, 0.2, 0.0), description="Ceiling on headroom while a DR event of level 0..3 is active."
    )

    @field_validator("stress_thresholds")
    @classmethod
    def _descending(cls, value: tuple[float, float, float]) -> tuple[float, float, float]:
        if not value[0] > value[1] > value[2]:
            raise ValueError(f"thresholds for stress 1, 2, 3 must strictly decrease, got {list(value)}")
        return value


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


class TraceSourceConfig(StrictModel):
    """Replay a trace file: the default, reproducible signal source."""

    kind: Literal["trace"] = "trace"
    path: str | None = Field(None, description="Trace file (CSV or CSV.gz); null means the packaged grid_2022 trace.")
    start: UtcDatetime = Field(description="Replay start time on the trace (UTC).")
    end: UtcDatetime | None = Field(None, description="Replay end time (UTC); null runs to the trace's end.")
    speedup: PositiveFloat = Field(1.0, description="Trace seconds per wall second.")

    @model_validator(mode="after")
    def _ordered(self) -> TraceSourceConfig:
        if self.end is not None and self.end <= self.start:
            raise ValueError(f"end ({self.end.isoformat()}) must be after start ({self.start.isoformat()})")
        return self


class Precision(StrEnum):
    """Numeric precision a regional model runs at (lower is cheaper, with a measured quality cost)."""

    FP32 = "fp32"
    BF16 = "bf16"
    INT8 = "int8"


class Knobs(StrictModel):
    """A regional app's live magnitude knobs: changed without restarting replicas."""

    max_batch_size: PositiveInt = Field(16, le=256, description="Largest dynamic batch the model runs.")
    precision: Precision = Field(
        Precision.FP32, description="Model precision for work whose class has no entry in class_precision."
    )
    class_precision: dict[str, Precision] = Field(
        default_factory=dict,
        description="Precision per workload class (e.g. {tolerant: bf16}); the policy degrades classes separately.",
    )
    max_concurrency: PositiveInt = Field(
        32, le=4096, description="Requests a replica admits at once; beyond it callers wait in the queue."
    )
    batch_wait_ms: float = Field(
        5.0,
        ge=0.0,
        le=1000.0,
        description="How long a partial batch of non-urgent work (every class but real-time) waits for more, ms; "
        "real-time work waits serving.batch_wait_timeout_s.",
    )

    def precision_for(self, workload_class: str) -> Precision:
        return self.class_precision.get(workload_class, self.precision)

    @property
    def work_slots(self) -> int:
        """Requests one replica works on before the rest queue: one full batch, or fewer if concurrency caps it."""
        return min(self.max_batch_size, self.max_concurrency)


class RegionPinning(StrEnum):
    """Whether a region's replicas and batch jobs are kept on that region's nodes (router/placement.py)."""

    AUTO = "auto"  # on the region's nodes when the cluster has any at deploy/launch time, else anywhere
    REQUIRED = "required"  # only on the region's nodes; work waits until one joins (autoscaling clusters)
    OFF = "off"  # anywhere


class ServingConfig(StrictModel):
    """The model the regional apps serve, and how they are placed."""

    model_import_path: str = Field(
        "serve_apps.embedding:MiniLMEmbedder",
        pattern=r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$",
        description="'module:attribute' of the embedder class or factory (plug in your own model here).",
    )
    model_kwargs: dict[str, Any] = Field(default_factory=dict, description="Keyword arguments for the model.")
    model_name: str = Field("all-MiniLM-L6-v2", min_length=1, description="Name reported in responses.")
    knobs: Knobs = Field(default_factory=Knobs, description="Default knobs of every regional app.")
    batch_wait_timeout_s: float = Field(
        0.005, ge=0.0, le=1.0, description="How long a partial batch waits for more requests, s."
    )
    replicas_per_region: PositiveInt = Field(
        1, le=64, description="Serve replicas deployed per in-cluster region (capacity_replicas weighs routing)."
    )
    replica_num_cpus: float = Field(
        0.25, gt=0.0, le=64.0, description="CPUs Ray reserves per regional replica (fractional on small hosts)."
    )
    torch_threads: PositiveInt = Field(1, le=64, description="Torch intra-op threads per replica.")
    region_pinning: RegionPinning = Field(
        RegionPinning.AUTO,
        description="Keep each region's replicas and batch jobs on nodes declaring that region (docs/cluster.md): "
        "auto (when the cluster has such nodes), required (always; wait for them), off.",
    )


class GatewayConfig(StrictModel):
    """The HTTP gateway: where it listens, limits, and how it refreshes and forwards."""

    host: str = Field("127.0.0.1", min_length=1, description="Listen address.")
    port: int = Field(8000, ge=1, le=65535, description="Listen port.")
    replicas: PositiveInt = Field(1, le=64, description="Gateway replicas.")
    num_cpus: float = Field(0.25, gt=0.0, le=64.0, description="CPUs Ray reserves per gateway replica.")
    max_input_items: PositiveInt = Field(256, description="Most strings in one embeddings request (else 413).")
    max_input_chars: PositiveInt = Field(20_000, description="Longest string in characters (else 413).")
    max_latency_budget_ms: PositiveFloat = Field(60_000.0, description="Largest budget a request may ask for.")
    state_refresh_s: float = Field(
        0.2, gt=0.0, le=10.0, description="How often the gateway refreshes its cached control state, s."
    )
    min_forward_timeout_s: PositiveFloat = Field(
        2.0, description="A forward waits at least this long (or the remaining budget, if longer) before failover."
    )
    unhealthy_after_failures: PositiveInt = Field(
        2, description="Consecutive forward failures that mark a region unhealthy until a probe succeeds."
    )
    probe_interval_s: PositiveFloat = Field(
        1.0, description="How often an unhealthy region, and every remote (endpoint_url) region, is probed, s."
    )
    wan_emulation: bool = Field(
        False,
        description="Add the real origin->region round-trip time to each forward, so budgets are real end to "
        "end when every region runs on one machine. Off in production.",
    )
    admin_token: str | None = Field(
        None,
        min_length=16,
        description="Bearer token for /v1/admin; null: read GRIDSHIFT_ADMIN_TOKEN (or `gridshift up` makes one).",
    )


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
    batch_may_run: bool = Field(True, description="Whether batch runners may start shards at this rung.")
    batch_size: PositiveInt = Field(description="Batch size the batch runners' pipelines use at this rung.")


def _default_steps() -> list[LadderStep]:
    return [
        LadderStep(max_batch_size=16, max_concurrency=32, degrade_classes=[], batch_size=16),
        LadderStep(
            max_batch_size=16,
            max_concurrency=24,
            degrade_classes=["tolerant", "batch"],
            batch_wait_ms=10.0,
            batch_size=16,
        ),
        LadderStep(
            max_batch_size=8,
            max_concurrency=16,
            degrade_classes=["tolerant", "batch", "realtime"],
            batch_wait_ms=25.0,
            batch_may_run=False,
            batch_size=8,
        ),
        LadderStep(
            max_batch_size=4,
            max_concurrency=8,
            degrade_classes=["tolerant", "batch", "realtime"],
            batch_wait_ms=40.0,
            batch_may_run=False,
            batch_size=4,
        ),
    ]


class BatteryDispatchConfig(StrictModel):
    """When the policy discharges and recharges a region's battery."""

    discharge_at_stress: int = Field(
        2, ge=1, le=3, description="Discharge while the region's stress level is at or above this."
    )
    charge_max_stress: int = Field(0, ge=0, le=2, description="Recharge only at or below this stress level.")
    charge_min_headroom: Fraction = Field(0.5, description="Recharge only while grid headroom is at least this.")
    horizon_s: PositiveFloat = Field(
        43_200.0,
        description="Look-ahead over the stress forecast, s: discharge is sized to last the forecast stressed hours.",
    )


class PowerModelConfig(StrictModel):
    """The region power estimate (docs/policy.md): idle plus utilisation-proportional IT power, times PUE."""

    pue: float = Field(1.2, ge=1.0, le=3.0, description="Power usage effectiveness: facility power / IT power.")
    idle_fraction: Fraction = Field(0.35, description="IT power at zero load, as a fraction of capacity_kw.")
    batch_job_cpus: PositiveFloat = Field(
        1.0, description="CPUs a running batch job keeps busy (its pipeline's own CPU time is not measured)."
    )


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


def _valid_rtt(value: float) -> float:
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"round-trip time must be a finite number of ms >= 0, got {value}")
    return value


RttMs = Annotated[float, AfterValidator(_valid_rtt)]


class LatencyConfig(StrictModel):
    """Round-trip times between regions."""

    matrix_file: str | None = Field(
        None, description="JSON file {'rtt_ms': {from: {to: ms}}}; null means the packaged AWS p50 matrix."
    )
    overrides_ms: dict[str, dict[str, RttMs]] = Field(
        default_factory=dict, description="Entries that replace or extend the matrix, ms (from -> to -> ms)."
    )


class FleetConfig(StrictModel):
    """A whole fleet: regions, latency, workload classes, headroom and the grid signal source."""

    name: str = Field("default", min_length=1, description="Fleet name, for display.")
    regions: list[RegionConfig] = Field(min_length=1, description="Serving regions.")
    default_origin: str = Field(description="Origin assumed when a request names none.")
    latency: LatencyConfig = Field(default_factory=LatencyConfig, description="Round-trip times.")
    workload_classes: dict[str, WorkloadClassConfig] = Field(
        default_factory=_default_classes, description="Workload classes by name."
    )
    headroom: HeadroomConfig = Field(default_factory=HeadroomConfig, description="Headroom formula.")
    routing: RoutingConfig = Field(default_factory=RoutingConfig, description="Region choice.")
    signal_source: TraceSourceConfig | LiveSourceConfig = Field(
        description="Where grid signals come from: kind trace (the default) or live (docs/signals.md)."
    )
    serving: ServingConfig = Field(default_factory=ServingConfig, description="Regional model apps.")
    gateway: GatewayConfig = Field(default_factory=GatewayConfig, description="HTTP gateway.")
    policy: PolicyConfig = Field(default_factory=PolicyConfig, description="Magnitude-shifting policy.")
    power: PowerModelConfig = Field(default_factory=PowerModelConfig, description="Region power estimate.")
    openadr: OpenADRConfig | None = Field(None, description="OpenADR 3 VEN; null: none.")

    @field_validator("signal_source", mode="before")
    @classmethod
    def _source_kind(cls, value: Any) -> Any:
        # Dispatch on `kind` by hand (not a tagged union) so errors read signal_source.<field>, as they always have,
        # and a fleet without `kind` keeps meaning the trace source.
        if not isinstance(value, Mapping):
            return value
        kind = value.get("kind", "trace")
        if kind == "live":
            return LiveSourceConfig.model_validate(value)
        if kind != "trace":
            raise ValidationError.from_exception_data(
                "signal_source",
                [{"type": "literal_error", "loc": ("kind",), "input": kind, "ctx": {"expected": "'trace' or 'live'"}}],
            )
        return TraceSourceConfig.model_validate(value)

    @model_validator(mode="after")
    def _cross_checks(self) -> FleetConfig:
        names = [region.name for region in self.regions]
        duplicates = sorted({name for name in names if names.count(name) > 1})
        if duplicates:
            raise ValueError(f"regions: duplicate region name(s) {duplicates}")
        if self.default_origin not in names:
            raise ValueError(f"default_origin: {self.default_origin!r} is not a region of the fleet {names}")
        for required in ("realtime", "tolerant"):
            if required not in self.workload_classes:
                raise ValueError(f"workload_classes: the {required!r} class is required")
        if self.openadr is not None:
            self.openadr.check_regions(tuple(names))
        defaults = self.serving.knobs
        for index, step in enumerate(self.policy.steps):
            if step.max_batch_size > defaults.max_batch_size or step.max_concurrency > defaults.max_concurrency:
                raise ValueError(
                    f"policy.steps.{index}: exceeds serving.knobs (max_batch_size {defaults.max_batch_size}, "
                    f"max_concurrency {defaults.max_concurrency}); the ladder only turns regions down"
                )
        return self

    def region(self, name: str) -> RegionConfig:
        for region in self.regions:
            if region.name == name:
                return region
        raise KeyError(name)

    @property
    def region_names(self) -> tuple[str, ...]:
        return tuple(region.name for region in self.regions)


ADMIN_TOKEN_ENV = "GRIDSHIFT_ADMIN_TOKEN"
"""Environment variable holding the gateway's admin bearer token when the fleet config sets none."""


def configured_admin_token(gateway: GatewayConfig) -> str | None:
    """The admin token from the config, else from $GRIDSHIFT_ADMIN_TOKEN (read when called, never at import)."""
    return gateway.admin_token or os.environ.get(ADMIN_TOKEN_ENV) or None


DEFAULT_FLEET_RESOURCE = "fleet_default.yaml"
DEFAULT_TRACE_RESOURCE = "traces/grid_2022.csv.gz"
DEFAULT_RTT_RESOURCE = "aws_interregion_p50_ms.json"


def packaged_data(name: str) -> Path:
    """Path of a file shipped in `router/data` (default fleet, traces, latency matrix)."""
    return Path(str(resources.files("router").joinpath("data", name)))


def format_validation_errors(error: ValidationError) -> str:
    """One line per field error, `  location: message`: how every config error names its fields."""
    lines = []
    for item in error.errors():
        location = ".".join(str(part) for part in item["loc"]) or "(top level)"
        lines.append(f"  {location}: {item['msg']}")
    return "\n".join(lines)


def parse_fleet(data: Any, source: str = "<fleet>") -> FleetConfig:
    """Validate a fleet from parsed YAML/JSON; raise ConfigError naming each bad field and why."""
    if not isinstance(data, Mapping):
        raise ConfigError(f"{source}: a fleet config must be a mapping, got {type(data).__name__}")
    try:
        return FleetConfig.model_validate(data)
    except ValidationError as error:
        raise ConfigError(f"{source}: invalid fleet config\n{format_validation_errors(error)}") from None


def load_fleet(path: str | Path | None = None) -> FleetConfig:
    """Load a fleet from a YAML file; None loads the packaged default fleet."""
    file = packaged_data(DEFAULT_FLEET_RESOURCE) if path is None else Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as error:
        raise ConfigError(f"{file}: cannot read fleet config: {error.strerror or error}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise ConfigError(f"{file}: not valid YAML: {error}") from None
    return parse_fleet(data, source=str(file))


def load_rtt_matrix(latency: LatencyConfig) -> dict[str, dict[str, float]]:
    """The round-trip-time matrix (ms) with config overrides applied."""
    file = packaged_data(DEFAULT_RTT_RESOURCE) if latency.matrix_file is None else Path(latency.matrix_file)
    try:
        raw = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as error:
        raise ConfigError(f"latency.matrix_file: cannot read {file}: {error}") from None
    table = raw.get("rtt_ms") if isinstance(raw, dict) else None
    if not isinstance(table, dict):
        raise ConfigError(f"latency.matrix_file: {file} has no 'rtt_ms' mapping of from -> to -> ms")
    matrix: dict[str, dict[str, float]] = {}
    for origin, row in table.items():
        if not isinstance(row, dict):
            raise ConfigError(f"latency.matrix_file: {file}: row {origin!r} is not a mapping")
        matrix[origin] = {}
        for target, value in row.items():
            try:
                matrix[origin][target] = _valid_rtt(float(value))
            except (TypeError, ValueError) as error:
                raise ConfigError(f"latency.matrix_file: {file}: {origin} -> {target}: {error}") from None
    for origin, row in latency.overrides_ms.items():
        matrix.setdefault(origin, {}).update(row)
    return matrix


def check_latency_coverage(fleet: FleetConfig, matrix: Mapping[str, Mapping[str, float]]) -> None:
    """Every pair of fleet regions needs a round-trip time; name the first missing pair."""
    for origin in fleet.region_names:
        for target in fleet.region_names:
            if origin != target and target not in matrix.get(origin, {}):
                raise ConfigError(
                    f"latency: no round-trip time from {origin!r} to {target!r}; "
                    "add it under latency.overrides_ms or use a matrix that covers it"
                )


def utc_now_from(value: str) -> datetime:
    """Parse a user-supplied ISO-8601 time (CLI flags); naive times are rejected, not guessed."""
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise ConfigError(f"not an ISO-8601 time: {value!r} (expected e.g. 2022-09-07T01:00:00Z)") from None
    try:
        return _utc(parsed)
    except ValueError as error:
        raise ConfigError(f"{value!r}: {error}") from None
