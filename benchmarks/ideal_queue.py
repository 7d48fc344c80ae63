"""The reference an overload benchmark needs: the latency an ideal queue would give the same arrivals.

An ideal fleet of `servers` identical cores, first come first served, no overhead, no batching, no routing, serving
at exactly the fleet's measured capacity. Its p99 on a level's arrival schedule is the queueing that the trace's
bursts cause by themselves: no admission or scheduling design on the same cores removes it, so a measured p99 is
read against it, not only against the unloaded one.
"""

from __future__ import annotations

import heapq
from collections.abc import Sequence


def item_seconds(capacity_per_s: float, mean_items: float, servers: int) -> float:
    """Seconds one core spends per item when `servers` cores together serve `capacity_per_s` requests of
    `mean_items` items each."""
    if capacity_per_s <= 0 or mean_items <= 0 or servers < 1:
        raise ValueError(f"capacity {capacity_per_s}, mean items {mean_items}, servers {servers}: must be positive")
    return servers / (capacity_per_s * mean_items)


def ideal_latencies_s(arrivals: Sequence[tuple[float, int]], item_s: float, servers: int) -> list[float]:
    """Each request's time from arrival to answer in the ideal queue: (arrival time s, items) in arrival order,
    each served whole by the first core free."""
    free_at = [0.0] * servers
    heapq.heapify(free_at)
    latencies = []
    for at_s, items in arrivals:
        start = max(at_s, heapq.heappop(free_at))
        done = start + items * item_s
        heapq.heappush(free_at, done)
        latencies.append(done - at_s)
    return latencies


def percentile(values: Sequence[float], q: float) -> float:
    """The nearest-rank percentile (as the benchmark's own p99), NaN for no values."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]
