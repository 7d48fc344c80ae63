"""Measured load: what each regional replica reports, and a region's load rates aggregated from those reports.

Replicas report cumulative counters (requests, items, model CPU seconds) and gauges (queue, in flight); rates
come from the difference between a replica's oldest and newest report within a short window, so a late or lost
report skews nothing. Pure: wall times come in with the reports and the caller's `now_wall_s`.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field

RATE_WINDOW_S = 5.0
"""Rates average over about this many wall seconds of a replica's reports."""
REPORT_TTL_S = 5.0
"""A replica silent for this long no longer counts (it died, or was scaled away)."""


@dataclass(frozen=True)
class ReplicaReport:
    """One regional replica's counters (cumulative since it started) and gauges, at `wall_s`."""

    region: str
    replica_id: str
    wall_s: float
    requests: int
    items: int
    batches: int
    batched_requests: int
    busy_cpu_s_by_class: Mapping[str, float]  # model CPU seconds spent on each workload class's items
    busy_cpu_s_by_precision: Mapping[str, float]  # the same seconds, by the precision they ran at
    queued: int  # requests waiting for admission (the concurrency knob)
    in_flight: int  # requests admitted and not yet answered
    gpu_power_w: float | None = None  # measured board power of the replica's GPUs (NVML), if any
    gpu_max_power_w: float | None = None  # their enforced power limit
    gpu_idle_power_w: float | None = None  # their lowest measured power since start: the idle floor


@dataclass(frozen=True)
class RegionLoad:
    """A region's measured load: rates per wall second over the last few seconds, summed over its replicas."""

    replicas: int = 0
    requests_per_s: float = 0.0
    items_per_s: float = 0.0
    busy_cpu_s_per_s: float = 0.0  # model CPU seconds per second (1.0 = one core busy)
    busy_by_class: Mapping[str, float] = field(default_factory=dict)
    busy_by_precision: Mapping[str, float] = field(default_factory=dict)
    queued: int = 0
    in_flight: int = 0
    mean_batch_requests: float = 0.0  # requests per model batch over the window
    gpu_power_w: float | None = None
    gpu_max_power_w: float | None = None
    gpu_idle_power_w: float | None = None

    def to_dict(self, max_batch_size: int) -> dict[str, object]:
        occupancy = self.mean_batch_requests / max_batch_size if max_batch_size else 0.0
        return {
            "replicas_reporting": self.replicas,
            "requests_per_s": round(self.requests_per_s, 3),
            "items_per_s": round(self.items_per_s, 3),
            "busy_cpu_s_per_s": round(self.busy_cpu_s_per_s, 4),
            "busy_cpu_s_per_s_by_class": {k: round(v, 4) for k, v in sorted(self.busy_by_class.items())},
            "busy_cpu_s_per_s_by_precision": {k: round(v, 4) for k, v in sorted(self.busy_by_precision.items())},
            "queued_requests": self.queued,
            "in_flight_requests": self.in_flight,
            "mean_batch_requests": round(self.mean_batch_requests, 3),
            "batch_occupancy": round(min(occupancy, 1.0), 4),
            "gpu_power_w": None if self.gpu_power_w is None else round(self.gpu_power_w, 1),
        }


def _rate(newer: float, older: float, seconds: float) -> float:
    # A replica restart resets its counters: a negative difference means "no measurement", not negative work.
    return max(newer - older, 0.0) / seconds


def _rates(first: Mapping[str, float], last: Mapping[str, float], seconds: float) -> dict[str, float]:
    return {key: _rate(value, first.get(key, 0.0), seconds) for key, value in last.items()}


class LoadBook:
    """The recent reports of every replica, and each region's load from them."""

    def __init__(self, window_s: float = RATE_WINDOW_S, ttl_s: float = REPORT_TTL_S) -> None:
        self.window_s = window_s
        self.ttl_s = ttl_s
        self._reports: dict[str, deque[ReplicaReport]] = {}

    def add(self, report: ReplicaReport) -> None:
        history = self._reports.setdefault(report.replica_id, deque())
        if history and report.wall_s <= history[-1].wall_s:
            return  # out of order or repeated: keep the series monotone
        history.append(report)
        # Keep the newest report older than the window too, so the rate spans the whole window.
        while len(history) > 2 and history[1].wall_s <= report.wall_s - self.window_s:
            history.popleft()

    def region(self, region: str, now_wall_s: float) -> RegionLoad:
        live = [
            history
            for replica_id, history in list(self._reports.items())
            if history[-1].region == region and not self._expired(replica_id, history, now_wall_s)
        ]
        if not live:
            return RegionLoad()
        requests = items = busy = mean_batch = 0.0
        by_class: dict[str, float] = {}
        by_precision: dict[str, float] = {}
        batches = batched = 0.0
        for history in live:
            first, last = history[0], history[-1]
            seconds = last.wall_s - first.wall_s
            if seconds <= 0:
                continue  # one report so far: gauges count, rates wait for the next
            requests += _rate(last.requests, first.requests, seconds)
            items += _rate(last.items, first.items, seconds)
            batches += _rate(last.batches, first.batches, seconds)
            batched += _rate(last.batched_requests, first.batched_requests, seconds)
            for key, value in _rates(first.busy_cpu_s_by_class, last.busy_cpu_s_by_class, seconds).items():
                by_class[key] = by_class.get(key, 0.0) + value
            for key, value in _rates(first.busy_cpu_s_by_precision, last.busy_cpu_s_by_precision, seconds).items():
                by_precision[key] = by_precision.get(key, 0.0) + value
        busy = sum(by_precision.values())
        mean_batch = batched / batches if batches > 0 else 0.0
        gpu = [h[-1] for h in live if h[-1].gpu_power_w is not None]
        return RegionLoad(
            replicas=len(live),
            requests_per_s=requests,
            items_per_s=items,
            busy_cpu_s_per_s=busy,
            busy_by_class=by_class,
            busy_by_precision=by_precision,
            queued=sum(h[-1].queued for h in live),
            in_flight=sum(h[-1].in_flight for h in live),
            mean_batch_requests=mean_batch,
            gpu_power_w=sum(r.gpu_power_w or 0.0 for r in gpu) if gpu else None,
            gpu_max_power_w=sum(r.gpu_max_power_w or 0.0 for r in gpu) if gpu else None,
            gpu_idle_power_w=sum(r.gpu_idle_power_w or 0.0 for r in gpu) if gpu else None,
        )

    def _expired(self, replica_id: str, history: deque[ReplicaReport], now_wall_s: float) -> bool:
        if history[-1].wall_s >= now_wall_s - self.ttl_s:
            return False
        del self._reports[replica_id]
        return True
