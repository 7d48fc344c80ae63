"""`gridshift prices` and `gridshift quote`: grid-aware prices per region, hour and tier, and a job's quote.

Computed locally from the fleet's trace with the same pure code the gateway's /v1/prices and /v1/quotes use,
at --at or the fleet's replay clock (docs/tenants.md).
"""

from __future__ import annotations

import argparse
import json
import math

from fleet.clock import FixedClock, clock_for_source
from fleet.errors import GridshiftError
from fleet.times import iso, to_epoch_s, utc_now_from
from grid.context import FleetContext
from policies.plan import HOUR_S
from policies.pricing import forecast_hours, hour_to_dict, tier_prices
from policies.quotes import QuoteRefused, quote_job, quote_to_dict
from serve_apps.cli.common import add_common_args, fleet_context


def _now_s(args: argparse.Namespace, context: FleetContext) -> int:
    clock = FixedClock(utc_now_from(args.at).timestamp()) if args.at else clock_for_source(context.fleet.signal_source)
    return int(clock.now_s())


def _regions(args: argparse.Namespace, context: FleetContext) -> tuple[str, ...]:
    names = context.fleet.region_names
    if args.region is None:
        return names
    if args.region not in names:
        raise GridshiftError(f"--region: {args.region!r} is not in the fleet {list(names)}")
    return (args.region,)


def cmd_prices(args: argparse.Namespace) -> int:
    context = fleet_context(args)
    if not 1 <= args.hours <= 168:
        raise GridshiftError(f"--hours: must be 1..168, got {args.hours}")
    now_s = _now_s(args, context)
    pricing = context.fleet.pricing
    rows = {
        name: forecast_hours(context.trace, context.fleet, name, now_s, args.hours) for name in _regions(args, context)
    }
    if args.json:
        body = {
            "schema": "gridshift.prices/v1",
            "issued_at": iso(now_s),
            "regions": [{"region": n, "hours": [hour_to_dict(h, pricing) for h in hours]} for n, hours in rows.items()],
        }
        print(json.dumps(body, indent=2))
        return 0
    print(f"prices forecast at {iso(now_s)}: USD per 1,000 items (per job-hour), tiers 0..3")
    print(
        f"{'region':<12} {'hour':<20} {'$/MWh':>7} {'gCO2/kWh':>8} {'stress':>6}  tier 0..3 per 1k items (per job-hour)"
    )
    for name, hours in rows.items():
        for hour in hours:
            flat = "" if hour.wholesale_forecast else "*"
            tiers = "  ".join(
                f"{p.usd_per_1k_items:.5f} ({p.usd_per_job_hour:.3f})" for p in tier_prices(hour, pricing)
            )
            print(
                f"{name:<12} {iso(hour.at_s):<20} {hour.wholesale_usd_per_mwh:>6.2f}{flat:1} "
                f"{hour.carbon_g_per_kwh:>8.1f} {hour.stress_level:>6}  {tiers}"
            )
    print(
        "* no wholesale price forecast in the trace: the flat energy price (pricing.flat_energy_usd_per_mwh) stands in"
    )
    return 0


def cmd_quote(args: argparse.Namespace) -> int:
    context = fleet_context(args)
    region = _regions(args, context)[0] if args.region else context.fleet.default_origin
    now_s = _now_s(args, context)
    deadlines = [to_epoch_s(utc_now_from(d)) for d in args.deadline]
    pricing = context.fleet.pricing
    latest = min(max(deadlines), now_s + pricing.max_quote_horizon_h * HOUR_S)
    hours = max(1, -(-(latest - (now_s - now_s % HOUR_S)) // HOUR_S))
    conditions = forecast_hours(context.trace, context.fleet, region, now_s, hours)
    try:
        quoted = quote_job(now_s, math.ceil(args.work_hours * HOUR_S), deadlines, args.tier, conditions, pricing)
    except QuoteRefused as error:
        raise GridshiftError(f"--deadline ({error.field}): {error}") from None
    if args.json:
        body = {"schema": "gridshift.quote/v1", "issued_at": iso(now_s), "region": region, "tier": args.tier}
        print(json.dumps({**body, "quotes": [quote_to_dict(q) for q in quoted]}, indent=2))
        return 0
    print(f"{args.work_hours:g} h job in {region} at tier {args.tier}, quoted at {iso(now_s)}")
    print(f"{'deadline':<20} {'start':<20} {'finish':<20} {'USD':>8} {'gCO2':>9} {'saved USD':>9}  plan")
    for quote in quoted:
        row = quote_to_dict(quote)
        print(
            f"{row['deadline']:<20} {row['start']:<20} {row['finish']:<20} {quote.usd:>8.4f} {quote.gco2:>9.1f} "
            f"{quote.tier0_usd - quote.usd:>9.4f}  {quote.reason}"
        )
    return 0


def register(verbs: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add `gridshift prices` and `gridshift quote` to the CLI's verbs."""
    prices = verbs.add_parser("prices", help="grid-aware prices per region, hour ahead and flexibility tier")
    prices.add_argument("--region", help="one region (default: every region)")
    prices.add_argument("--hours", type=int, default=24, help="hours ahead, 1..168 (default 24)")
    prices.add_argument("--at", help="ISO-8601 UTC quoting moment (default: the replay clock)")
    add_common_args(prices)
    prices.set_defaults(func=cmd_prices)

    quote = verbs.add_parser("quote", help="a job's expected price, carbon and finish for each candidate deadline")
    quote.add_argument("--region", help="region the job runs in (default: the fleet's default origin)")
    quote.add_argument("--work-hours", type=float, required=True, help="the job's uninterrupted run time, hours")
    quote.add_argument("--deadline", action="append", required=True, help="a candidate deadline (repeatable)")
    quote.add_argument("--tier", type=int, choices=range(4), default=3, help="flexibility tier (default 3: deferrable)")
    quote.add_argument("--at", help="ISO-8601 UTC quoting moment (default: the replay clock)")
    add_common_args(quote)
    quote.set_defaults(func=cmd_quote)
