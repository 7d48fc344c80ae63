"""The `gridshift` command line: one entry point whose verbs mirror the HTTP API, one module per verb group."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

import httpx

from fleet.errors import GridshiftError
from serve_apps.cli import batch, cluster, openadr, policy, prices, route, signals, simulate, study, tenants, train, up
from serve_apps.client import GridshiftClientError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="gridshift", description="Run AI compute as a dispatchable grid resource.")
    verbs = parser.add_subparsers(dest="verb", required=True)
    # The order here is the order `gridshift --help` lists the verbs in.
    for group in (route, up, batch, train, cluster, openadr, policy, signals, simulate, study, tenants, prices):
        group.register(verbs)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "draw", 0.0) is not None and not 0.0 <= getattr(args, "draw", 0.0) < 1.0:
        parser.error("--draw must be in [0, 1)")
    try:
        result: int = args.func(args)
    except GridshiftClientError as error:
        said = "the gateway answered " if error.status else ""
        print(f"gridshift: error: {said}{error}", file=sys.stderr)
        return 2
    except httpx.HTTPError as error:
        print(f"gridshift: error: {getattr(args, 'url', '?')}: {type(error).__name__}: {error}", file=sys.stderr)
        return 2
    except GridshiftError as error:
        print(f"gridshift: error: {error}", file=sys.stderr)
        return 2
    return result
