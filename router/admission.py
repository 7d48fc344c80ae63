"""Admission per region (pure): how much work a gateway replica may have in flight at a region before the region is
full, from the knobs in force; real-time work may use a reserve that tolerant work may not."""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class AdmissionBound:
    """What one gateway replica may have in flight at one region: `running` at once, `queued` more waiting."""

    running: int
    queued: int

    @property
    def total(self) -> int:
        return self.running + self.queued


def admission_bound(max_concurrency: int, replicas: int, gateway_replicas: int, queue_factor: float) -> AdmissionBound:
    """The region's share for one gateway replica: its replicas run `max_concurrency` requests each (the knob the
    policy lowers under stress), and may queue `queue_factor` times that; gateway replicas split both evenly (each
    counts only its own requests). At least one request always runs, so a small region is never shut."""
    running = max(1, math.ceil(max_concurrency * replicas / gateway_replicas))
    return AdmissionBound(running, math.floor(running * queue_factor))


def admits(in_flight: int, bound: AdmissionBound, *, urgent: bool, realtime_reserve: float) -> bool:
    """Whether one more request fits: urgent (real-time) work up to the whole bound, other work up to the bound
    less the reserve (at least one slot), so real-time work is admitted first when a region fills up."""
    if urgent:
        return in_flight < bound.total
    return in_flight < max(1, math.floor(bound.total * (1.0 - realtime_reserve)))
