"""`gridshift cluster ...`: deploy onto a Ray cluster, report placement, remove, check configs (docs/cluster.md)."""

from __future__ import annotations

import argparse
import json
import sys

from fleet.config import FleetConfig
from fleet.errors import ConfigError
from fleet.loaders import load_fleet, parse_fleet
from router.placement import ClusterNode, PlacementVerdict
from serve_apps.admin_token import ADMIN_TOKEN_ENV, resolve_admin_token
from serve_apps.cluster import (
    CLUSTER_CONFIG,
    PROXY_LOCATIONS,
    PlacedWork,
    connect,
    placement_json,
    placement_report,
    placement_table,
    region_fleet,
    undeploy,
    wait_for_region_nodes,
)
from serve_apps.up import deploy


def _print_placement(args: argparse.Namespace, work: list[PlacedWork], nodes: list[ClusterNode]) -> int:
    print(json.dumps(placement_json(work, nodes), indent=2) if args.json else placement_table(work, nodes))
    return 1 if any(item.verdict is PlacementVerdict.MISPLACED for item in work) else 0


def _deploy_fleet(args: argparse.Namespace) -> FleetConfig:
    fleet = load_fleet(args.fleet)
    if args.region:
        fleet = region_fleet(fleet, args.region)
    data = fleet.model_dump(mode="json")
    data["gateway"].update({k: v for k, v in (("host", args.host), ("port", args.port)) if v is not None})
    return parse_fleet(data, source="gridshift cluster deploy flags")


def cmd_deploy(args: argparse.Namespace) -> int:
    fleet = _deploy_fleet(args)
    connect(args.address)
    if args.wait_for_region_nodes > 0:
        wait_for_region_nodes(fleet, args.wait_for_region_nodes)
    token, generated = resolve_admin_token(fleet.gateway)
    deploy(fleet, token, blocking_timeout_s=args.timeout_s, proxy_location=args.proxy_location)
    # Status lines go to stderr, so that --json leaves stdout to the placement report.
    endpoint = f"http://{fleet.gateway.host}:{fleet.gateway.port}"
    print(f"gridshift: fleet {fleet.name!r} ({', '.join(fleet.region_names)}) at {endpoint}", file=sys.stderr)
    if generated:
        # Printed once, as `gridshift up` does; it is never logged.
        print(f"gridshift: admin token (set {ADMIN_TOKEN_ENV} to choose your own): {token}", file=sys.stderr)
    return _print_placement(args, *placement_report())


def cmd_placement(args: argparse.Namespace) -> int:
    connect(args.address)
    return _print_placement(args, *placement_report())


def cmd_down(args: argparse.Namespace) -> int:
    connect(args.address)
    undeploy()
    print("gridshift: removed from the cluster")
    return 0


def cmd_check(args: argparse.Namespace) -> int:
    from serve_apps.cluster_config import check_cluster_config, check_rayservice, load_yaml_file

    fleet = load_fleet(args.fleet)
    check_cluster_config(load_yaml_file(args.cluster_config), fleet, source=args.cluster_config)
    print(f"{args.cluster_config}: matches fleet {fleet.name!r}")
    serve_config = load_yaml_file(args.serve_config)
    for manifest in args.rayservice:
        region = check_rayservice(load_yaml_file(manifest), serve_config, source=manifest)
        print(f"{manifest}: serves region {region}, consistent with {args.serve_config}")
    return 0


def cmd_start_args(args: argparse.Namespace) -> int:
    from serve_apps.cluster_config import load_yaml_file, node_types, start_flags

    types = node_types(load_yaml_file(args.cluster_config), args.cluster_config)
    if args.node_type not in types:
        raise ConfigError(f"{args.cluster_config}: no node type {args.node_type!r}; known: {sorted(types)}")
    print(" ".join(f"'{flag}'" for flag in start_flags(types[args.node_type])))
    return 0


def register(verbs: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add `gridshift cluster ...` to the CLI's verbs."""
    cluster = verbs.add_parser("cluster", help="multi-node and multi-cluster deployment (docs/cluster.md)")
    sub = cluster.add_subparsers(dest="cluster_verb", required=True)

    def address(parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--address", required=True, help="Ray cluster address (host:port, or auto)")
        parser.add_argument("--json", action="store_true", help="print the placement report as JSON")

    deploy_verb = sub.add_parser("deploy", help="deploy the fleet (or one region of it) onto a running Ray cluster")
    address(deploy_verb)
    deploy_verb.add_argument("--fleet", help="fleet YAML (default: the packaged four-region AWS fleet)")
    deploy_verb.add_argument("--region", help="serve only this region, in place (multi-cluster mode)")
    deploy_verb.add_argument("--host", help="gateway listen address (default: the fleet's; 0.0.0.0 to accept others)")
    deploy_verb.add_argument("--port", type=int, help="gateway port (default: the fleet's)")
    deploy_verb.add_argument(
        "--proxy-location", choices=PROXY_LOCATIONS, default="EveryNode", help="Serve HTTP proxies"
    )
    deploy_verb.add_argument(
        "--wait-for-region-nodes", type=float, default=0.0, metavar="S", help="first wait this long for region nodes"
    )
    deploy_verb.add_argument("--timeout-s", type=float, default=600.0, help="how long the deployment may take")
    deploy_verb.set_defaults(func=cmd_deploy)

    placement = sub.add_parser("placement", help="where each region's replicas and batch jobs run; 1 if misplaced")
    address(placement)
    placement.set_defaults(func=cmd_placement)

    down = sub.add_parser("down", help="remove gridshift (Serve, control actor, batch jobs) from a Ray cluster")
    down.add_argument("--address", required=True, help="Ray cluster address (host:port, or auto)")
    down.set_defaults(func=cmd_down)

    check = sub.add_parser("check", help="check cluster.yaml and KubeRay manifests against the fleet")
    check.add_argument("--cluster-config", default=CLUSTER_CONFIG, help="cluster launcher config")
    check.add_argument("--fleet", help="fleet YAML (default: the packaged four-region AWS fleet)")
    check.add_argument("--serve-config", default="serve_config.yaml", help="Serve config the manifests must match")
    check.add_argument("--rayservice", nargs="*", default=[], help="KubeRay RayService manifests of single regions")
    check.set_defaults(func=cmd_check)

    start_args = sub.add_parser("start-args", help="`ray start` flags declaring a node type's resources and labels")
    start_args.add_argument("--cluster-config", default=CLUSTER_CONFIG, help="cluster launcher config")
    start_args.add_argument("node_type", help="node type of the cluster config, e.g. region-us-west-2")
    start_args.set_defaults(func=cmd_start_args)
