"""Calibration: hours per stress level and headroom percentiles per zone over 2022 on the packaged trace.

python -m benchmarks.stress_hours [--json]     # every hour of 2022
python -m benchmarks.stress_hours --smoke      # seconds: January 2022 only, same zones (the output shape is checked)
"""

from __future__ import annotations

import argparse
import collections
import json
import math
import sys
from collections.abc import Sequence

from fleet.headroom import HeadroomConfig
from fleet.loaders import load_fleet
from fleet.regions import RegionConfig
from grid.headroom import assess
from grid.trace import load_trace, packaged_trace
from router.state import observe

ZONES = ("AZPS", "BPAT", "CISO", "ERCO", "MISO", "NYIS", "PJM", "PJM-DOM", "SOCO")
YEAR_2022_S = (1_640_995_200, 1_672_531_200)
JANUARY_2022_S = (1_640_995_200, 1_643_673_600)  # the --smoke window: 744 hours


class BenchError(RuntimeError):
    """A run of the benchmark failed; the message says which."""


def stress_hours(
    config: HeadroomConfig, window_s: tuple[int, int] = YEAR_2022_S
) -> dict[str, tuple[list[int], list[float]]]:
    """Per zone: hours at stress 0..3, and headroom at the 10th, 50th and 90th percentile."""
    trace = load_trace(packaged_trace("grid_2022.csv.gz"))
    results: dict[str, tuple[list[int], list[float]]] = {}
    for zone in ZONES:
        region = RegionConfig(name=zone, zone=zone, latitude=0, longitude=0, capacity_replicas=1, capacity_kw=1)
        levels: collections.Counter[int] = collections.Counter()
        headrooms = []
        for at in range(window_s[0], window_s[1], 3600):
            result = assess(observe(region, trace, at, config), config)
            levels[result.stress_level] += 1
            headrooms.append(result.headroom)
        headrooms.sort()
        n = len(headrooms)
        results[zone] = (
            [levels[level] for level in range(4)],
            [round(headrooms[int(n * q)], 3) for q in (0.1, 0.5, 0.9)],
        )
    return results


def check_shape(results: dict[str, tuple[list[int], list[float]]], window_s: tuple[int, int]) -> None:
    """What the smoke run holds itself to: every zone, every hour counted once, percentiles in order in [0, 1]."""
    if tuple(results) != ZONES:
        raise BenchError(f"zones {list(results)}, expected {list(ZONES)}")
    hours = (window_s[1] - window_s[0]) // 3600
    for zone, (counts, quantiles) in results.items():
        if len(counts) != 4 or min(counts) < 0 or sum(counts) != hours:
            raise BenchError(f"{zone}: hours at stress 0..3 = {counts}, expected 4 counts summing to {hours}")
        if len(quantiles) != 3 or not all(math.isfinite(q) and 0.0 <= q <= 1.0 for q in quantiles):
            raise BenchError(f"{zone}: headroom p10/p50/p90 = {quantiles}, expected 3 finite values in [0, 1]")
        if sorted(quantiles) != quantiles:
            raise BenchError(f"{zone}: headroom p10/p50/p90 = {quantiles} out of order")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--smoke", action="store_true", help="January 2022 only, for CI: the output shape is checked")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    window = JANUARY_2022_S if args.smoke else YEAR_2022_S
    results = stress_hours(load_fleet().headroom, window)
    if args.smoke:
        check_shape(results, window)
    if args.json:
        body: dict[str, object] = {
            zone: {"hours_at_stress": hours, "headroom_p10_p50_p90": q} for zone, (hours, q) in results.items()
        }
        if args.smoke:
            body = {"smoke": True, **body}
        print(json.dumps(body, indent=2))
        return 0
    print(f"{'zone':<8} {'s0 h':>6} {'s1 h':>6} {'s2 h':>6} {'s3 h':>6}  headroom p10/p50/p90")
    for zone, (hours, quantiles) in results.items():
        print(f"{zone:<8} " + " ".join(f"{h:>6}" for h in hours) + f"  {quantiles}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
