"""Job usage (pure): what each tenant's batch or training job ran, metered from its progress reports, and what it
cost at the prices in force, recorded once when it finishes (docs/tenants.md#usage).

A job's work is metered in job-hours on the control clock (the clock quotes and prices use, trace time under
replay), weighted by the share of its full size it ran at (a job shrunk to half size for an hour used half a
job-hour): the time between two reports of a running job counts, at the share of its last gate answer, split over
the grid hours it spans. Each grid hour is priced at that hour's forecast price for the job's tier
(policies.pricing.tier_prices, the same price `GET /v1/prices` shows); `earned_usd` is what the same job-hours would
have cost at tier 0 in the hour the job started, less what was charged: the tier's discount plus what waiting for
cheaper hours saved.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field

from fleet.pricing import PricingConfig
from policies.plan import HOUR_S
from policies.pricing import HourConditions, tier_prices

MAX_REPORT_GAP_WALL_S = 5.0
"""A running job reports several times a second; a longer silence (its driver died) counts at most this long, wall
seconds, so a job that vanishes is not billed for the time it was gone."""
FINISHED_KEPT = 10_000
"""Finished jobs' usage the control plane keeps for gateways to record (they take it within seconds)."""

HourPrice = Callable[[str, int], HourConditions]
"""The forecast conditions of (region, grid hour start), issued at the hour's start."""


@dataclass(frozen=True)
class JobUsage:
    """One finished tenant job's usage: what a gateway records (once, keyed by `request_id`)."""

    request_id: str  # "<kind>:<job id>"
    tenant_id: str
    kind: str  # batch | training
    region: str
    tier: int
    items: int  # rows (batch) or steps (training)
    job_hours: float
    kwh: float
    gco2: float
    usd: float
    earned_usd: float
    grid_hour_s: int  # the grid hour the job finished in
    effects: tuple[str, ...]  # what the grid did to it: deferred, shrunk, degraded


@dataclass
class JobMeter:
    """One job's running time by grid hour, and what the grid did to it."""

    kind: str
    job_id: str
    region: str
    tenant_id: str | None = None
    tier: int | None = None
    started_s: float | None = None  # control time it was first seen running
    running_since_s: float | None = None  # control time of its last report while running
    share: float = 1.0  # share of full size its last gate answer let it run at
    seconds_by_hour: dict[int, float] = field(default_factory=dict)  # full-size-equivalent control s per grid hour
    effects: set[str] = field(default_factory=set)

    def observe(self, now_s: float, state: str, max_gap_s: float) -> None:
        """A report: the stretch since the last running report counts, at the last share, split by grid hour."""
        if self.running_since_s is not None:
            at, end = self.running_since_s, min(now_s, self.running_since_s + max_gap_s)
            while at < end:
                hour = int(at - at % HOUR_S)
                until = min(end, hour + HOUR_S)
                self.seconds_by_hour[hour] = self.seconds_by_hour.get(hour, 0.0) + (until - at) * self.share
                at = until
        running = state == "running"
        if running and self.started_s is None:
            self.started_s = now_s
        self.running_since_s = now_s if running else None

    @property
    def job_hours(self) -> float:
        return sum(self.seconds_by_hour.values()) / HOUR_S

    @property
    def request_id(self) -> str:
        return f"{self.kind}:{self.job_id}"


def job_usage(meter: JobMeter, items: int, finished_s: float, price: HourPrice, pricing: PricingConfig) -> JobUsage:
    """The finished job's usage at the prices in force each hour it ran (see the module's docstring)."""
    if meter.tenant_id is None or meter.tier is None:
        raise ValueError(f"job {meter.job_id} has no tenant: only tenants' jobs are recorded")
    usd = kwh = grams = 0.0
    for hour_s, seconds in sorted(meter.seconds_by_hour.items()):
        conditions = price(meter.region, hour_s)
        hours = seconds / HOUR_S
        usd += tier_prices(conditions, pricing)[meter.tier].usd_per_job_hour * hours
        kwh += pricing.job_kw * hours
        grams += pricing.job_kw * hours * conditions.carbon_g_per_kwh
    started_s = meter.started_s if meter.started_s is not None else finished_s
    start_hour = price(meter.region, int(started_s - started_s % HOUR_S))
    at_once_tier0 = tier_prices(start_hour, pricing)[0].usd_per_job_hour * meter.job_hours
    return JobUsage(
        request_id=meter.request_id,
        tenant_id=meter.tenant_id,
        kind=meter.kind,
        region=meter.region,
        tier=meter.tier,
        items=items,
        job_hours=meter.job_hours,
        kwh=kwh,
        gco2=grams,
        usd=usd,
        earned_usd=at_once_tier0 - usd,
        grid_hour_s=int(finished_s - finished_s % HOUR_S),
        effects=tuple(sorted(meter.effects)),
    )


@dataclass
class JobMeters:
    """Every job's meter (by kind and id), and the usage of finished tenant jobs, kept for gateways to record."""

    price: HourPrice
    pricing: PricingConfig
    speedup: float  # control seconds per wall second: the report-gap cap is in wall seconds
    meters: dict[str, JobMeter] = field(default_factory=dict)
    finished: OrderedDict[str, JobUsage] = field(default_factory=OrderedDict)

    def meter(self, kind: str, job_id: str, region: str, tenant_id: str | None, tier: int | None) -> JobMeter:
        key = f"{kind}:{job_id}"
        meter = self.meters.get(key)
        if meter is None:
            meter = self.meters[key] = JobMeter(kind, job_id, region)
        meter.tenant_id, meter.tier, meter.region = tenant_id, tier, region
        return meter

    def report(self, meter: JobMeter, now_s: float, state: str, items: int) -> None:
        """A job's report: meter it; on `done`, a tenant job's usage is priced and kept (once) for the gateways."""
        meter.observe(now_s, state, MAX_REPORT_GAP_WALL_S * self.speedup)
        if state != "done" or meter.tenant_id is None or meter.request_id in self.finished:
            return
        self.finished[meter.request_id] = job_usage(meter, items, now_s, self.price, self.pricing)
        while len(self.finished) > FINISHED_KEPT:
            self.finished.popitem(last=False)

    def usage(self) -> list[JobUsage]:
        return list(self.finished.values())
