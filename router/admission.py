"""Admission per region (pure): how much work a gateway replica may have in flight at a region before the region is
full, from the knobs in force; real-time work may use a reserve that tolerant work may not; how long the items already
in flight there keep new work waiting, from the pace the region delivers while busy; and the order tolerant work
tries its regions in, so it does not queue past its budget at one region while another calm one is free."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class AdmissionBound:
    """What one gateway replica may have in flight at one region: `running` at once, `queued` more waiting."""

    running: int
    queued: int

    @property
    def total(self) -> int:
        return self.running + self.queued


def admission_bound(work_slots: int, replicas: int, gateway_replicas: int, queue_factor: float) -> AdmissionBound:
    """The region's share for one gateway replica: its replicas work on `work_slots` requests each (one batch, or
    fewer where the concurrency knob caps it: the knobs the policy lowers under stress), and may queue `queue_factor`
    times that; gateway replicas split both evenly (each counts only its own requests). At least one request always
    runs, so a small region is never shut. Counting batches, not the concurrency cap, is what bounds the wait: an
    admitted request waits at most about (1 + queue_factor) model passes."""
    running = max(1, math.ceil(work_slots * replicas / gateway_replicas))
    return AdmissionBound(running, math.floor(running * queue_factor))


def admits(in_flight: int, bound: AdmissionBound, *, urgent: bool, realtime_reserve: float) -> bool:
    """Whether one more request fits: urgent (real-time) work up to the whole bound, other work up to the bound
    less the reserve (at least one slot), so real-time work is admitted first when a region fills up."""
    if urgent:
        return in_flight < bound.total
    return in_flight < max(1, math.floor(bound.total * (1.0 - realtime_reserve)))


PACE_HALF_LIFE_ITEMS = 256.0
"""Items after which an observation of a region's pace counts half: a few passes, so a change of knobs (a smaller
batch, another precision) or of contention on the region's cores shows within seconds under load."""

PACE_MIN_ITEMS = 16.0
"""Items a region must have answered while busy before its observed pace is trusted over the calibrated cost."""


def _keep(items: float, half_life_items: float) -> float:
    """The weight what was learned before keeps once `items` more are seen: a half per half-life of items."""
    return float(0.5 ** (items / half_life_items))


@dataclass(slots=True)
class BusyPace:
    """The wall time per item a region delivers while it has work queued, learned from this gateway's own answers.

    Only the time between two answers with work in flight all along counts, divided by the items the second answer
    carried: a throughput, in which the fixed cost of each request (the hops, the batch wait) overlaps with the work
    ahead of it. A request that finds the region idle starts a new busy period and teaches nothing, since its
    latency is mostly that fixed cost; counting it made an idle region's queue look several times dearer than it is
    (the observed-pace admission reverted in be85d69 did). Contention counts: on cores shared with other regions or
    jobs, the pace is what the region really delivers there, which no calibration file knows.
    """

    half_life_items: float = PACE_HALF_LIFE_ITEMS
    seconds: float = 0.0
    items: float = 0.0
    last_answer_s: float | None = None  # the previous answer, while work stayed in flight since it

    def started(self, in_flight_before: int) -> None:
        """A request was sent to the region with `in_flight_before` others there."""
        if in_flight_before == 0:
            self.last_answer_s = None

    def answered(self, now_s: float, items: int, in_flight_after: int) -> float | None:
        """A request of `items` was answered at `now_s`, leaving `in_flight_after` in flight there. Returns the busy
        interval it counted (seconds the region took for these items), or None when it counted none."""
        interval = None
        if self.last_answer_s is not None:
            interval = max(0.0, now_s - self.last_answer_s)
            keep = _keep(items, self.half_life_items)
            self.seconds = self.seconds * keep + interval
            self.items = self.items * keep + items
        self.last_answer_s = now_s if in_flight_after > 0 else None
        return interval

    def rescale(self, factor: float) -> None:
        """The knobs in force changed the region's calibrated cost by `factor`: the learned pace follows at once
        (a DR event that halves the batch makes each item dearer now, not after the next half-life of answers)."""
        self.seconds *= factor

    def failed(self) -> None:
        """A request failed (an error, or a timed-out attempt): the interval to the next answer is not the region's
        pace."""
        self.last_answer_s = None

    def seconds_per_item(self) -> float | None:
        """The observed pace, or None until enough busy answers were seen."""
        return self.seconds / self.items if self.items >= PACE_MIN_ITEMS else None


@dataclass(slots=True)
class PaceRatio:
    """The pace regions deliver while busy over their calibrated cost, pooled over every region's busy intervals.

    A region not yet seen busy long enough has no pace of its own; the calibration alone can be several times off
    (measured on another host: on two shared cores each item took about five times its calibrated cost), and a
    queue costed that cheaply over-admits exactly when a DR event moves work onto regions that were idle. What the
    host does to the other regions is the better prior, until the region has a pace of its own.
    """

    half_life_items: float = PACE_HALF_LIFE_ITEMS
    observed_s: float = 0.0
    calibrated_s: float = 0.0
    items: float = 0.0

    def add(self, items: int, observed_s: float, calibrated_s: float) -> None:
        """A busy interval of `observed_s` for `items` that the calibration costs at `calibrated_s`."""
        keep = _keep(items, self.half_life_items)
        self.observed_s = self.observed_s * keep + observed_s
        self.calibrated_s = self.calibrated_s * keep + calibrated_s
        self.items = self.items * keep + items

    def ratio(self) -> float | None:
        """Observed over calibrated, or None until enough busy items were seen."""
        if self.items < PACE_MIN_ITEMS or self.calibrated_s <= 0.0:
            return None
        return self.observed_s / self.calibrated_s


def expected_pace(observed: float | None, calibrated: float, ratio: float | None) -> float:
    """Seconds per item to cost a region's queue at: its own observed pace; else its calibrated cost scaled by what
    the other regions showed (PaceRatio); else the calibrated cost."""
    if observed is not None:
        return observed
    return calibrated if ratio is None else calibrated * ratio


def queue_wait_ms(items_ahead: int, item_ms: float, servers: float) -> float:
    """How long work joining a region waits for the items already in flight there: they are served `servers` at a
    time (replicas x model threads), `item_ms` each (the calibrated cost at the knobs in force)."""
    return items_ahead * item_ms / servers


def budget_order(
    ranked: Sequence[str], fits: Mapping[str, bool], calm: Mapping[str, bool]
) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The order to try tolerant work's ranked regions in, and the ones passed over.

    Calm regions whose queue still fits the request's budget come first, in the router's order; then calm regions
    whose queue would not (the work waits there, within the admission bound, rather than fail); then the rest
    (regions in grid emergency), last as ranked. So a burst spreads over the calm regions while the best one's
    queue is long, instead of waiting behind it; and it never spreads into an emergency. The second tuple: the
    calm regions moved back because their queue is over the budget."""
    first = [name for name in ranked if calm[name] and fits[name]]
    over = [name for name in ranked if calm[name] and not fits[name]]
    rest = [name for name in ranked if not calm[name]]
    passed = tuple(name for name in over if ranked.index(name) < ranked.index(first[0])) if first else ()
    return (*first, *over, *rest), passed
