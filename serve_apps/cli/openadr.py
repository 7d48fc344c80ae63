"""`gridshift openadr ...`: the VEN's status, and a local spec-following OpenADR 3 VTN for demos."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import secrets
from pathlib import Path

import httpx

from fleet.clock import WallClock
from fleet.errors import GridshiftError
from fleet.loaders import load_fleet
from fleet.openadr import SPEC_VERSIONS
from openadr.status import STATUS_PATH, VenStatus, default_status_file, parse_status, read_status
from openadr.vtn import LocalVTN

DEMO_PORT = 25080
DEMO_PROGRAM = "gridshift-demo"


def _status_from_url(url: str) -> VenStatus:
    target = url.rstrip("/") + STATUS_PATH
    answer = httpx.get(target, timeout=5)
    answer.raise_for_status()
    return parse_status(answer.text, target)


def _status_file(args: argparse.Namespace) -> Path:
    if args.status_file:
        return Path(args.status_file)
    if args.fleet:
        openadr = load_fleet(args.fleet).openadr
        if openadr is not None and openadr.status_file:
            return Path(openadr.status_file)
    return default_status_file()


def _print_status(status: VenStatus) -> None:
    state = "registered" if status.registered else "NOT registered"
    print(
        f"VEN {status.ven_name} ({state}, id {status.ven_id or '-'}) at {status.vtn_url}, OpenADR {status.spec_version}"
    )
    print(f"  status written {status.updated_at}")
    for region, resource in sorted(status.resources.items()):
        print(f"  resource {resource.resource_name:<24} region {region:<14} id {resource.resource_id or '-'}")
    webhook = status.webhook_url or "none (polling only)"
    print(f"  webhook {webhook}; subscriptions {', '.join(status.subscriptions) or '-'}")
    poll = "ok" if status.last_poll_ok else "FAILING"
    print(f"  polls {status.polls} (last {status.last_poll_at or '-'}, {poll}); notifications {status.notifications}")
    print(f"active events: {len(status.events)}")
    for event in status.events:
        print(f"  {event.event_id} [{event.program_id}] {event.event_name or ''} regions {', '.join(event.regions)}")
        for line in event.instructions:
            print(f"    {line}")
        for note in event.notes:
            print(f"    note: {note}")
    print(f"last reports: {len(status.reports)}")
    for report in status.reports:
        print(f"  {report.sent_at} {report.kind:<8} event {report.event_id} report {report.report_id or '-'}")
        for resource_name, figures in sorted(report.figures.items()):
            values = ", ".join(f"{kind} {value:g}" for kind, value in figures.items())
            print(f"    {resource_name}: {values}")
    if status.errors:
        print("errors: " + ", ".join(f"{kind} {count}" for kind, count in status.errors.items()))
        print(f"  last: {status.last_error}")


def cmd_status(args: argparse.Namespace) -> int:
    status = _status_from_url(args.url) if args.url else read_status(_status_file(args))
    if args.json:
        print(status.to_json())
    else:
        _print_status(status)
    return 0


async def _serve_vtn(args: argparse.Namespace) -> None:
    ven_id = os.environ.get("GRIDSHIFT_OPENADR_CLIENT_ID") or "gridshift-ven"
    given_secret = os.environ.get("GRIDSHIFT_OPENADR_CLIENT_SECRET")
    ven_secret = given_secret or secrets.token_urlsafe(16)
    # A secret the operator supplied is never echoed; a throwaway demo one must be, or nobody could use it.
    shown_secret = "(from the environment)" if given_secret else ven_secret
    bl_secret = secrets.token_urlsafe(16)
    clients = {ven_id: (ven_secret, "ven"), "bl": (bl_secret, "bl")}
    vtn = LocalVTN(args.spec_version, WallClock(), clients, host=args.host, port=args.port)  # type: ignore[arg-type]
    async with vtn:
        program = await vtn.create("program", {"programName": DEMO_PROGRAM})
        print(f"local OpenADR {args.spec_version} VTN at {vtn.url} (program {DEMO_PROGRAM!r}, id {program['id']})")
        print(f"  VEN credentials: GRIDSHIFT_OPENADR_CLIENT_ID={ven_id} GRIDSHIFT_OPENADR_CLIENT_SECRET={shown_secret}")
        print(f"  business-logic client: id bl, secret {bl_secret} (POST /events with its token)")
        print(
            f"  token:  curl -s -d grant_type=client_credentials -d client_id=bl -d client_secret={bl_secret} "
            f"{vtn.url}/auth/token"
        )
        print(flush=True)
        await asyncio.sleep(args.duration_s if args.duration_s else float("inf"))


def cmd_vtn(args: argparse.Namespace) -> int:
    if args.host not in ("127.0.0.1", "localhost", "::1"):
        raise GridshiftError("--host: the demo VTN listens on loopback only")
    with contextlib.suppress(KeyboardInterrupt):  # Ctrl-C is how the demo ends
        asyncio.run(_serve_vtn(args))
    return 0


def register(verbs: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add `gridshift openadr status|vtn` to the CLI's verbs."""
    openadr = verbs.add_parser("openadr", help="OpenADR 3: the VEN's status, a local test VTN")
    openadr_verbs = openadr.add_subparsers(dest="openadr_verb", required=True)
    status = openadr_verbs.add_parser("status", help="registration, active events and last reports of the VEN")
    status.add_argument("--url", help="read GET {url}/v1/openadr/status (the VEN's callback server, or a gateway)")
    status.add_argument("--status-file", help="read this status file (default: the fleet's, else the temp folder)")
    status.add_argument("--fleet", help="fleet YAML whose openadr.status_file to read")
    status.add_argument("--json", action="store_true", help="the status object as JSON (docs/openadr.md)")
    status.set_defaults(func=cmd_status)
    vtn = openadr_verbs.add_parser("vtn", help="run a local spec-following VTN for demos (loopback)")
    vtn.add_argument("--port", type=int, default=DEMO_PORT, help=f"listen port (default {DEMO_PORT})")
    vtn.add_argument("--host", default="127.0.0.1", help="loopback address to listen on")
    vtn.add_argument("--spec-version", choices=SPEC_VERSIONS, default="3.1.0", help="OpenADR version")
    vtn.add_argument("--duration-s", type=float, help="serve this long, then stop (default: until Ctrl-C)")
    vtn.set_defaults(func=cmd_vtn)
