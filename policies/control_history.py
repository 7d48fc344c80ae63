"""Control history: compact samples of the control state (grid, rung, knobs, power, battery, traffic split) kept in a
bounded ring buffer, so the operator console, the terminal view and /metrics read one summary of the fleet."""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from fleet.config import FleetConfig
from fleet.events import DREvent, active_event_level
from fleet.times import iso
from policies.control_state import ControlState, GatewayLoad
from policies.ladder import RegionDecision
from policies.load import RegionLoad
from router.routing import RouteRequest, choose_region

HISTORY_SPAN_S = 3600.0
"""How far back the history reaches (wall seconds): the console opens on the last hour, never on empty charts."""
SAMPLE_EVERY_S = 1.0
"""Least wall time between two routine samples; a change that routing or the operator cares about (stress, events,
knobs, health) is sampled at once, so the console shows a DR event within one refresh."""
MAX_SAMPLES = 4096
"""Hard bound on the buffer: an hour at one sample a second, plus room for change-triggered samples."""

WORKLOAD_CLASSES_SHOWN = ("realtime", "tolerant", "batch")


@dataclass(frozen=True)
class RegionSample:
    """One region at one moment: its grid, the policy's rung and knobs in force, power and battery, and its load."""

    region: str
    headroom: float  # 0..1
    stress_level: int  # 0..3, DR events included
    event_level: int | None  # highest active DR level on the region; None: no event
    healthy: bool
    utilization: float  # in-flight work over capacity, 1.0 = full
    stale: bool  # some headroom term decays for age
    knob_source: str  # operator | policy | defaults
    precision: Mapping[str, str]  # workload class -> precision in force
    max_batch_size: int
    max_concurrency: int
    requests_per_s: float  # measured, summed over the region's replicas
    rung: int | None = None  # the policy's ladder step; None before its first decision
    batch_may_run: bool | None = None
    grid_kw: float | None = None
    baseline_kw: float | None = None  # what the region would draw without control
    site_kw: float | None = None
    battery_kw: float | None = None  # > 0 discharging
    battery_soc: float | None = None  # 0..1
    flexible_kw: Mapping[str, float] = field(default_factory=dict)  # lever -> kW it could still shed


@dataclass(frozen=True)
class ControlSample:
    """The fleet at one moment. `split` is, per origin, where the routing core sends its tolerant work now, as
    (region, share) pairs; `shifted_items_per_s` is, per origin, what gateways measured leaving it."""

    wall_s: float
    at_s: int  # control clock (trace time under replay)
    version: int
    regions: tuple[RegionSample, ...]
    split: Mapping[str, tuple[tuple[str, float], ...]]
    shifted_items_per_s: Mapping[str, float]
    events: tuple[tuple[str, str, int | None], ...]  # (event id, region, level) active now


def traffic_split(
    fleet: FleetConfig, state: ControlState, rtt_ms: Mapping[str, Mapping[str, float]], workload_class: str = "tolerant"
) -> dict[str, tuple[tuple[str, float], ...]]:
    """Per origin, where the routing core sends `workload_class` work on this state, with each region's share
    (the regions its draw could pick, and their probabilities). The same function gateways route with."""
    workload = fleet.workload_classes[workload_class]
    budget = workload.latency_budget_ms or 0.0
    split: dict[str, tuple[tuple[str, float], ...]] = {}
    for origin in fleet.region_names:
        request = RouteRequest(origin, workload_class, workload.mode, budget)
        decision = choose_region(request, state.snapshot.states, rtt_ms, fleet.routing, explain=False)
        split[origin] = decision.eligible or ((decision.region, 1.0),)
    return split


def sample_state(
    fleet: FleetConfig,
    state: ControlState,
    wall_s: float,
    rtt_ms: Mapping[str, Mapping[str, float]],
    decisions: Mapping[str, RegionDecision],
    loads: Mapping[str, RegionLoad],
    reports: Iterable[GatewayLoad] = (),
    policy_fresh: bool = True,
) -> ControlSample:
    """Summarise a control state with the policy's decisions (counted only while fresh) and measured load."""
    at_s = state.snapshot.at_s
    regions = []
    for snap in state.snapshot.regions:
        name = snap.config.name
        knobs = state.knobs[name]
        decision = decisions.get(name) if policy_fresh else None
        load = loads.get(name)
        power = None if decision is None else decision.power
        battery_soc = None
        if decision is not None and decision.battery is not None and snap.config.battery is not None:
            battery_soc = decision.battery.soc_fraction(snap.config.battery)
        regions.append(
            RegionSample(
                region=name,
                headroom=snap.assessment.headroom,
                stress_level=snap.assessment.stress_level,
                event_level=active_event_level(state.events, name, at_s),
                healthy=snap.state.healthy,
                utilization=snap.state.utilization,
                stale=snap.assessment.stale,
                knob_source=state.knob_sources.get(name, "defaults"),
                precision={c: knobs.precision_for(c).value for c in WORKLOAD_CLASSES_SHOWN},
                max_batch_size=knobs.max_batch_size,
                max_concurrency=knobs.max_concurrency,
                requests_per_s=0.0 if load is None else load.requests_per_s,
                rung=None if decision is None else decision.step,
                batch_may_run=None if decision is None else decision.batch.may_run,
                grid_kw=None if power is None else power.grid_kw,
                baseline_kw=None if power is None else power.baseline_kw,
                site_kw=None if power is None else power.site_kw,
                battery_kw=None if power is None else power.battery_kw,
                battery_soc=battery_soc,
                flexible_kw={} if power is None else {lever.value: kw for lever, kw in power.flexible_kw.items()},
            )
        )
    shifted: dict[str, float] = {}
    for report in reports:
        for origin, rate in report.moved_items_per_s.items():
            shifted[origin] = shifted.get(origin, 0.0) + rate
    return ControlSample(
        wall_s=wall_s,
        at_s=at_s,
        version=state.version,
        regions=tuple(regions),
        split=traffic_split(fleet, state, rtt_ms),
        shifted_items_per_s=shifted,
        events=_active(state.events, at_s),
    )


def _active(events: Sequence[DREvent], at_s: float) -> tuple[tuple[str, str, int | None], ...]:
    return tuple((e.event_id, e.region, e.level) for e in events if e.active_at(at_s))


def change_signature(state: ControlState) -> tuple[object, ...]:
    """What makes a sample due at once: stress, health, the event set and the knobs in force (not headroom noise)."""
    return (
        tuple((s.name, s.stress_level, s.healthy) for s in state.snapshot.states),
        tuple(event.event_id for event in state.events),
        tuple(sorted((name, knobs.model_dump_json()) for name, knobs in state.knobs.items())),
    )


@dataclass
class ControlHistory:
    """A bounded ring buffer of samples: one per `every_s` of wall time, plus one at each significant change;
    nothing older than `span_s` is kept."""

    span_s: float = HISTORY_SPAN_S
    every_s: float = SAMPLE_EVERY_S
    max_samples: int = MAX_SAMPLES
    _samples: deque[ControlSample] = field(init=False)
    _signature: tuple[object, ...] | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        if self.span_s <= 0 or self.every_s < 0 or self.max_samples < 1:
            raise ValueError("history: span_s > 0, every_s >= 0 and max_samples >= 1 are required")
        self._samples = deque(maxlen=self.max_samples)

    def due(self, state: ControlState, wall_s: float) -> bool:
        """Whether a sample of `state` at `wall_s` belongs in the history (cheap: no summary is built)."""
        if not self._samples:
            return True
        return change_signature(state) != self._signature or wall_s - self._samples[-1].wall_s >= self.every_s

    def add(self, state: ControlState, sample: ControlSample) -> None:
        self._signature = change_signature(state)
        self._samples.append(sample)
        horizon = sample.wall_s - self.span_s
        while self._samples and self._samples[0].wall_s < horizon:
            self._samples.popleft()

    def since(
        self, after_wall_s: float | None = None, every_s: float = 0.0, limit: int | None = None
    ) -> list[ControlSample]:
        """Samples newer than `after_wall_s` (None: all), oldest first, thinned to at most one per `every_s` (the
        newest always kept, so a chart ends at now), and only the newest `limit` of those."""
        picked: list[ControlSample] = []
        newer = [s for s in self._samples if after_wall_s is None or s.wall_s > after_wall_s]
        for sample in newer:
            if every_s <= 0 or not picked or sample.wall_s - picked[-1].wall_s >= every_s:
                picked.append(sample)
        if newer and picked[-1] is not newer[-1]:
            picked.append(newer[-1])
        return picked if limit is None else picked[len(picked) - limit :] if limit > 0 else []


def sample_to_dict(sample: ControlSample) -> dict[str, object]:
    """Stable JSON form (units in key names) for the console's API."""
    return {
        "wall_s": round(sample.wall_s, 3),
        "at": iso(sample.at_s),
        "at_s": sample.at_s,
        "version": sample.version,
        "regions": {
            r.region: {
                "headroom": round(r.headroom, 4),
                "stress_level": r.stress_level,
                "event_level": r.event_level,
                "healthy": r.healthy,
                "utilization": round(r.utilization, 4),
                "stale": r.stale,
                "knob_source": r.knob_source,
                "precision": dict(r.precision),
                "max_batch_size": r.max_batch_size,
                "max_concurrency": r.max_concurrency,
                "requests_per_s": round(r.requests_per_s, 3),
                "rung": r.rung,
                "batch_may_run": r.batch_may_run,
                "grid_kw": _kw(r.grid_kw),
                "baseline_kw": _kw(r.baseline_kw),
                "site_kw": _kw(r.site_kw),
                "battery_kw": _kw(r.battery_kw),
                "battery_soc": None if r.battery_soc is None else round(r.battery_soc, 4),
                "flexible_kw": {lever: round(kw, 1) for lever, kw in r.flexible_kw.items()},
            }
            for r in sample.regions
        },
        "split": {
            origin: [[region, round(share, 4)] for region, share in pairs] for origin, pairs in sample.split.items()
        },
        "shifted_items_per_s": {origin: round(rate, 3) for origin, rate in sample.shifted_items_per_s.items()},
        "events": [{"event_id": i, "region": region, "level": level} for i, region, level in sample.events],
    }


def _kw(value: float | None) -> float | None:
    return None if value is None else round(value, 1)


def operator_jobs(
    batch: Sequence[Mapping[str, object]], training: Sequence[Mapping[str, object]] = ()
) -> list[dict[str, object]]:
    """Batch and training jobs in one shape for operators: work done and in all (rows for a batch job, steps for a
    training run), its rate per wall second, state and why."""

    def count(value: object) -> int:
        return int(value) if isinstance(value, int | float) else 0

    def rate(value: object) -> float:
        return float(value) if isinstance(value, int | float) else 0.0

    jobs: list[dict[str, object]] = []
    for kind, unit, statuses in (("batch", "rows", batch), ("training", "steps", training)):
        for status in statuses:
            jobs.append(
                {
                    "job_id": status.get("job_id"),
                    "kind": kind,
                    "region": status.get("region"),
                    "state": status.get("state"),
                    "unit": unit,
                    "done": count(status.get(f"{unit}_done")),
                    "total": count(status.get(f"{unit}_total")),
                    "per_second": rate(status.get(f"{unit}_per_second")),
                    "reason": status.get("reason") or "",
                    "deadline": status.get("deadline"),
                    "on_track": status.get("on_track"),
                }
            )
    return jobs
