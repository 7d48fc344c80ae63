"""Metric catalogue: every metric gridshift exports, once, with its kind, unit, labels and meaning. The /metrics
collector, the Ray replica metrics, docs/console.md and the Grafana dashboard's test all read this table."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Kind = Literal["gauge", "counter", "histogram", "info"]
Where = Literal["gateway", "ray"]

RAY_PREFIX = "ray_"
"""Ray's Prometheus export prefixes every application metric with this."""


@dataclass(frozen=True)
class MetricSpec:
    """One metric. `where`: `gateway` is the control state, rendered by any gateway replica at `GET /metrics`
    (the same on every replica); `ray` is a per-replica counter or histogram, exported by Ray's own metrics
    endpoint with the `deployment`, `replica` and `application` labels Serve adds."""

    name: str
    kind: Kind
    unit: str
    labels: tuple[str, ...]
    help: str
    where: Where = "gateway"

    @property
    def query_name(self) -> str:
        """The name a PromQL query uses (a histogram's base name, before `_bucket`, `_sum` and `_count`)."""
        base = RAY_PREFIX + self.name if self.where == "ray" else self.name
        if self.kind == "info":
            return base + "_info"
        if self.kind == "counter" and not base.endswith("_total"):
            return base + "_total"
        return base

    @property
    def exported_names(self) -> tuple[str, ...]:
        """The sample names a scrape shows."""
        if self.kind == "histogram":
            return tuple(self.query_name + suffix for suffix in ("_bucket", "_sum", "_count"))
        return (self.query_name,)


def _g(name: str, unit: str, labels: tuple[str, ...], help_text: str) -> MetricSpec:
    return MetricSpec(name, "gauge", unit, labels, help_text)


R = ("region",)
CATALOGUE: tuple[MetricSpec, ...] = (
    # Build and control state --------------------------------------------------------------------------------------
    MetricSpec("gridshift_build", "info", "1", ("version", "python", "ray"), "Constant 1, labelled with versions."),
    _g("gridshift_control_state_version", "1", (), "Version of the control state this gateway routes with."),
    _g("gridshift_control_clock_seconds", "seconds", (), "Now on the control clock (trace time under replay), Unix s."),
    # The grid per region -------------------------------------------------------------------------------------------
    _g("gridshift_region_headroom_ratio", "ratio 0..1", R, "Grid headroom of the region (docs/headroom.md)."),
    _g("gridshift_region_stress_level", "level 0..3", R, "Stress level, DR events included: 0 normal .. 3 emergency."),
    _g("gridshift_region_dr_event_level", "level 0..3", R, "Highest active DR event level (absent: no event)."),
    _g("gridshift_dr_events_active", "events", (), "DR events in force now, fleet-wide."),
    _g("gridshift_region_healthy", "bool 0/1", R, "1 while the control state counts the region as able to serve."),
    _g("gridshift_region_utilization_ratio", "ratio", R, "In-flight work over what the region works on at once."),
    _g("gridshift_region_signal_age_seconds", "seconds", ("region", "signal"), "Age of each signal headroom uses."),
    _g("gridshift_region_signals_stale", "bool 0/1", R, "1 while some headroom term decays for age."),
    # Signal sources (live fleets) -----------------------------------------------------------------------------------
    _g("gridshift_signal_source_up", "bool 0/1", ("source", "provider"), "1 if the last poll gave usable values."),
    _g("gridshift_signal_source_degraded", "bool 0/1", ("source",), "1 if the last poll partly failed or was refused."),
    _g("gridshift_signal_source_consecutive_failures", "polls", ("source",), "Polls in a row with no usable value."),
    _g("gridshift_signal_source_last_success_age_seconds", "seconds", ("source",), "Time since usable values."),
    MetricSpec("gridshift_signal_source_polls_total", "counter", "polls", ("source",), "Polls since the start."),
    MetricSpec(
        "gridshift_signal_values_rejected_total", "counter", "values", ("source", "reason"), "Values not used, by why."
    ),
    # The magnitude policy, knobs, power and battery ------------------------------------------------------------------
    _g("gridshift_policy_fresh", "bool 0/1", (), "1 while the policy's decisions are fresh (else safe defaults)."),
    _g("gridshift_policy_rung", "rung 0..3", R, "The policy's ladder step for the region."),
    _g("gridshift_region_batch_may_run", "bool 0/1", R, "1 while the policy lets batch work run in the region."),
    _g("gridshift_region_knob_precision_bits", "bits", ("region", "workload_class"), "Precision in force (32/16/8)."),
    _g("gridshift_region_knob_max_batch_size", "requests", R, "Largest model batch in force."),
    _g("gridshift_region_knob_max_concurrency", "requests", R, "Requests a replica admits at once, in force."),
    _g("gridshift_region_grid_power_watts", "watts", R, "Estimated grid draw (site minus battery)."),
    _g("gridshift_region_baseline_power_watts", "watts", R, "Estimated grid draw without any control."),
    _g("gridshift_region_site_power_watts", "watts", R, "Estimated site power (IT times PUE)."),
    _g("gridshift_region_battery_power_watts", "watts", R, "Battery power, > 0 discharging."),
    _g("gridshift_region_battery_soc_ratio", "ratio 0..1", R, "Battery state of charge."),
    _g("gridshift_region_flexible_power_watts", "watts", ("region", "lever"), "Power each lever could still shed."),
    _g("gridshift_region_load_requests_per_second", "requests/s", R, "Measured request rate of the region's replicas."),
    # Geographic shifting ---------------------------------------------------------------------------------------------
    _g("gridshift_route_share_ratio", "ratio 0..1", ("origin", "region"), "Share of tolerant work routed there now."),
    _g("gridshift_origin_shifted_items_per_second", "items/s", ("origin",), "Tolerant items served away, measured."),
    # Jobs -----------------------------------------------------------------------------------------------------------
    MetricSpec(
        "gridshift_batch_rows_done_total", "counter", "rows", ("job_id", "region"), "Rows a batch job committed."
    ),
    _g("gridshift_batch_rows", "rows", ("job_id", "region"), "Rows a batch job has in all."),
    MetricSpec(
        "gridshift_training_steps_done_total", "counter", "steps", ("job_id", "region"), "Steps a training run made."
    ),
    _g("gridshift_training_steps", "steps", ("job_id", "region"), "Steps a training run has in all."),
    _g("gridshift_job_progress_ratio", "ratio 0..1", ("job_id", "region", "kind"), "Share of a job's work done."),
    _g("gridshift_job_state", "bool 0/1", ("job_id", "region", "kind", "state"), "1 for the job's current state."),
    # Per replica, through Ray's metrics export -----------------------------------------------------------------------
    MetricSpec(
        "gridshift_gateway_request_duration_seconds",
        "histogram",
        "seconds",
        ("region", "reason", "workload_class"),
        "Time a gateway replica took to serve a request, by serving region and routing reason.",
        "ray",
    ),
    MetricSpec(
        "gridshift_gateway_unserved_requests_total",
        "counter",
        "requests",
        ("origin", "workload_class"),
        "Requests no region could serve (answered 503).",
        "ray",
    ),
    MetricSpec(
        "gridshift_gateway_failovers_total",
        "counter",
        "forwards",
        ("region",),
        "Forwards to the region that failed, after which the gateway tried the next candidate.",
        "ray",
    ),
    MetricSpec(
        "gridshift_gateway_shifted_items_total",
        "counter",
        "items",
        ("origin", "region"),
        "Tolerant items served away from their origin (geographic shifting).",
        "ray",
    ),
    MetricSpec(
        "gridshift_replica_items_total", "counter", "items", ("region", "precision"), "Items a replica embedded.", "ray"
    ),
    MetricSpec(
        "gridshift_replica_batch_requests",
        "histogram",
        "requests",
        ("region",),
        "Requests per model batch a replica ran.",
        "ray",
    ),
    MetricSpec(
        "gridshift_replica_inference_seconds",
        "histogram",
        "seconds",
        ("region", "precision"),
        "CPU time of one model pass (one torch thread: the work's own cost, as the power model counts it).",
        "ray",
    ),
)

BY_NAME = {spec.name: spec for spec in CATALOGUE}


def spec(name: str) -> MetricSpec:
    """The catalogue entry for `name` (KeyError: an uncatalogued metric is a bug)."""
    return BY_NAME[name]


def exported_names() -> frozenset[str]:
    """Every sample name a scrape of the gateway or of Ray can show."""
    return frozenset(name for entry in CATALOGUE for name in entry.exported_names)
