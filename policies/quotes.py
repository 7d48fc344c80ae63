"""Job quotes: for each candidate deadline, the planned run, its expected price, energy, carbon and finish window.

Pure given the forecast hours (policies/pricing.py). A tier-3 job is planned by the window planner
(policies/planner.py) on the tier's forecast price per job-hour; a lower tier runs at once. docs/tenants.md.
"""

from __future__ import annotations

from dataclasses import dataclass

from fleet.pricing import PricingConfig
from fleet.times import iso
from policies.plan import HOUR_S, PlanSignal
from policies.planner import plan_windows
from policies.pricing import HourConditions, tier_prices


class QuoteRefused(ValueError):
    """A deadline no plan can meet, or one beyond the quote horizon; `field` names it (e.g. deadlines.1)."""

    def __init__(self, message: str, field: str) -> None:
        super().__init__(message)
        self.field = field


@dataclass(frozen=True)
class DeadlineQuote:
    deadline_s: int
    intervals: tuple[tuple[int, int], ...]
    usd: float
    kwh: float
    gco2: float
    run_now_usd: float  # the same job at the same tier, run at once
    tier0_usd: float  # at once and at tier 0: what giving no flexibility would cost
    reason: str

    @property
    def finish_s(self) -> int:
        return self.intervals[-1][1]


def _cost(
    intervals: tuple[tuple[int, int], ...], hours: dict[int, HourConditions], tier: int, pricing: PricingConfig
) -> tuple[float, float, float]:
    """USD, kWh and gCO2 of running the job over the intervals, hour by hour of the forecast."""
    usd = kwh = grams = 0.0
    for start, end in intervals:
        at = start
        while at < end:
            hour_start = at - at % HOUR_S
            until = min(end, hour_start + HOUR_S)
            share_h = (until - at) / HOUR_S
            hour = hours[hour_start]
            usd += tier_prices(hour, pricing)[tier].usd_per_job_hour * share_h
            kwh += pricing.job_kw * share_h
            grams += pricing.job_kw * share_h * hour.carbon_g_per_kwh
            at = until
    return usd, kwh, grams


def quote_job(
    now_s: int, work_s: int, deadlines_s: list[int], tier: int, hours: list[HourConditions], pricing: PricingConfig
) -> list[DeadlineQuote]:
    """One quote per deadline. `hours` must cover every hour from now to the latest deadline. QuoteRefused names the
    first deadline that is past the horizon or too close to fit the work."""
    if work_s <= 0:
        raise QuoteRefused(f"work must be positive, got {work_s} s", "work_hours")
    horizon_s = now_s + pricing.max_quote_horizon_h * HOUR_S
    for index, deadline in enumerate(deadlines_s):
        if deadline > horizon_s:
            raise QuoteRefused(
                f"deadline {iso(deadline)} is beyond the quote horizon of {pricing.max_quote_horizon_h} h "
                f"(until {iso(horizon_s)})",
                f"deadlines.{index}",
            )
        if deadline - now_s < work_s:
            raise QuoteRefused(
                f"deadline {iso(deadline)} leaves {max(0, deadline - now_s) / HOUR_S:.2f} h for "
                f"{work_s / HOUR_S:.2f} h of work: no plan can meet it",
                f"deadlines.{index}",
            )
    by_hour = {hour.at_s: hour for hour in hours}
    slot_times = [hour.at_s for hour in hours]
    slot_prices = [tier_prices(hour, pricing)[tier].usd_per_job_hour for hour in hours]
    at_once = ((now_s, now_s + work_s),)
    run_now_usd = _cost(at_once, by_hour, tier, pricing)[0]
    tier0_usd = _cost(at_once, by_hour, 0, pricing)[0]
    quotes = []
    for deadline in deadlines_s:
        if tier >= 3:
            # The planner's PRICE signal is "lower is better"; the values here are the tier's USD per job-hour.
            plan = plan_windows(now_s, deadline, work_s, slot_times, slot_prices, PlanSignal.PRICE, now_s=now_s)
            intervals = plan.intervals
            waits = intervals != at_once
            reason = plan.reason if plan.forced else "waits for cheaper hours" if waits else "no cheaper hours: at once"
        else:
            intervals, reason = at_once, f"tier {tier} is not deferrable: runs at once"
        usd, kwh, grams = _cost(intervals, by_hour, tier, pricing)
        quotes.append(DeadlineQuote(deadline, intervals, usd, kwh, grams, run_now_usd, tier0_usd, reason))
    return quotes


def quote_to_dict(quote: DeadlineQuote) -> dict[str, object]:
    return {
        "deadline": iso(quote.deadline_s),
        "start": iso(quote.intervals[0][0]),
        "finish": iso(quote.finish_s),
        "intervals": [{"start": iso(start), "end": iso(end)} for start, end in quote.intervals],
        "expected_usd": round(quote.usd, 4),
        "expected_kwh": round(quote.kwh, 4),
        "expected_gco2": round(quote.gco2, 1),
        "run_now_usd": round(quote.run_now_usd, 4),
        "tier0_usd": round(quote.tier0_usd, 4),
        "saved_usd": round(quote.tier0_usd - quote.usd, 4),
        "reason": quote.reason,
    }
