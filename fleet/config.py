"""The fleet: one pydantic model that composes every section (regions, routing, headroom, signals, serving, policy)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import (
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from fleet.base import StrictModel
from fleet.headroom import HeadroomConfig
from fleet.ladder import PolicyConfig
from fleet.openadr import OpenADRConfig
from fleet.power import PowerModelConfig
from fleet.pricing import PricingConfig
from fleet.regions import RegionConfig
from fleet.routing import LatencyConfig, RoutingConfig, RoutingMode, WorkloadClassConfig, default_workload_classes
from fleet.serving import GatewayConfig, ServingConfig
from fleet.sources import LiveSourceConfig, TraceSourceConfig
from fleet.tenants import TenantsConfig


class FleetConfig(StrictModel):
    """A whole fleet: regions, latency, workload classes, headroom and the grid signal source."""

    name: str = Field("default", min_length=1, description="Fleet name, for display.")
    regions: list[RegionConfig] = Field(min_length=1, description="Serving regions.")
    default_origin: str = Field(description="Origin assumed when a request names none.")
    latency: LatencyConfig = Field(default_factory=LatencyConfig, description="Round-trip times.")
    workload_classes: dict[str, WorkloadClassConfig] = Field(
        default_factory=default_workload_classes, description="Workload classes by name."
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
    tenants: TenantsConfig = Field(default_factory=TenantsConfig, description="Tenants, API keys, usage.")
    pricing: PricingConfig = Field(default_factory=PricingConfig, description="Grid-aware price formula.")

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
        self._check_firm_class()
        defaults = self.serving.knobs
        for index, step in enumerate(self.policy.steps):
            if step.max_batch_size > defaults.max_batch_size or step.max_concurrency > defaults.max_concurrency:
                raise ValueError(
                    f"policy.steps.{index}: exceeds serving.knobs (max_batch_size {defaults.max_batch_size}, "
                    f"max_concurrency {defaults.max_concurrency}); the ladder only turns regions down"
                )
        return self

    def _check_firm_class(self) -> None:
        # Tiers 0 and 1 promise full precision by being served as this class: the ladder must never degrade it.
        firm = self.tenants.firm_class
        workload = None if firm is None else self.workload_classes.get(firm)
        if workload is None:
            return  # no such class: those tiers are served as their own class (docs/tenants.md)
        if workload.mode is RoutingMode.DEFER:
            raise ValueError(f"tenants.firm_class: {firm!r} is a deferred class; it must be served per request")
        degrading = [index for index, step in enumerate(self.policy.steps) if firm in step.degrade_classes]
        if degrading:
            raise ValueError(f"tenants.firm_class: {firm!r} is degraded by policy.steps {degrading}")

    def region(self, name: str) -> RegionConfig:
        for region in self.regions:
            if region.name == name:
                return region
        raise KeyError(name)

    @property
    def region_names(self) -> tuple[str, ...]:
        return tuple(region.name for region in self.regions)
