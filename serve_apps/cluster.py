"""Multi-node and multi-cluster deployment: serve one region as its own cluster, join a running Ray cluster, report
where each region's work runs, and remove gridshift from it (docs/cluster.md).

The `gridshift cluster` verbs built on these are serve_apps/cli/cluster.py.
"""

from __future__ import annotations

import contextlib
import logging
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from fleet.config import FleetConfig
from fleet.errors import ConfigError, GridshiftError
from fleet.loaders import load_fleet, parse_fleet
from router.placement import ClusterNode, PlacementVerdict, placement_verdict

if TYPE_CHECKING:  # importing Ray costs a second; the CLI loads this module for every verb
    from ray.serve import Application

CLUSTER_CONFIG = "cluster.yaml"
PLACEMENT_SCHEMA = "gridshift.cluster_placement/v1"
PROXY_LOCATIONS = ("EveryNode", "HeadOnly")


def region_fleet(fleet: FleetConfig, region: str) -> FleetConfig:
    """The fleet reduced to one region, served in place: what a region's own cluster runs (multi-cluster mode).
    The main cluster's fleet may name this region remote (endpoint_url); here it is the local one."""
    if region not in fleet.region_names:
        raise ConfigError(f"region: {region!r} is not in fleet {fleet.name!r} {list(fleet.region_names)}")
    data = fleet.model_dump(mode="json")
    only = next(entry for entry in data["regions"] if entry["name"] == region)
    only["endpoint_url"] = None
    data.update(name=f"{fleet.name}-{region}", regions=[only], default_origin=region)
    return parse_fleet(data, source=f"fleet {fleet.name!r}, region {region!r}")


def region_app_builder(args: dict[str, Any]) -> Application:
    """Serve entry point for one region as its own cluster (deploy/kuberay/, `serve deploy`): args `region`
    (required), `fleet` (a path; null: the packaged default) and `admin_token_sha256`, as in app_builder."""
    from serve_apps.app import build_app_for_serve

    if not args.get("region"):
        raise ConfigError("args.region: the region this cluster serves is required")
    fleet = region_fleet(load_fleet(args.get("fleet")), str(args["region"]))
    return build_app_for_serve(fleet, args.get("admin_token_sha256"))


# Ray side ---------------------------------------------------------------------------------------------------


def connect(address: str) -> None:
    """Join a running Ray cluster as a driver (`auto`: the one `ray start` recorded on this host)."""
    import ray

    from policies.actors.client import NAMESPACE

    ray.init(address=address, namespace=NAMESPACE, logging_level=logging.WARNING, log_to_driver=False)


def missing_region_nodes(fleet: FleetConfig, nodes: list[ClusterNode]) -> list[str]:
    """In-cluster regions of the fleet that no live node declares."""
    declared = {region for node in nodes if node.alive for region in node.regions}
    return [r.name for r in fleet.regions if r.endpoint_url is None and r.name not in declared]


def wait_for_region_nodes(fleet: FleetConfig, timeout_s: float) -> None:
    """Wait until every in-cluster region has a live node (e.g. while the autoscaler starts them)."""
    from batch.submit import cluster_nodes

    deadline = time.monotonic() + timeout_s
    while missing := missing_region_nodes(fleet, cluster_nodes()):
        if time.monotonic() >= deadline:
            raise GridshiftError(f"no node of region(s) {missing} joined within {timeout_s:g} s")
        time.sleep(2.0)


@dataclass(frozen=True)
class PlacedWork:
    """One replica or batch job of a region, and the node it runs on."""

    kind: Literal["replica", "batch_job"]
    name: str
    region: str
    node: ClusterNode | None
    verdict: PlacementVerdict

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "name": self.name,
            "region": self.region,
            "node_id": self.node.node_id if self.node else None,
            "node_regions": sorted(self.node.regions) if self.node else [],
            "verdict": self.verdict.value,
        }


def _serve_replicas() -> list[tuple[str, str, str | None]]:
    """(deployment name, replica id, node id) of every replica of the gridshift app's regional deployments."""
    # serve.status() omits nodes; this is the call it makes, read in full (ServeInstanceDetails is public schema).
    from ray.serve.context import _get_global_client
    from ray.serve.schema import ServeInstanceDetails

    from serve_apps.app import APP_NAME, REGIONAL_DEPLOYMENT_PREFIX

    client = _get_global_client(raise_if_no_controller_running=False)
    if client is None:
        return []
    details = ServeInstanceDetails(**client.get_serve_details())
    app = details.applications.get(APP_NAME)
    if app is None:
        return []
    return [
        (name, replica.replica_id, replica.node_id)
        for name, deployment in sorted(app.deployments.items())
        if name.startswith(REGIONAL_DEPLOYMENT_PREFIX)
        for replica in deployment.replicas
    ]


def _batch_jobs() -> list[tuple[str, str, str | None]]:
    """(job id, region, driver node id; None while not placed) of every running gridshift batch job (Ray Jobs)."""
    from batch.submit import ray_jobs

    return [(job.submission_id, job.region, job.driver_node_id) for job in ray_jobs() if job.status == "RUNNING"]


def placement_report() -> tuple[list[PlacedWork], list[ClusterNode]]:
    """Where each regional replica and running batch job (its driver) of the connected cluster runs, judged against
    its nodes."""
    from batch.submit import cluster_nodes
    from serve_apps.app import REGIONAL_DEPLOYMENT_PREFIX

    nodes = cluster_nodes()
    by_id = {node.node_id: node for node in nodes}
    work = []
    for deployment, replica_id, node_id in _serve_replicas():
        region = deployment.removeprefix(REGIONAL_DEPLOYMENT_PREFIX)
        node = by_id.get(node_id) if node_id else None
        work.append(PlacedWork("replica", replica_id, region, node, placement_verdict(region, node, nodes)))
    for job_id, region, node_id in _batch_jobs():
        node = by_id.get(node_id) if node_id else None
        work.append(PlacedWork("batch_job", job_id, region, node, placement_verdict(region, node, nodes)))
    return work, nodes


def placement_json(work: list[PlacedWork], nodes: list[ClusterNode]) -> dict[str, Any]:
    return {
        "schema": PLACEMENT_SCHEMA,
        "work": [item.to_dict() for item in work],
        "nodes": [
            {
                "node_id": node.node_id,
                "alive": node.alive,
                "regions": sorted(node.regions),
                "resources": dict(node.resources),
                "labels": dict(node.labels),
            }
            for node in nodes
        ],
    }


def placement_table(work: list[PlacedWork], nodes: list[ClusterNode]) -> str:
    live = [node for node in nodes if node.alive]
    lines = [f"{len(live)} live node(s): " + ", ".join(f"{n.node_id[:8]} {sorted(n.regions) or '-'}" for n in live)]
    lines.append(f"{'kind':<10} {'region':<12} {'node':<9} {'verdict':<10} name")
    for item in work:
        node = item.node.node_id[:8] if item.node else "-"
        lines.append(f"{item.kind:<10} {item.region:<12} {node:<9} {item.verdict.value:<10} {item.name}")
    return "\n".join(lines)


def undeploy() -> None:
    """Remove gridshift from the connected cluster: Serve (app and proxies), the fleet's actors, running batch jobs.
    Batch jobs resume from their commit records when submitted again."""
    import ray
    from ray import serve

    from batch.spec import JobSpecError
    from batch.submit import stop_jobs
    from policies.actors.client import NAMESPACE
    from policies.actors.registry import FLEET_ACTOR_NAMES

    serve.shutdown()  # type: ignore[no-untyped-call]
    with contextlib.suppress(JobSpecError):  # a cluster without the Jobs API runs no batch jobs
        stop_jobs()
    for name in FLEET_ACTOR_NAMES:
        try:
            ray.kill(ray.get_actor(name, namespace=NAMESPACE))
        except ValueError:  # not there
            continue
