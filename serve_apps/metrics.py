"""Prometheus exposition of the control state for `GET /metrics`: a prometheus_client collector that reads the state,
the newest control-history sample and the job reports at scrape time (per-replica counters are Ray's; see
serve_apps/replica_metrics.py). Every name, unit and label comes from serve_apps/metric_catalogue.py."""

from __future__ import annotations

import asyncio
import logging
import platform
from collections.abc import Awaitable, Iterator, Mapping, Sequence
from importlib import metadata
from typing import Any, TypeVar

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, InfoMetricFamily, Metric
from prometheus_client.registry import Collector

from policies.control_api import ControlApi
from policies.control_history import ControlSample, operator_jobs
from policies.control_state import ControlState
from router.state import RegionSnapshot
from serve_apps.gateway import GatewayCore
from serve_apps.metric_catalogue import spec

logger = logging.getLogger("gridshift.metrics")
T = TypeVar("T")

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
CALL_TIMEOUT_S = 1.0
"""A scrape or console poll waits this long for each control-plane call, then answers without that part."""
PRECISION_BITS = {"fp32": 32, "bf16": 16, "fp16": 16, "int8": 8}
WATTS_PER_KW = 1000.0


def region_staleness(region: RegionSnapshot, at_s: int) -> dict[str, Any]:
    """How old a region's signals are at `at_s` and how far the headroom formula still trusts them."""
    ages = {name: at_s - obs.observed_at_s for name, obs in region.signals.observed().items() if obs is not None}
    components = region.assessment.components
    return {
        "stale": region.assessment.stale,
        "signal_age_s": ages,
        "oldest_signal_age_s": max(ages.values()) if ages else None,
        "min_trust": round(min((c.trust for c in components), default=1.0), 4),
        "stale_components": [c.name for c in components if c.trust < 1.0],
    }


def build_info() -> dict[str, str]:
    def version(package: str) -> str:
        try:
            return metadata.version(package)
        except metadata.PackageNotFoundError:
            return "unknown"

    return {"version": version("gridshift"), "python": platform.python_version(), "ray": version("ray")}


def _gauge(name: str) -> GaugeMetricFamily:
    entry = spec(name)
    return GaugeMetricFamily(name, f"{entry.help} Unit: {entry.unit}.", labels=entry.labels)


def _counter(name: str) -> CounterMetricFamily:
    entry = spec(name)
    # prometheus_client appends `_total` to a counter's samples itself: give it the family name without it.
    return CounterMetricFamily(name.removesuffix("_total"), f"{entry.help} Unit: {entry.unit}.", labels=entry.labels)


class ControlStateCollector(Collector):
    """Reads a control state (and, when given, the newest history sample and job reports) at scrape time."""

    def __init__(
        self,
        state: ControlState,
        sample: ControlSample | None = None,
        jobs: Sequence[Mapping[str, Any]] = (),
        build: Mapping[str, str] | None = None,
    ) -> None:
        self._state = state
        self._sample = sample
        self._jobs = jobs
        self._build = dict(build) if build is not None else build_info()

    def collect(self) -> Iterator[Metric]:
        info = InfoMetricFamily("gridshift_build", spec("gridshift_build").help)
        info.add_metric([], self._build)
        yield info
        yield from self._grid()
        yield from self._sources()
        if self._sample is not None:
            yield from self._policy(self._sample)
        yield from self._job_metrics()

    def _grid(self) -> Iterator[Metric]:
        state, snap = self._state, self._state.snapshot
        version = _gauge("gridshift_control_state_version")
        version.add_metric([], state.version)
        clock = _gauge("gridshift_control_clock_seconds")
        clock.add_metric([], snap.at_s)
        headroom, stress = _gauge("gridshift_region_headroom_ratio"), _gauge("gridshift_region_stress_level")
        healthy, utilization = _gauge("gridshift_region_healthy"), _gauge("gridshift_region_utilization_ratio")
        ages, stale = _gauge("gridshift_region_signal_age_seconds"), _gauge("gridshift_region_signals_stale")
        for region in snap.regions:
            name = region.config.name
            headroom.add_metric([name], region.assessment.headroom)
            stress.add_metric([name], region.assessment.stress_level)
            healthy.add_metric([name], float(region.state.healthy))
            utilization.add_metric([name], region.state.utilization)
            staleness = region_staleness(region, snap.at_s)
            stale.add_metric([name], float(staleness["stale"]))
            for signal, age in staleness["signal_age_s"].items():
                ages.add_metric([name, signal], age)
        events = _gauge("gridshift_region_dr_event_level")
        levels: dict[str, int] = {}
        active = [e for e in state.events if e.active_at(snap.at_s)]
        for event in active:
            if event.level is not None:
                levels[event.region] = max(levels.get(event.region, 0), event.level)
        for name, level in sorted(levels.items()):
            events.add_metric([name], level)
        count = _gauge("gridshift_dr_events_active")
        count.add_metric([], len(active))
        yield from (version, clock, headroom, stress, healthy, utilization, ages, stale, events, count)

    def _sources(self) -> Iterator[Metric]:
        signals = self._state.signals
        sources = signals.sources if signals is not None else ()
        up, degraded = _gauge("gridshift_signal_source_up"), _gauge("gridshift_signal_source_degraded")
        failures = _gauge("gridshift_signal_source_consecutive_failures")
        success_age = _gauge("gridshift_signal_source_last_success_age_seconds")
        polls, rejected = (
            _counter("gridshift_signal_source_polls_total"),
            _counter("gridshift_signal_values_rejected_total"),
        )
        for health in sources:
            up.add_metric([health.name, health.provider], float(health.up))
            degraded.add_metric([health.name], float(health.state == "degraded"))
            failures.add_metric([health.name], health.consecutive_failures)
            if signals is not None and health.last_success_s is not None:
                success_age.add_metric([health.name], signals.at_s - health.last_success_s)
            polls.add_metric([health.name], health.polls)
            for reason, count in health.rejected:
                rejected.add_metric([health.name, reason], count)
        yield from (up, degraded, failures, success_age, polls, rejected)

    def _policy(self, sample: ControlSample) -> Iterator[Metric]:
        fresh = _gauge("gridshift_policy_fresh")
        fresh.add_metric([], float(any(r.rung is not None for r in sample.regions)))
        rung, may_run = _gauge("gridshift_policy_rung"), _gauge("gridshift_region_batch_may_run")
        bits = _gauge("gridshift_region_knob_precision_bits")
        batch, concurrency = (
            _gauge("gridshift_region_knob_max_batch_size"),
            _gauge("gridshift_region_knob_max_concurrency"),
        )
        power = {key: _gauge(f"gridshift_region_{key}_power_watts") for key in ("grid", "baseline", "site", "battery")}
        soc, flexible = _gauge("gridshift_region_battery_soc_ratio"), _gauge("gridshift_region_flexible_power_watts")
        load = _gauge("gridshift_region_load_requests_per_second")
        for r in sample.regions:
            if r.rung is not None:
                rung.add_metric([r.region], r.rung)
            if r.batch_may_run is not None:
                may_run.add_metric([r.region], float(r.batch_may_run))
            for workload_class, precision in r.precision.items():
                if precision in PRECISION_BITS:
                    bits.add_metric([r.region, workload_class], PRECISION_BITS[precision])
            batch.add_metric([r.region], r.max_batch_size)
            concurrency.add_metric([r.region], r.max_concurrency)
            for key, kw in (("grid", r.grid_kw), ("baseline", r.baseline_kw), ("site", r.site_kw)):
                if kw is not None:
                    power[key].add_metric([r.region], kw * WATTS_PER_KW)
            if r.battery_kw is not None and r.battery_soc is not None:
                power["battery"].add_metric([r.region], r.battery_kw * WATTS_PER_KW)
                soc.add_metric([r.region], r.battery_soc)
            for lever, kw in r.flexible_kw.items():
                flexible.add_metric([r.region, lever], kw * WATTS_PER_KW)
            load.add_metric([r.region], r.requests_per_s)
        share, shifted = _gauge("gridshift_route_share_ratio"), _gauge("gridshift_origin_shifted_items_per_second")
        for origin, pairs in sample.split.items():
            for region, fraction in pairs:
                share.add_metric([origin, region], fraction)
        for origin, rate in sorted(sample.shifted_items_per_s.items()):
            shifted.add_metric([origin], rate)
        yield from (
            fresh,
            rung,
            may_run,
            bits,
            batch,
            concurrency,
            *power.values(),
            soc,
            flexible,
            load,
            share,
            shifted,
        )

    def _job_metrics(self) -> Iterator[Metric]:
        done = {
            "batch": _counter("gridshift_batch_rows_done_total"),
            "training": _counter("gridshift_training_steps_done_total"),
        }
        total = {"batch": _gauge("gridshift_batch_rows"), "training": _gauge("gridshift_training_steps")}
        progress, state = _gauge("gridshift_job_progress_ratio"), _gauge("gridshift_job_state")
        for job in self._jobs:  # in policies.control_history.operator_jobs' shape
            kind = str(job["kind"])
            labels = [str(job["job_id"]), str(job["region"])]
            work_done, work_total = float(job["done"]), float(job["total"])
            done[kind].add_metric(labels, work_done)
            total[kind].add_metric(labels, work_total)
            progress.add_metric([*labels, kind], work_done / work_total if work_total > 0 else 0.0)
            state.add_metric([*labels, kind, str(job["state"])], 1.0)
        yield from (*done.values(), *total.values(), progress, state)


def render_metrics(
    state: ControlState, sample: ControlSample | None = None, jobs: Sequence[Mapping[str, Any]] = ()
) -> bytes:
    """The exposition text of the control state, as prometheus_client writes it (full float precision)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(ControlStateCollector(state, sample, jobs))
    return generate_latest(registry)


async def best_effort(call: Awaitable[T], default: T) -> T:
    """`call`'s answer within CALL_TIMEOUT_S, else `default`: operators' figures never fail a scrape or a page."""
    try:
        return await asyncio.wait_for(call, CALL_TIMEOUT_S)
    except Exception:  # the control actor may be restarting: answer with what is at hand, and log why
        logger.warning("a control-plane call for operators' figures failed; answering without it", exc_info=True)
        return default


async def exposition(core: GatewayCore) -> bytes:
    """`GET /metrics`: the control state this replica routes with, the newest history sample and the job reports."""
    state = await core.ready_state()
    samples, batch, training = await asyncio.gather(
        best_effort(core.control.call(ControlApi.history, None, 0.0, 1), []),
        best_effort(core.control.call(ControlApi.job_statuses), []),
        best_effort(core.control.call(ControlApi.training_statuses), []),
    )
    return render_metrics(state, samples[-1] if samples else None, operator_jobs(batch, training))
