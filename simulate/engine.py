"""The fleet what-if engine: hour by hour over a real trace, every region's work decided by the live pure functions.

Per hour: the fleet snapshot (router.state.snapshot: the one headroom formula), the magnitude ladder with battery and
power model (policies.ladder.decide_region), the batch gate for every batch and training job (policies.planner
plan_windows / should_run and policies.batch_gate.decide_gate, as policies.job_registry composes them), the routing
rules for tolerant work (router.sticky.StickyRouter.shares, choose_region's eligible split), and the power model for
the hour's draw (policies.power.estimate_power). Nothing here decides; it only feeds those functions and books what
they decide. The jobs' plan and gate are simulate/engine_jobs.py, the routing of tolerant work
simulate/engine_route.py.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Final

import numpy as np

from fleet.config import FleetConfig
from fleet.events import DREvent, active_power_limit_kw
from fleet.serving import Knobs, Precision
from grid.context import FleetContext
from grid.trace import FloatArray, IntArray, SignalReader
from policies.calibration import Calibration
from policies.ladder import RegionDecision, RegionInputs, decide_region
from policies.load import RegionLoad
from policies.outlook import load_under, stressed_seconds_ahead
from policies.power import Lever, PowerInputs, estimate_power
from router.routing import RegionState
from router.state import snapshot
from router.sticky import StickyRouter
from simulate.engine_jobs import GateHour, JobGate, JobState
from simulate.engine_route import Routed, route_home, route_tolerant
from simulate.jobs import HOUR_S, JOB_UNITS_PER_REGION, generate_jobs
from simulate.mix import WorkloadMix

LEVER_ORDER: Final = (Lever.SHIFT_AWAY, Lever.DEFER, Lever.REDUCE, Lever.BATTERY)


@dataclass(frozen=True)
class SimulationSpec:
    start_s: int
    end_s: int
    mix: WorkloadMix
    levers: frozenset[str]
    events: tuple[DREvent, ...] = ()
    utilization: float = 0.6  # offered work at fp32 over each region's compute, before any lever
    seed: int = 0
    foresight: str = "forecast"  # forecast: what the live system knows; perfect: the trace's actual future
    warmup_hours: int = 96  # jobs start this long before the window, so long training runs are in flight
    mean_batch_requests: float = 8.0
    route_chunks: int = 4  # each origin's tolerant work is routed in this many pieces, round robin over origins
    peak_factor: float = 1.5  # busiest minute over the mean (simulate.arrivals): real-time capacity must cover it


@dataclass
class SimulationRun:
    """What happened, per region (rows, fleet order) and hour (columns) of the window."""

    spec: SimulationSpec
    regions: tuple[str, ...]
    times_s: IntArray
    series: dict[str, FloatArray]  # name -> (regions, hours)
    flexible_kw: dict[Lever, FloatArray]  # lever -> (regions, hours)
    moved_cpu_h: FloatArray  # (origin, destination) tolerant CPU-hours served away from the origin
    counters: dict[str, float] = field(default_factory=dict)
    missed_jobs: list[str] = field(default_factory=list)


def simulation_fleet(fleet: FleetConfig, levers: frozenset[str]) -> FleetConfig:
    """The fleet as simulated: one job unit is 1/JOB_UNITS_PER_REGION of a region's compute (the power model's
    batch_job_cpus), and without the battery lever no region has one."""
    compute = fleet.serving.replicas_per_region * fleet.serving.torch_threads
    power = fleet.power.model_copy(update={"batch_job_cpus": compute / JOB_UNITS_PER_REGION})
    regions = fleet.regions if "battery" in levers else [r.model_copy(update={"battery": None}) for r in fleet.regions]
    return fleet.model_copy(update={"power": power, "regions": regions})


_SERIES: Final = ("grid_kw", "site_kw", "battery_kw", "it_kw", "stress", "rung", "headroom", "tolerant_in_cpu")
_COUNTERS: Final = (
    "realtime_slo_miss_hours",
    "tolerant_items",
    "tolerant_items_over_budget",
    "tolerant_items_moved",
    "jobs_finished",
    "jobs_missed_deadline",
    "job_unit_hours_deferred",
    "floor_hours_realtime",
    "floor_hours_tolerant",
    "floor_hours_batch",
    "battery_discharged_kwh",
)


@dataclass
class _Books:
    """What the run records over the window (hours before it are warm-up: decided, not booked)."""

    series: dict[str, FloatArray]
    flexible: dict[Lever, FloatArray]
    moved: FloatArray
    counters: dict[str, float]
    missed: list[str] = field(default_factory=list)

    @classmethod
    def empty(cls, n: int, hours: int) -> _Books:
        series = {key: np.zeros((n, hours)) for key in _SERIES}
        series["carbon_g_per_kwh"] = np.full((n, hours), np.nan)
        series["price_usd_per_mwh"] = np.full((n, hours), np.nan)
        flexible = {lever: np.zeros((n, hours)) for lever in LEVER_ORDER}
        return cls(series, flexible, np.zeros((n, n)), dict.fromkeys(_COUNTERS, 0.0))


@dataclass
class _Carried:
    """Per region, what one hour leaves the next: the decision, and the load the ladder measures under it."""

    decision: RegionDecision | None
    tolerant_here: float
    running: int
    deferred: int
    moved_away: float


class _Engine:
    def __init__(
        self, context: FleetContext, reader: SignalReader, calibration: Calibration, spec: SimulationSpec
    ) -> None:
        self.spec = spec
        self.fleet = simulation_fleet(context.fleet, spec.levers)
        self.context = replace(context, fleet=self.fleet)
        self.reader = reader
        self.calibration = calibration
        self.names = self.fleet.region_names
        self.compute = float(self.fleet.serving.replicas_per_region * self.fleet.serving.torch_threads)
        self.unit_cpus = self.fleet.power.batch_job_cpus
        self.item_cpu_s = calibration.cpu_ms_per_item(Precision.FP32, spec.mean_batch_requests) / 1000.0
        self.defaults: Knobs = self.fleet.serving.knobs
        tolerant = self.fleet.workload_classes["tolerant"]
        self.tolerant_budget_ms = tolerant.latency_budget_ms or 150.0
        self.router = StickyRouter(context.rtt_ms, self.fleet.routing)
        self.events = list(spec.events)
        self.jobs = JobGate(self.context, self.fleet, spec.levers, spec.foresight, self.defaults)
        shares = spec.mix.as_dict()
        self.offered_cpu = {c: spec.utilization * shares[c] * self.compute for c in ("realtime", "tolerant")}

    def _offered(self, realtime: float, tolerant: float) -> RegionLoad:
        busy = {"realtime": realtime, "tolerant": tolerant}
        return RegionLoad(
            replicas=1,
            requests_per_s=(realtime + tolerant) / self.item_cpu_s,
            items_per_s=(realtime + tolerant) / self.item_cpu_s,
            busy_cpu_s_per_s=realtime + tolerant,
            busy_by_class=busy,
            busy_by_precision={Precision.FP32.value: realtime + tolerant},
            mean_batch_requests=self.spec.mean_batch_requests,
        )

    def _ratio(self, knobs: Knobs, workload_class: str) -> float:
        return self.calibration.cost_ratio(
            knobs.precision_for(workload_class), Precision.FP32, self.spec.mean_batch_requests
        )

    # The hour's pieces ------------------------------------------------------------------------------------------

    def _grid(self, times: IntArray) -> tuple[list[tuple[RegionState, ...]], IntArray]:
        """Every hour's fleet snapshot (router.state.snapshot: the headroom formula, DR events), and the stress
        table the perfect-foresight battery reads ahead in."""
        states_by_hour: list[tuple[RegionState, ...]] = []
        stress = np.zeros((len(self.names), len(times)), dtype=np.int64)
        for h, moment in enumerate(times):
            states = snapshot(self.fleet, self.reader, int(moment), events=self.events).states
            states_by_hour.append(states)
            stress[:, h] = [s.stress_level for s in states]
        return states_by_hour, stress

    def _stressed_ahead(self, i: int, h: int, at: int, stress: IntArray) -> float:
        """The battery's outlook: the forecast's (policies.outlook.stressed_seconds_ahead), or the actual run ahead."""
        battery = self.fleet.policy.battery
        if self.spec.foresight == "perfect":
            run_hours = 0
            while h + run_hours < stress.shape[1] and stress[i, h + run_hours] >= battery.discharge_at_stress:
                run_hours += 1
            return float(min(run_hours * HOUR_S, battery.horizon_s))
        return stressed_seconds_ahead(
            self.context, self.names[i], at, battery.discharge_at_stress, battery.horizon_s, peak_reader=self.reader
        )

    def _decide(
        self, h: int, at: int, states: tuple[RegionState, ...], stress: IntArray, carried: list[_Carried]
    ) -> list[RegionDecision]:
        """The ladder and the battery per region (policies.ladder.decide_region), from the load measured under the
        knobs in force (policies.outlook.load_under)."""
        decisions = []
        for i, name in enumerate(self.names):
            region, last = self.fleet.regions[i], carried[i]
            inputs = RegionInputs(
                region=name,
                now_s=at,
                stress_level=states[i].stress_level,
                headroom=states[i].headroom,
                load=load_under(
                    self._offered(self.offered_cpu["realtime"], last.tolerant_here),
                    self.defaults if last.decision is None else last.decision.knobs,
                    self.calibration,
                ),
                power_limit_kw=active_power_limit_kw(self.events, name, at),
                running_batch_jobs=last.running,
                deferred_batch_jobs=last.deferred,
                shifted_away_items_per_s=last.moved_away / self.item_cpu_s,
                stressed_s_ahead=0.0 if region.battery is None else self._stressed_ahead(i, h, at, stress),
            )
            decisions.append(decide_region(inputs, last.decision, region, self.fleet, self.calibration))
        return decisions

    def _route(self, states: tuple[RegionState, ...], knobs: list[Knobs], gate: GateHour) -> Routed:
        """Tolerant work through the routing rules, on top of real-time work and the jobs that run."""
        n, realtime = len(self.names), self.offered_cpu["realtime"]
        ratio = {c: np.array([self._ratio(knobs[i], c) for i in range(n)]) for c in ("realtime", "tolerant")}
        busy = realtime * ratio["realtime"] + gate.running_units * self.unit_cpus
        tolerant, chunks = self.offered_cpu["tolerant"], self.spec.route_chunks
        if "geo" not in self.spec.levers:
            return route_home(busy, tolerant, ratio["tolerant"], chunks)
        return route_tolerant(
            self.router, states, busy, self.compute, tolerant, ratio["tolerant"], chunks, self.tolerant_budget_ms
        )

    def _book(
        self,
        books: _Books,
        column: int,
        at: int,
        states: tuple[RegionState, ...],
        decisions: list[RegionDecision],
        knobs: list[Knobs],
        gate: GateHour,
        routed: Routed,
    ) -> None:
        """The hour's draw (policies.power.estimate_power under the knobs in force, with the battery's dispatch),
        and everything else the window reports."""
        spec, series, counters = self.spec, books.series, books.counters
        moved_away = routed.moved.sum(axis=1)
        magnitude = "magnitude" in spec.levers
        for i, region in enumerate(self.fleet.regions):
            decision, knob = decisions[i], knobs[i]
            battery_kw = decision.power.battery_kw
            available = sum(v for k, v in decision.power.flexible_kw.items() if k is Lever.BATTERY)
            load = load_under(
                self._offered(self.offered_cpu["realtime"], routed.tolerant_in[i]), knob, self.calibration
            )
            power = estimate_power(
                region,
                PowerInputs(
                    load=load,
                    knobs=knob,
                    compute_cpus=self.compute,
                    running_batch_jobs=int(gate.running_units[i]),
                    deferred_batch_jobs=int(gate.deferred_units[i]),
                    shifted_away_items_per_s=moved_away[i] / self.item_cpu_s,
                    battery_kw=battery_kw,
                ),
                self.fleet.power,
                self.calibration,
                self.fleet.policy.quality_floor,
                available,
            )
            series["grid_kw"][i, column] = power.grid_kw
            series["site_kw"][i, column] = power.site_kw
            series["it_kw"][i, column] = power.it_kw
            series["battery_kw"][i, column] = battery_kw
            series["stress"][i, column] = states[i].stress_level
            series["headroom"][i, column] = states[i].headroom
            series["rung"][i, column] = decision.step if magnitude else 0
            series["tolerant_in_cpu"][i, column] = routed.tolerant_in[i]
            for lever in LEVER_ORDER:
                books.flexible[lever][i, column] = power.flexible_kw.get(lever, 0.0)
            counters["battery_discharged_kwh"] += max(battery_kw, 0.0)
            realtime_peak = self.offered_cpu["realtime"] * spec.peak_factor * self._ratio(knob, "realtime")
            if realtime_peak > self.compute:
                counters["realtime_slo_miss_hours"] += 1
            for workload_class in ("realtime", "tolerant", "batch"):
                if knob.precision_for(workload_class) is not Precision.FP32:
                    counters[f"floor_hours_{workload_class}"] += 1
            for column_name in ("carbon_g_per_kwh", "price_usd_per_mwh"):
                observation = self.context.trace.latest(region.zone_for(column_name), column_name, at)
                if observation is not None and at - observation.observed_at_s < HOUR_S:
                    series[column_name][i, column] = observation.value
        books.moved += routed.moved
        n = len(self.names)
        counters["tolerant_items"] += self.offered_cpu["tolerant"] * n / self.item_cpu_s * HOUR_S
        counters["tolerant_items_over_budget"] += routed.over_budget / self.item_cpu_s * HOUR_S
        counters["tolerant_items_moved"] += float(routed.moved.sum()) / self.item_cpu_s * HOUR_S
        counters["job_unit_hours_deferred"] += float(gate.deferred_units.sum())
        for state in gate.finished:
            counters["jobs_finished"] += 1
            if at + HOUR_S > state.job.deadline_s:
                counters["jobs_missed_deadline"] += 1
                books.missed.append(state.job.job_id)

    # The run ---------------------------------------------------------------------------------------------------

    def run(self) -> SimulationRun:
        spec, names = self.spec, self.names
        first = spec.start_s - spec.warmup_hours * HOUR_S
        times = np.arange(first, spec.end_s, HOUR_S, dtype=np.int64)
        window = times >= spec.start_s
        n, hours = len(names), int(window.sum())
        jobs = generate_jobs(names, first, spec.end_s, spec.mix.as_dict(), spec.utilization, spec.seed)
        pending = sorted(jobs, key=lambda j: j.release_s)
        index = {name: i for i, name in enumerate(names)}
        active: list[list[JobState]] = [[] for _ in names]
        books = _Books.empty(n, hours)
        carried = [_Carried(None, self.offered_cpu["tolerant"], 0, 0, 0.0) for _ in names]
        states_by_hour, stress = self._grid(times)
        pointer = 0
        for h, at in enumerate(int(value) for value in times):
            column = h - (len(times) - hours)
            states = states_by_hour[h]
            while pointer < len(pending) and pending[pointer].release_s <= at:
                job = pending[pointer]
                active[index[job.region]].append(JobState(job, job.work_s))
                pointer += 1
            decisions = self._decide(h, at, states, stress, carried)
            knobs = [d.knobs if "magnitude" in spec.levers else self.defaults for d in decisions]
            # Jobs: the gate, with the policy's batch permission of this hour.
            gate = self.jobs.hour(active, at, [s.stress_level for s in states], decisions)
            routed = self._route(states, knobs, gate)
            moved_away = routed.moved.sum(axis=1)
            carried = [
                _Carried(
                    decisions[i],
                    float(routed.tolerant_in[i]),
                    int(gate.running_units[i]),
                    int(gate.deferred_units[i]),
                    float(moved_away[i]),
                )
                for i in range(n)
            ]
            if column >= 0:
                self._book(books, column, at, states, decisions, knobs, gate, routed)
        # A job still running when its deadline passed inside the window missed it too.
        for region_jobs in active:
            for state in region_jobs:
                if state.job.deadline_s <= spec.end_s:
                    books.counters["jobs_missed_deadline"] += 1
                    books.missed.append(state.job.job_id)
        books.counters["jobs_total"] = float(sum(1 for job in jobs if job.release_s >= spec.start_s))
        return SimulationRun(
            spec, names, times[window], books.series, books.flexible, books.moved, books.counters, books.missed
        )


def simulate_fleet(
    context: FleetContext, reader: SignalReader, calibration: Calibration, spec: SimulationSpec
) -> SimulationRun:
    """One run of the fleet over the spec's window (see the module docstring)."""
    return _Engine(context, reader, calibration, spec).run()


def region_kw(run: SimulationRun, name: str) -> Mapping[str, FloatArray]:
    i = run.regions.index(name)
    return {key: values[i] for key, values in run.series.items()}
