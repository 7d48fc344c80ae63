"""`gridshift tenants create|list|revoke|rotate` and `gridshift usage`: tenants, their keys and usage, in the database.

Works on the tenants database directly (the fleet's `tenants.database_url`, or --db), so an operator can issue a
key before the gateway runs; the gateway's admin API does the same over HTTP (docs/tenants.md).
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from dataclasses import asdict

from fleet.loaders import load_fleet
from fleet.times import iso, to_epoch_s, utc_now_from
from tenants.store import Tenant, TenantStore, database_url, redacted, usage_totals

TENANTS_SCHEMA = "gridshift.tenants/v1"


def _store(args: argparse.Namespace) -> TenantStore:
    return TenantStore.open(args.db or database_url(load_fleet(args.fleet).tenants))


def _tenant_dict(tenant: Tenant) -> dict[str, object]:
    row: dict[str, object] = asdict(tenant)
    row["created_at"] = iso(row.pop("created_at_s"))  # type: ignore[arg-type]
    revoked = row.pop("revoked_at_s")
    row["revoked_at"] = None if revoked is None else iso(revoked)  # type: ignore[arg-type]
    return row


def _show_key(args: argparse.Namespace, tenant: Tenant, key: str) -> None:
    if args.json:
        print(json.dumps({"schema": TENANTS_SCHEMA, "tenant": _tenant_dict(tenant), "api_key": key}, indent=2))
        return
    print(f"tenant {tenant.name} ({tenant.tenant_id}): tiers default {tenant.default_tier}, max {tenant.max_tier}")
    print(f"api key (shown once, store it now): {key}")


def cmd_create(args: argparse.Namespace) -> int:
    fleet = load_fleet(args.fleet)
    default_tier = fleet.tenants.default_tier if args.default_tier is None else args.default_tier
    max_tier = max(default_tier, fleet.tenants.max_tier) if args.max_tier is None else args.max_tier
    store = TenantStore.open(args.db or database_url(fleet.tenants))
    try:
        tenant, key = store.create_tenant(args.name, default_tier, max_tier, args.requests_per_s, args.items_per_s)
    finally:
        store.close()
    _show_key(args, tenant, key)
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    store = _store(args)
    try:
        found = store.tenants()
        where = redacted(str(store.engine.url))
    finally:
        store.close()
    if args.json:
        print(json.dumps({"schema": TENANTS_SCHEMA, "tenants": [_tenant_dict(t) for t in found]}, indent=2))
        return 0
    print(f"{len(found)} tenant(s) in {where}")
    print(f"{'tenant_id':<15} {'name':<24} {'tiers':>5} {'req/s':>7} {'items/s':>8}  state")
    for t in found:
        state = "active" if t.active else f"revoked {iso(t.revoked_at_s or 0)}"
        print(
            f"{t.tenant_id:<15} {t.name:<24} {t.default_tier}..{t.max_tier:<2} "
            f"{t.requests_per_s or '-':>7} {t.items_per_s or '-':>8}  {state}"
        )
    return 0


def cmd_revoke(args: argparse.Namespace) -> int:
    store = _store(args)
    try:
        tenant = store.revoke(args.tenant)
    finally:
        store.close()
    print(json.dumps(_tenant_dict(tenant), indent=2) if args.json else f"revoked {tenant.name} and its keys")
    return 0


def cmd_rotate(args: argparse.Namespace) -> int:
    store = _store(args)
    try:
        tenant, key = store.rotate(args.tenant)
    finally:
        store.close()
    _show_key(args, tenant, key)
    return 0


def cmd_usage(args: argparse.Namespace) -> int:
    store = _store(args)
    try:
        tenant_id = None if args.tenant is None else store.tenant(args.tenant).tenant_id
        from_s = None if args.start is None else float(to_epoch_s(utc_now_from(args.start)))
        to_s = None if args.end is None else float(to_epoch_s(utc_now_from(args.end)))
        records = store.usage(from_s, to_s, tenant_id)
        names = {t.tenant_id: t.name for t in store.tenants()}
    finally:
        store.close()
    if args.csv:
        fields = ["request_id", "tenant_id", "at", "grid_hour", "kind", "region", "origin", "tier", "items", "kwh"]
        fields += ["gco2", "usd", "earned_usd", "moved", "degraded", "deferred", "job_hours"]
        writer = csv.DictWriter(sys.stdout, fieldnames=fields, lineterminator="\n")
        writer.writeheader()
        for record in records:
            row: dict[str, object] = asdict(record)
            row["at"] = iso(row.pop("at_s"))  # type: ignore[arg-type]
            row["grid_hour"] = iso(row.pop("grid_hour_s"))  # type: ignore[arg-type]
            writer.writerow(row)
        return 0
    totals = usage_totals(records)
    if args.json:
        print(json.dumps({"schema": "gridshift.usage/v1", "totals": totals}, indent=2))
        return 0
    print(
        f"{'tenant':<24} {'requests':>9} {'items':>9} {'job-h':>8} {'kWh':>9} {'gCO2':>10} {'USD':>10} {'earned':>9} "
        "moved degraded deferred"
    )
    for tenant_id, entry in sorted(totals.items()):
        print(
            f"{names.get(tenant_id, tenant_id):<24} {entry['requests']:>9} {entry['items']:>9} "
            f"{entry['job_hours']:>8.3f} {entry['kwh']:>9.4f} {entry['gco2']:>10.1f} {entry['usd']:>10.4f} "
            f"{entry['earned_usd']:>9.4f} {entry['moved']:>5} {entry['degraded']:>8} {entry['deferred']:>8}"
        )
    return 0


def _db_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--fleet", help="fleet YAML whose tenants.database_url to use (default: the packaged fleet)")
    parser.add_argument("--db", help="SQLAlchemy URL of the tenants database, overriding the fleet's")
    parser.add_argument("--json", action="store_true", help="stable JSON output")


def register(verbs: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add `gridshift tenants ...` and `gridshift usage` to the CLI's verbs."""
    tenants = verbs.add_parser("tenants", help="tenants and their API keys")
    tenant_verbs = tenants.add_subparsers(dest="tenants_verb", required=True)
    create = tenant_verbs.add_parser("create", help="a new tenant and its API key (shown once)")
    create.add_argument("name")
    create.add_argument("--default-tier", type=int, choices=range(4), help="tier when a call names none")
    create.add_argument("--max-tier", type=int, choices=range(4), help="highest tier the key may ask for")
    create.add_argument("--requests-per-s", type=float, help="request rate limit (default: the fleet's)")
    create.add_argument("--items-per-s", type=float, help="item rate limit (default: the fleet's)")
    _db_args(create)
    create.set_defaults(func=cmd_create)
    listing = tenant_verbs.add_parser("list", help="every tenant, active and revoked")
    _db_args(listing)
    listing.set_defaults(func=cmd_list)
    for name, func, what in (
        ("revoke", cmd_revoke, "revoke a tenant and its keys"),
        ("rotate", cmd_rotate, "a new key; the old ones stop working"),
    ):
        verb = tenant_verbs.add_parser(name, help=what)
        verb.add_argument("tenant", help="tenant name or id")
        _db_args(verb)
        verb.set_defaults(func=func)

    usage = verbs.add_parser(
        "usage", help="per-tenant usage: requests, items, kWh, gCO2, price, what flexibility earned"
    )
    usage.add_argument("--tenant", help="one tenant (name or id)")
    usage.add_argument("--from", dest="start", help="ISO-8601 UTC start (inclusive)")
    usage.add_argument("--to", dest="end", help="ISO-8601 UTC end (exclusive)")
    usage.add_argument("--csv", action="store_true", help="every record as CSV")
    _db_args(usage)
    usage.set_defaults(func=cmd_usage)
