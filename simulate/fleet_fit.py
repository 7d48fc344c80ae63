"""Which curtailment rate a fleet mix can deliver: the study's curtailment, run through the fleet simulator.

For a zone and a rate, the study (simulate/curtailment.py) gives the new load L MW and, hour by hour, the room the
grid has for it: ceiling - demand. New AI load of this mix, L MW on average without control, is one simulated region
on the zone's real demand (its stress and headroom from the one headroom formula), and each hour the study curtails
is an OpenADR-style event on it: an import limit of the room (IMPORT_CAPACITY_LIMIT) at level 3 (the authority is
at its seasonal peak). The engine decides with the live functions (ladder, battery, batch gate; one region has
nowhere to shift to, so geographic shifting does not apply). The rate is delivered when every curtailed hour's grid
draw is within the room, with 0 real-time SLO misses and 0 missed deadlines.

The study's ceiling is the record peak, so its deepest hour asks for the whole load, which no fleet with idle power
sheds: every window is simulated, and simulate/backup.py sizes the firm backup (MW, and storage MWh, per MW of new
load) that covers what the levers leave; with it the zone absorbs the rate's L. docs/simulate.md has the model.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final

import numpy as np

from fleet.config import FleetConfig
from fleet.events import DREvent
from fleet.loaders import load_fleet
from fleet.power import BatteryConfig
from grid.context import FleetContext
from grid.trace import IntArray, Trace, ZoneSeries
from policies.calibration import Calibration, load_calibration
from simulate.backup import Backup, WindowDraw, size_backup
from simulate.curtailment import ZoneModel
from simulate.curtailment_data import ZoneDemand
from simulate.engine import SimulationRun, SimulationSpec, simulate_fleet
from simulate.fast import PrecomputedReader
from simulate.jobs import HOUR_S
from simulate.mix import WorkloadMix

REGION: Final = "ai-load"
TEMPLATE_REGION: Final = "us-west-1"
"""The default fleet's region the simulated load is modelled on (compute, power model, battery per MW)."""
LEVERS: Final = frozenset({"time", "magnitude", "battery"})
LEAD_H: Final = 24  # simulated before a window's first curtailed hour (the engine's job warm-up comes on top)
TAIL_H: Final = 48  # simulated after its last, so work deferred through the event must still meet its deadline
MERGE_GAP_H: Final = 72  # curtailed hours closer than this share one window
LIMIT_TOLERANCE: Final = 1e-6  # relative: a draw this close to the room counts as within it
MIN_LIMIT_KW: Final = 1e-3  # an event's limit must be positive; no room at all is a limit of (almost) zero


@dataclass(frozen=True)
class RateFit:
    """How the fleet fared against one rate's curtailment, over every window, and the backup it needs for the rest."""

    rate_pct: float
    deliverable: bool
    windows: int  # windows simulated
    windows_total: int
    curtailed_hours: int  # curtailed hours simulated
    unmet_hours: int  # curtailed hours whose draw exceeded the room
    shortfall_mwh: float  # energy drawn above the room, at the zone's scale
    realtime_slo_miss_hours: int
    missed_deadlines: int
    deepest_shed_share: float  # largest share of L that had to be shed in one hour of the simulated windows
    best_shed_share: float  # largest share of L the fleet shed below its baseline in a curtailed hour
    first_unmet_at: str | None
    load_mw: float = 0.0  # the study's L at this rate
    backup: Backup | None = None  # None only when the rate curtails no hour
    worst_storage_at: str | None = None  # the hour the store is emptiest in the window that sizes it

    @property
    def absorbable_mw_with_backup(self) -> float:
        """L, when the backup covers the draw and the fleet kept its own promises (SLOs, deadlines)."""
        return self.load_mw if self.realtime_slo_miss_hours == 0 and self.missed_deadlines == 0 else 0.0

    def backup_dict(self) -> dict[str, object]:
        backup = self.backup
        return {
            "absorbable_mw": round(self.absorbable_mw_with_backup, 1),
            "backup_mw_per_mw": 0.0 if backup is None else round(backup.backup_mw_per_mw, 4),
            "storage_mwh_per_mw": 0.0 if backup is None else round(backup.storage_mwh_per_mw, 4),
            "storage_sized_at": self.worst_storage_at,
            "fleet_shed_share_worst_hour": 1.0 if backup is None else round(backup.shed_share_worst, 4),
            "fleet_shed_share_mean": 1.0 if backup is None else round(backup.shed_share_mean, 4),
            "rebound_hours_over_room": 0 if backup is None else backup.rebound_hours,
        }

    def to_dict(self) -> dict[str, object]:
        return {
            "rate_pct": self.rate_pct,
            "load_mw": round(self.load_mw, 1),
            "with_backup": self.backup_dict(),
            "deliverable": self.deliverable,
            "windows_simulated": self.windows,
            "windows_total": self.windows_total,
            "curtailed_hours_simulated": self.curtailed_hours,
            "unmet_hours": self.unmet_hours,
            "shortfall_mwh": round(self.shortfall_mwh, 1),
            "realtime_slo_miss_hours": self.realtime_slo_miss_hours,
            "missed_deadlines": self.missed_deadlines,
            "deepest_shed_share": round(self.deepest_shed_share, 4),
            "best_shed_share": round(self.best_shed_share, 4),
            "first_unmet_at": self.first_unmet_at,
        }


@dataclass(frozen=True)
class ZoneFit:
    """The highest rate (of those asked) the mix delivers in this zone, and so the MW of it the zone absorbs."""

    rates: tuple[RateFit, ...]
    deliverable_rate_pct: float | None
    absorbable_mw: float

    def to_dict(self) -> dict[str, object]:
        return {
            "deliverable_rate_pct": self.deliverable_rate_pct,
            "absorbable_mw": round(self.absorbable_mw, 1),
            "rates": [fit.to_dict() for fit in self.rates],
        }


class FleetFit:
    """One mix, checked zone by zone: the simulated region at unit scale, its no-control draw measured once."""

    def __init__(self, mix: WorkloadMix, seed: int = 0, fleet: FleetConfig | None = None) -> None:
        base = fleet or load_fleet(None)
        template = base.region(TEMPLATE_REGION)
        self.mix, self.seed = mix, seed
        self.calibration: Calibration = load_calibration(base.policy.calibration_file)
        self.region = template.model_copy(update={"name": REGION, "signal_zones": {}})
        self.base = base
        self.baseline_kw: float | None = None
        # The backup store recharges at the template battery's round-trip efficiency (the config's default without).
        battery = template.battery
        default = BatteryConfig.model_fields["round_trip_efficiency"].default
        self.efficiency = float(battery.round_trip_efficiency if battery is not None else default)

    def _context(self, zone: ZoneDemand) -> FleetContext:
        region = self.region.model_copy(update={"zone": zone.zone})
        fleet = self.base.model_copy(update={"regions": [region], "default_origin": REGION})
        series = ZoneSeries(zone.times_s, {"demand_mw": zone.demand_mw})
        trace = Trace(f"eia930:{zone.zone}", {zone.zone: series}, ("demand_mw",))
        return FleetContext(fleet, trace, {REGION: {REGION: 0.0}})

    def _run(
        self,
        context: FleetContext,
        reader: PrecomputedReader,
        start_s: int,
        end_s: int,
        levers: frozenset[str],
        events: Sequence[DREvent],
    ) -> SimulationRun:
        spec = SimulationSpec(start_s, end_s, self.mix, levers, events=tuple(events), seed=self.seed)
        return simulate_fleet(context, reader, self.calibration, spec)

    def check_zone(self, zone: ZoneDemand, model: ZoneModel, loads_mw: Sequence[tuple[float, float]]) -> ZoneFit:
        """`loads_mw`: (rate %, L MW) per rate. Every rate is simulated (the backup is sized for each); the rate
        delivered without backup is the highest of an unbroken run from the lowest (a higher rate is a larger L:
        every hour's curtailment is at least as deep)."""
        context = self._context(zone)
        reader = PrecomputedReader(context.trace)
        self.ensure_baseline(zone)
        fits = tuple(
            self._check_rate(context, reader, model, rate_pct, load_mw) for rate_pct, load_mw in sorted(loads_mw)
        )
        best: RateFit | None = None
        for fit in fits:
            if not fit.deliverable:
                break
            best = fit
        return ZoneFit(fits, None if best is None else best.rate_pct, 0.0 if best is None else best.load_mw)

    def ensure_baseline(self, zone: ZoneDemand) -> float:
        """The mix's mean draw without control at unit scale (the template's capacity), measured on the first zone
        checked and kept: L MW of new load is this region scaled by L / baseline."""
        if self.baseline_kw is None:
            context = self._context(zone)
            self.baseline_kw = self._baseline_kw(context, PrecomputedReader(context.trace), zone)
        return self.baseline_kw

    def _baseline_kw(self, context: FleetContext, reader: PrecomputedReader, zone: ZoneDemand) -> float:
        # Thirty days after the job warm-up: the jobs' Poisson noise averages out.
        start = int(zone.times_s[0]) + 14 * 24 * HOUR_S
        run = self._run(context, reader, start, start + 30 * 24 * HOUR_S, frozenset(), ())
        return float(run.series["grid_kw"].mean())

    def _check_rate(
        self, context: FleetContext, reader: PrecomputedReader, model: ZoneModel, rate_pct: float, load_mw: float
    ) -> RateFit:
        assert self.baseline_kw is not None
        curtailed = np.nan_to_num(model.curtailed_mw(load_mw), nan=0.0)
        hours = np.flatnonzero(curtailed > 0)
        windows = _windows(hours)
        share = curtailed / load_mw if load_mw > 0 else curtailed
        room = model.gap_mw / load_mw if load_mw > 0 else np.zeros(len(curtailed))
        unmet = shortfall_kwh = slo = missed = 0.0
        deepest = best_shed = 0.0
        first_unmet: str | None = None
        times = model.times_s
        draws: list[WindowDraw] = []
        starts: list[int] = []
        for first, last in windows:
            in_window = [h for h in range(first, last + 1) if curtailed[h] > 0]
            limits = {h: max(self.baseline_kw * (1.0 - share[h]), MIN_LIMIT_KW) for h in in_window}
            events = [
                DREvent(
                    region=REGION,
                    level=3,
                    power_limit_kw=limits[h],
                    start=datetime.fromtimestamp(int(times[h]), UTC),
                    end=datetime.fromtimestamp(int(times[h]) + HOUR_S, UTC),
                    source="utility",
                    event_id=f"curtail-{h}",
                )
                for h in in_window
            ]
            begin = max(first - LEAD_H, 0)  # the hour index the run's first column is (the axis is hourly)
            end = min(last + 1 + TAIL_H, len(times))
            run = self._run(context, reader, int(times[begin]), int(times[end - 1]) + HOUR_S, LEVERS, events)
            slo += run.counters["realtime_slo_miss_hours"]
            missed += run.counters["jobs_missed_deadline"]
            draw_kw = run.series["grid_kw"][0]
            draws.append(WindowDraw(draw_kw / self.baseline_kw, room[begin:end], curtailed[begin:end] > 0))
            starts.append(begin)
            for h in in_window:
                draw = float(draw_kw[h - begin])
                deepest = max(deepest, float(share[h]))
                best_shed = max(best_shed, 1.0 - draw / self.baseline_kw)
                if draw > limits[h] * (1.0 + LIMIT_TOLERANCE):
                    unmet += 1
                    shortfall_kwh += draw - limits[h]
                    if first_unmet is None:  # windows run in time order
                        first_unmet = _iso(int(times[h]))
        backup = size_backup(draws, self.efficiency) if draws else None
        worst_at = None
        if backup is not None and backup.worst_window is not None and backup.worst_hour is not None:
            worst_at = _iso(int(times[starts[backup.worst_window] + backup.worst_hour]))
        scale = load_mw * 1000.0 / self.baseline_kw  # unit-scale kW to the zone's kW
        return RateFit(
            rate_pct=rate_pct,
            deliverable=not (unmet or slo or missed),
            windows=len(windows),
            windows_total=len(windows),
            curtailed_hours=len(hours),
            unmet_hours=int(unmet),
            shortfall_mwh=shortfall_kwh * scale / 1000.0,
            realtime_slo_miss_hours=int(slo),
            missed_deadlines=int(missed),
            deepest_shed_share=deepest,
            best_shed_share=best_shed,
            first_unmet_at=first_unmet,
            load_mw=load_mw,
            backup=backup,
            worst_storage_at=worst_at,
        )


def _iso(at_s: int) -> str:
    return datetime.fromtimestamp(at_s, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _windows(hours: IntArray) -> list[tuple[int, int]]:
    """Runs of curtailed hour indices, merged where less than MERGE_GAP_H apart: (first, last) inclusive."""
    windows: list[tuple[int, int]] = []
    for hour in (int(h) for h in hours):
        if windows and hour - windows[-1][1] < MERGE_GAP_H:
            windows[-1] = (windows[-1][0], hour)
        else:
            windows.append((hour, hour))
    return windows
