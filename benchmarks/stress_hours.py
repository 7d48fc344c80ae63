"""Calibration: hours per stress level and headroom percentiles per zone over 2022 on the packaged trace."""

from __future__ import annotations

import argparse
import collections
import json

from fleet.headroom import HeadroomConfig
from fleet.loaders import load_fleet
from fleet.regions import RegionConfig
from grid.headroom import assess
from grid.trace import load_trace, packaged_trace
from router.state import observe

ZONES = ("AZPS", "BPAT", "CISO", "ERCO", "MISO", "NYIS", "PJM", "PJM-DOM", "SOCO")
YEAR_2022_S = (1_640_995_200, 1_672_531_200)


def stress_hours(config: HeadroomConfig) -> dict[str, tuple[list[int], list[float]]]:
    """Per zone: hours at stress 0..3, and headroom at the 10th, 50th and 90th percentile."""
    trace = load_trace(packaged_trace("grid_2022.csv.gz"))
    results: dict[str, tuple[list[int], list[float]]] = {}
    for zone in ZONES:
        region = RegionConfig(name=zone, zone=zone, latitude=0, longitude=0, capacity_replicas=1, capacity_kw=1)
        levels: collections.Counter[int] = collections.Counter()
        headrooms = []
        for at in range(YEAR_2022_S[0], YEAR_2022_S[1], 3600):
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    results = stress_hours(load_fleet().headroom)
    if args.json:
        body = {zone: {"hours_at_stress": hours, "headroom_p10_p50_p90": q} for zone, (hours, q) in results.items()}
        print(json.dumps(body, indent=2))
        return
    print(f"{'zone':<8} {'s0 h':>6} {'s1 h':>6} {'s2 h':>6} {'s3 h':>6}  headroom p10/p50/p90")
    for zone, (hours, quantiles) in results.items():
        print(f"{zone:<8} " + " ".join(f"{h:>6}" for h in hours) + f"  {quantiles}")


if __name__ == "__main__":
    main()
