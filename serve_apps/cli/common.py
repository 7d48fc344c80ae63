"""What the CLI's verb groups share: the fleet context a verb reads, and the flags that choose it."""

from __future__ import annotations

import argparse

from fleet.loaders import load_fleet
from grid.context import FleetContext
from grid.sources.store import load_live_context


def fleet_context(args: argparse.Namespace) -> FleetContext:
    return load_live_context(load_fleet(args.fleet), args.trace)[0]


def add_common_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--fleet", help="fleet YAML (default: the packaged four-region AWS fleet)")
    parser.add_argument("--trace", help="trace file overriding the fleet's signal source")
    parser.add_argument("--json", action="store_true", help="stable JSON output (docs/cli-json.md)")
