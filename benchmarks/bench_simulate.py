"""Simulator speed: simulated hours and region-hours per second, against the live decision functions alone.

    python -m benchmarks.bench_simulate                  # a 50-region fleet over one year (2022), hourly
    python -m benchmarks.bench_simulate --regions 4 --hours 720
    python -m benchmarks.bench_simulate --smoke          # seconds: 4 regions, 24 h; the output shape is checked

The 50-region fleet puts regions on the trace's nine zones in turn, round-trip times from great-circle distance
(1 ms per 100 km plus 2 ms: a speed fixture, not a latency claim). "Decision functions alone" calls, for the same
region-hours, what the simulator calls: the fleet snapshot each hour, the ladder (decide_region) per region-hour,
the routing rules (router.routing.route_shares) per origin-hour (route_chunks times), and the power model per
region-hour, with nothing booked. The jobs' plan and gate are not in it: the simulator's extra time is mostly them.
It also prints each of those functions' cost per call, and the year's floor: a year of the fleet with each of them
called once per hour or region-hour and nothing else, which no simulator deciding by them can beat.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from fleet.config import FleetConfig
from fleet.loaders import load_fleet
from fleet.routing import RoutingMode
from fleet.times import utc_now_from
from policies.ladder import RegionInputs, decide_region
from policies.load import RegionLoad
from policies.power import PowerInputs, estimate_power
from router.routing import RouteRequest, route_shares
from router.state import snapshot
from simulate.engine import SimulationSpec, simulate_fleet, simulation_fleet
from simulate.inputs import Inputs, load_inputs
from simulate.mix import LEVERS, parse_mix

ZONES = ("PJM", "MISO", "ERCO", "CISO", "BPAT", "AZPS", "NYIS", "SOCO", "PJM-DOM")
START = "2022-01-01T00:00:00Z"


def big_fleet(count: int, folder: Path) -> FleetConfig:
    base = load_fleet(None)
    regions, coords = [], {}
    for k in range(count):
        template = base.regions[k % len(base.regions)]
        lat, lon = 30.0 + (k * 7) % 18, -120.0 + (k * 13) % 45
        name = f"r{k:02d}"
        coords[name] = (lat, lon)
        regions.append(
            template.model_copy(
                update={
                    "name": name,
                    "zone": ZONES[k % len(ZONES)],
                    "signal_zones": {},
                    "latitude": lat,
                    "longitude": lon,
                }
            )
        )
    rtt = {a: {b: 2.0 + _km(coords[a], coords[b]) / 100.0 for b in coords} for a in coords}
    matrix = folder / "rtt.json"
    matrix.write_text(json.dumps({"rtt_ms": rtt}))
    latency = base.latency.model_copy(update={"matrix_file": str(matrix)})
    return base.model_copy(update={"regions": regions, "default_origin": "r00", "latency": latency})


def _km(a: tuple[float, float], b: tuple[float, float]) -> float:
    la1, lo1, la2, lo2 = (math.radians(x) for x in (*a, *b))
    h = math.sin((la2 - la1) / 2) ** 2 + math.cos(la1) * math.cos(la2) * math.sin((lo2 - lo1) / 2) ** 2
    return 12_742.0 * math.asin(math.sqrt(h))


FUNCTIONS = ("snapshot", "decide_region", "estimate_power", "route_shares")


def decisions_alone(inputs: Inputs, spec: SimulationSpec) -> tuple[dict[str, float], dict[str, int]]:
    """Seconds each live function takes for the spec's region-hours, called back to back, and how many calls it got
    (both keyed by FUNCTIONS)."""
    fleet = simulation_fleet(inputs.context.fleet, spec.levers)
    load = RegionLoad(
        replicas=1, busy_cpu_s_per_s=0.3, busy_by_class={"realtime": 0.18, "tolerant": 0.12}, mean_batch_requests=8.0
    )
    previous: dict[str, Any] = {}
    spent = dict.fromkeys(FUNCTIONS, 0.0)
    calls = dict.fromkeys(FUNCTIONS, 0)
    clock = time.perf_counter
    for at in range(spec.start_s, spec.end_s, 3600):
        began = clock()
        snap = snapshot(fleet, inputs.reader, at)
        spent["snapshot"] += clock() - began
        calls["snapshot"] += 1
        for state, region in zip(snap.states, fleet.regions, strict=True):
            inputs_ = RegionInputs(region.name, at, state.stress_level, state.headroom, load, running_batch_jobs=30)
            began = clock()
            previous[region.name] = decide_region(inputs_, previous.get(region.name), region, fleet, inputs.calibration)
            ladder_done = clock()
            estimate_power(
                region,
                PowerInputs(load, previous[region.name].knobs, 1.0, 30),
                fleet.power,
                inputs.calibration,
                fleet.policy.quality_floor,
            )
            power_done = clock()
            for _ in range(spec.route_chunks):
                request = RouteRequest(region.name, "tolerant", RoutingMode.SHIFT, 150.0)
                route_shares(request, snap.states, inputs.context.rtt_ms, fleet.routing)
            spent["decide_region"] += ladder_done - began
            spent["estimate_power"] += power_done - ladder_done
            spent["route_shares"] += clock() - power_done
            calls["decide_region"] += 1
            calls["estimate_power"] += 1
            calls["route_shares"] += spec.route_chunks
    return spent, calls


def per_call_us(spent: dict[str, float], calls: dict[str, int]) -> dict[str, float]:
    """Microseconds per call of each function."""
    return {name: round(spent[name] / calls[name] * 1e6, 1) for name in FUNCTIONS}


def year_floor_s(per_call: dict[str, float], regions: int) -> float:
    """A year of this fleet with each live function called once per hour (snapshot) or region-hour (the rest, routing
    once per origin rather than per piece), nothing else: what no simulator calling them can beat."""
    per_region_hour_us = per_call["decide_region"] + per_call["estimate_power"] + per_call["route_shares"]
    return round(8760 * (per_call["snapshot"] + regions * per_region_hour_us) / 1e6, 1)


def measure(regions: int, hours: int, folder: Path) -> dict[str, Any]:
    fleet = load_fleet(None) if regions == 4 else big_fleet(regions, folder)
    inputs = load_inputs(fleet)
    start = int(utc_now_from(START).timestamp())
    spec = SimulationSpec(
        start,
        start + hours * 3600,
        parse_mix("realtime=0.3,tolerant=0.2,batch=0.3,training=0.2"),
        frozenset(LEVERS),
        warmup_hours=0,
    )
    began = time.perf_counter()
    simulate_fleet(inputs.context, inputs.reader, inputs.calibration, spec)
    simulator_s = time.perf_counter() - began
    spent, calls = decisions_alone(inputs, spec)
    alone_s = sum(spent.values())
    per_call = per_call_us(spent, calls)
    return {
        "regions": regions,
        "hours": hours,
        "simulator_s": round(simulator_s, 3),
        "simulated_hours_per_s": round(hours / simulator_s, 2),
        "region_hours_per_s": round(regions * hours / simulator_s, 1),
        "decision_functions_alone_s": round(alone_s, 3),
        "simulator_over_decisions": round(simulator_s / alone_s, 3),
        "decision_us_per_call": per_call,
        "year_floor_s": year_floor_s(per_call, regions),
    }


def check_shape(result: dict[str, Any]) -> None:
    """What the smoke run holds itself to: every figure present, finite and positive (not a timing target)."""
    for key in ("simulator_s", "simulated_hours_per_s", "region_hours_per_s", "decision_functions_alone_s"):
        value = result[key]
        if not (isinstance(value, float) and math.isfinite(value) and value > 0):
            raise SystemExit(f"bench_simulate: {key} is {value!r}")
    for name, value in result["decision_us_per_call"].items():
        if not (math.isfinite(value) and value > 0):
            raise SystemExit(f"bench_simulate: {name} costs {value!r} us per call")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--regions", type=int, default=50)
    parser.add_argument("--hours", type=int, default=8760)
    parser.add_argument("--smoke", action="store_true", help="4 regions, 24 h; the output shape is checked")
    args = parser.parse_args(argv)
    regions, hours = (4, 24) if args.smoke else (args.regions, args.hours)
    with tempfile.TemporaryDirectory() as folder:
        result = measure(regions, hours, Path(folder))
    print(json.dumps({"benchmark": "simulate", "smoke": args.smoke, **result}, indent=2))
    if args.smoke:
        check_shape(result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
