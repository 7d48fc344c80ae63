"""The fleet what-if engine: hour by hour over a real trace, every region's work decided by the live pure functions.

Per hour: the fleet snapshot (router.state.snapshot: the one headroom formula), the magnitude ladder with battery and
power model (policies.ladder.decide_region), the batch gate for every batch and training job (policies.planner
plan_windows / should_run and policies.batch_gate.decide_gate, as policies.job_registry composes them), the routing
core for tolerant work (router.routing.StickyRouter), and the power model for the hour's draw
(policies.power.estimate_power). Nothing here decides; it only feeds those functions and books what they decide.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Final

import numpy as np

from fleet.config import FleetConfig
from fleet.events import DREvent, active_power_limit_kw
from fleet.routing import RoutingMode
from fleet.serving import Knobs, Precision
from grid.context import FleetContext
from grid.trace import FloatArray, IntArray, SignalReader
from policies.batch_gate import BatchKnobs, PlanVerdict, decide_gate, workers_for
from policies.calibration import Calibration
from policies.ladder import RegionDecision, RegionInputs, decide_region
from policies.load import RegionLoad
from policies.outlook import load_under, stressed_seconds_ahead
from policies.plan import DEFAULT_PLANNER_CONFIG, Plan, PlanSignal
from policies.plan_forecast import forecast_signal
from policies.planner import plan_verdict, plan_windows
from policies.power import Lever, PowerInputs, estimate_power
from router.routing import RegionState, RouteRequest
from router.state import snapshot
from router.sticky import StickyRouter
from simulate.jobs import HOUR_S, JOB_UNITS_PER_REGION, Job, generate_jobs
from simulate.mix import WorkloadMix

JOB_SIGNAL: Final = PlanSignal.CARBON
"""The signal simulated jobs plan on (the default trace carries carbon; a job without a forecast runs, as live)."""
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


@dataclass
class _JobState:
    job: Job
    remaining_s: int
    plan: Plan | None = None
    planned: bool = False


def simulation_fleet(fleet: FleetConfig, levers: frozenset[str]) -> FleetConfig:
    """The fleet as simulated: one job unit is 1/JOB_UNITS_PER_REGION of a region's compute (the power model's
    batch_job_cpus), and without the battery lever no region has one."""
    compute = fleet.serving.replicas_per_region * fleet.serving.torch_threads
    power = fleet.power.model_copy(update={"batch_job_cpus": compute / JOB_UNITS_PER_REGION})
    regions = fleet.regions if "battery" in levers else [r.model_copy(update={"battery": None}) for r in fleet.regions]
    return fleet.model_copy(update={"power": power, "regions": regions})


def _actual_signal(context: FleetContext, region: str, slots: IntArray) -> FloatArray:
    config = context.fleet.region(region)
    series = context.trace.zones.get(config.zone_for("carbon_g_per_kwh"))
    values = np.full(len(slots), np.nan)
    if series is None or "carbon_g_per_kwh" not in series.columns:
        return values
    rows = np.searchsorted(series.times_s, slots)
    ok = rows < len(series.times_s)
    hit = ok.copy()
    hit[ok] = series.times_s[rows[ok]] == slots[ok]
    values[hit] = series.columns["carbon_g_per_kwh"][rows[hit]]
    return values


def _with_utilization(state: RegionState, utilization: float) -> RegionState:
    # The constructor, not dataclasses.replace: this runs for every routed piece, and replace costs ten times more.
    return RegionState(
        state.name,
        state.headroom,
        state.stress_level,
        state.healthy,
        utilization,
        state.capacity_replicas,
        state.service_time_ms,
    )


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

    # The hour's pieces ------------------------------------------------------------------------------------------

    def _verdict(self, state: _JobState, now: int) -> PlanVerdict:
        """As policies.job_registry.plan_verdict: the job's plan, made at its first gate, and the slack rule."""
        job, config = state.job, DEFAULT_PLANNER_CONFIG
        if not state.planned:
            state.planned = True
            slots = np.arange(now // HOUR_S * HOUR_S, max(job.deadline_s, now + HOUR_S), HOUR_S, dtype=np.int64)
            region = self.fleet.region(job.region)
            try:
                if self.spec.foresight == "perfect":
                    forecast = _actual_signal(self.context, job.region, slots)
                    if np.isnan(forecast).all():
                        raise ValueError("no carbon in the trace for the window")
                else:
                    forecast = forecast_signal(self.context.trace, region, JOB_SIGNAL, now, slots, self.fleet.headroom)
            except ValueError:
                state.plan = None
            else:
                state.plan = plan_windows(
                    now, job.deadline_s, state.remaining_s, slots, forecast, JOB_SIGNAL, now_s=now, config=config
                )
        return plan_verdict(state.plan, now, state.remaining_s, job.deadline_s, config)

    def _runs(self, state: _JobState, now: int, stress: int, decision: RegionDecision | None) -> bool:
        if "time" not in self.spec.levers:
            return True
        batch = decision.batch if decision is not None and "magnitude" in self.spec.levers else None
        pause = None if batch is None or batch.may_run else f"the policy paused batch at rung {decision.step}"  # type: ignore[union-attr]
        answer = decide_gate(
            manual_pause=False,
            verdict=self._verdict(state, now),
            stress_level=stress,
            knobs=BatchKnobs(
                batch_size=self.defaults.max_batch_size if batch is None else batch.batch_size,
                precision=self.defaults.precision_for("batch").value if batch is None else batch.precision.value,
                concurrency=workers_for(state.job.width_units, 1.0 if batch is None else batch.workers_fraction),
            ),
            now_s=float(now),
            speedup=1.0,
            policy_pause=pause,
        )
        return answer.run

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

    # The run ---------------------------------------------------------------------------------------------------

    def run(self) -> SimulationRun:
        spec, names = self.spec, self.names
        first = spec.start_s - spec.warmup_hours * HOUR_S
        times = np.arange(first, spec.end_s, HOUR_S, dtype=np.int64)
        window = times >= spec.start_s
        n, hours = len(names), int(window.sum())
        shares = spec.mix.as_dict()
        offered_cpu = {c: spec.utilization * shares[c] * self.compute for c in ("realtime", "tolerant")}
        jobs = generate_jobs(names, first, spec.end_s, shares, spec.utilization, spec.seed)
        pending = sorted(jobs, key=lambda j: j.release_s)
        active: dict[str, list[_JobState]] = {name: [] for name in names}
        index = {name: i for i, name in enumerate(names)}

        series = {
            key: np.zeros((n, hours))
            for key in ("grid_kw", "site_kw", "battery_kw", "it_kw", "stress", "rung", "headroom", "tolerant_in_cpu")
        }
        series["carbon_g_per_kwh"] = np.full((n, hours), np.nan)
        series["price_usd_per_mwh"] = np.full((n, hours), np.nan)
        flexible = {lever: np.zeros((n, hours)) for lever in LEVER_ORDER}
        moved = np.zeros((n, n))
        counters: dict[str, float] = dict.fromkeys(
            (
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
            ),
            0.0,
        )
        missed: list[str] = []
        previous: dict[str, RegionDecision] = {}
        last_inputs: dict[str, tuple[float, int, int, float]] = {}  # tolerant here, running, deferred, moved away
        stress_table = np.zeros((n, len(times)), dtype=np.int64)
        states_by_hour: list[tuple[RegionState, ...]] = []
        for h, moment in enumerate(times):
            snap = snapshot(self.fleet, self.reader, int(moment), events=self.events)
            states_by_hour.append(snap.states)
            stress_table[:, h] = [s.stress_level for s in snap.states]
        discharge_level = self.fleet.policy.battery.discharge_at_stress
        pointer = 0
        for h, at in enumerate(int(value) for value in times):
            column = h - (len(times) - hours)
            states = states_by_hour[h]
            while pointer < len(pending) and pending[pointer].release_s <= at:
                job = pending[pointer]
                active[job.region].append(_JobState(job, job.work_s))
                pointer += 1
            decisions: dict[str, RegionDecision] = {}
            for i, name in enumerate(names):
                region = self.fleet.regions[i]
                tolerant_here, running, deferred, moved_away = last_inputs.get(
                    name, (offered_cpu["tolerant"], 0, 0, 0.0)
                )
                prior = previous.get(name)
                ahead = 0.0
                if region.battery is not None:
                    if spec.foresight == "perfect":
                        run_hours = 0
                        while h + run_hours < len(times) and stress_table[i, h + run_hours] >= discharge_level:
                            run_hours += 1
                        ahead = float(min(run_hours * HOUR_S, self.fleet.policy.battery.horizon_s))
                    else:
                        ahead = stressed_seconds_ahead(
                            self.context, name, at, discharge_level, self.fleet.policy.battery.horizon_s
                        )
                inputs = RegionInputs(
                    region=name,
                    now_s=at,
                    stress_level=states[i].stress_level,
                    headroom=states[i].headroom,
                    load=load_under(
                        self._offered(offered_cpu["realtime"], tolerant_here),
                        self.defaults if prior is None else prior.knobs,
                        self.calibration,
                    ),
                    power_limit_kw=active_power_limit_kw(self.events, name, at),
                    running_batch_jobs=running,
                    deferred_batch_jobs=deferred,
                    shifted_away_items_per_s=moved_away / self.item_cpu_s,
                    stressed_s_ahead=ahead,
                )
                decisions[name] = decide_region(inputs, prior, region, self.fleet, self.calibration)
            previous = decisions
            knobs = {name: decisions[name].knobs if "magnitude" in spec.levers else self.defaults for name in names}
            # Jobs: the gate, with the policy's batch permission of this hour.
            running_units = np.zeros(n)
            deferred_units = np.zeros(n)
            for i, name in enumerate(names):
                still: list[_JobState] = []
                for state in active[name]:
                    if self._runs(state, at, states[i].stress_level, decisions[name]):
                        running_units[i] += state.job.width_units
                        state.remaining_s -= HOUR_S
                    else:
                        deferred_units[i] += state.job.width_units
                        if column >= 0:
                            counters["job_unit_hours_deferred"] += state.job.width_units
                    if state.remaining_s > 0:
                        still.append(state)
                    elif column >= 0:
                        counters["jobs_finished"] += 1
                        if at + HOUR_S > state.job.deadline_s:
                            counters["jobs_missed_deadline"] += 1
                            missed.append(state.job.job_id)
                active[name] = still
            # Tolerant work: the routing core, in pieces, filling destinations as it goes.
            ratio = {c: [self._ratio(knobs[name], c) for name in names] for c in ("realtime", "tolerant")}
            busy = [
                offered_cpu["realtime"] * ratio["realtime"][i] + running_units[i] * self.unit_cpus for i in range(n)
            ]
            # Only the regions work lands on change between two decisions: rebuild just their states.
            current = [_with_utilization(state, busy[i] / self.compute) for i, state in enumerate(states)]
            tolerant_in = np.zeros(n)
            moved_now = np.zeros((n, n))
            piece = offered_cpu["tolerant"] / spec.route_chunks
            over_budget = 0.0
            geo = "geo" in spec.levers
            for _ in range(spec.route_chunks if piece > 0 else 0):
                for origin_index, origin in enumerate(names):
                    if not geo:
                        split: tuple[tuple[str, float], ...] = ((origin, 1.0),)
                    else:
                        request = RouteRequest(origin, "tolerant", RoutingMode.SHIFT, self.tolerant_budget_ms)
                        route = self.router.decide(request, current)
                        split = route.eligible
                        if not route.feasible:
                            over_budget += piece
                    for destination, share in split:
                        d = index[destination]
                        tolerant_in[d] += piece * share
                        busy[d] += piece * share * ratio["tolerant"][d]
                        current[d] = _with_utilization(current[d], busy[d] / self.compute)
                        if d != origin_index:
                            moved_now[origin_index, d] += piece * share
            moved_away = moved_now.sum(axis=1)
            for i, name in enumerate(names):
                last_inputs[name] = (
                    float(tolerant_in[i]),
                    int(running_units[i]),
                    int(deferred_units[i]),
                    float(moved_away[i]),
                )
            if column < 0:
                continue
            # The hour's draw: the power model under the knobs in force, with the battery's dispatch.
            for i, name in enumerate(names):
                region, decision, knob = self.fleet.regions[i], decisions[name], knobs[name]
                battery_kw = decision.power.battery_kw
                available = sum(v for k, v in decision.power.flexible_kw.items() if k is Lever.BATTERY)
                power = estimate_power(
                    region,
                    PowerInputs(
                        load=load_under(self._offered(offered_cpu["realtime"], tolerant_in[i]), knob, self.calibration),
                        knobs=knob,
                        compute_cpus=self.compute,
                        running_batch_jobs=int(running_units[i]),
                        deferred_batch_jobs=int(deferred_units[i]),
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
                series["rung"][i, column] = decision.step if "magnitude" in spec.levers else 0
                series["tolerant_in_cpu"][i, column] = tolerant_in[i]
                for lever in LEVER_ORDER:
                    flexible[lever][i, column] = power.flexible_kw.get(lever, 0.0)
                counters["battery_discharged_kwh"] += max(battery_kw, 0.0)
                realtime_peak = offered_cpu["realtime"] * spec.peak_factor * self._ratio(knob, "realtime")
                if realtime_peak > self.compute:
                    counters["realtime_slo_miss_hours"] += 1
                for workload_class in ("realtime", "tolerant", "batch"):
                    if knob.precision_for(workload_class) is not Precision.FP32:
                        counters[f"floor_hours_{workload_class}"] += 1
            for column_name, key in (
                ("carbon_g_per_kwh", "carbon_g_per_kwh"),
                ("price_usd_per_mwh", "price_usd_per_mwh"),
            ):
                for i, region in enumerate(self.fleet.regions):
                    observation = self.context.trace.latest(region.zone_for(column_name), column_name, at)
                    if observation is not None and at - observation.observed_at_s < HOUR_S:
                        series[key][i, column] = observation.value
            moved += moved_now
            counters["tolerant_items"] += offered_cpu["tolerant"] * n / self.item_cpu_s * HOUR_S
            counters["tolerant_items_over_budget"] += over_budget / self.item_cpu_s * HOUR_S
            counters["tolerant_items_moved"] += float(moved_now.sum()) / self.item_cpu_s * HOUR_S
        # A job still running when its deadline passed inside the window missed it too.
        for name in names:
            for state in active[name]:
                if state.job.deadline_s <= spec.end_s:
                    counters["jobs_missed_deadline"] += 1
                    missed.append(state.job.job_id)
        counters["jobs_total"] = float(sum(1 for job in jobs if job.release_s >= spec.start_s))
        return SimulationRun(spec, names, times[window], series, flexible, moved, counters, missed)


def simulate_fleet(
    context: FleetContext, reader: SignalReader, calibration: Calibration, spec: SimulationSpec
) -> SimulationRun:
    """One run of the fleet over the spec's window (see the module docstring)."""
    return _Engine(context, reader, calibration, spec).run()


def region_kw(run: SimulationRun, name: str) -> Mapping[str, FloatArray]:
    i = run.regions.index(name)
    return {key: values[i] for key, values in run.series.items()}
