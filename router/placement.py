"""Region placement: which nodes of a Ray cluster belong to which region, and the scheduling options that keep a
region's work (serving replicas and batch jobs) on them. Pure: callers pass in the cluster's nodes.

A node says it belongs to region R twice (cluster.yaml, the KubeRay manifests): the custom resource
`gridshift-region-R` (understood by every Ray scheduler and autoscaler) and the node label
`gridshift/region=R` (Ray's label selectors; shown by `ray list nodes`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from fleet.regions import RegionConfig
from fleet.serving import RegionPinning

REGION_RESOURCE_PREFIX = "gridshift-region-"
REGION_LABEL = "gridshift/region"
"""Node label naming the region a node is in (a Kubernetes-style key; Ray reserves the `ray.io/` prefix)."""

PIN_AMOUNT = 0.001
"""How much of a region's resource one piece of work asks for: enough to need a node of that region, never enough
to limit how many pieces share it (a node declares 1, or any whole number)."""


def region_resource(region: str) -> str:
    """The custom resource a node of `region` declares, used to pin that region's work."""
    return f"{REGION_RESOURCE_PREFIX}{region}"


@dataclass(frozen=True)
class ClusterNode:
    """What placement needs to know of one Ray node."""

    node_id: str
    alive: bool
    resources: Mapping[str, float] = field(default_factory=dict)
    labels: Mapping[str, str] = field(default_factory=dict)

    @property
    def regions_by_resource(self) -> frozenset[str]:
        return frozenset(
            name.removeprefix(REGION_RESOURCE_PREFIX)
            for name, amount in self.resources.items()
            if name.startswith(REGION_RESOURCE_PREFIX) and amount > 0
        )

    @property
    def region_by_label(self) -> str | None:
        return self.labels.get(REGION_LABEL) or None

    @property
    def regions(self) -> frozenset[str]:
        """Regions this node declares, by resource or label (normally exactly one, or none for a head node)."""
        label = self.region_by_label
        return self.regions_by_resource | ({label} if label else set())


def nodes_from_ray(raw_nodes: Iterable[Mapping[str, Any]]) -> list[ClusterNode]:
    """Convert `ray.nodes()` entries (dicts with NodeID, Alive, Resources, Labels) to ClusterNodes."""
    return [
        ClusterNode(
            node_id=str(raw.get("NodeID", "")),
            alive=bool(raw.get("Alive", False)),
            resources={str(k): float(v) for k, v in (raw.get("Resources") or {}).items()},
            labels={str(k): str(v) for k, v in (raw.get("Labels") or {}).items()},
        )
        for raw in raw_nodes
    ]


def region_placement(region: RegionConfig, pinning: RegionPinning, nodes: Sequence[ClusterNode]) -> dict[str, Any]:
    """Ray scheduling options (`resources`, `label_selector`) that keep `region`'s work on its own nodes.

    - a remote region (`endpoint_url`) has no nodes in this cluster: work for it that runs here is not pinned.
    - `off`: no constraint.
    - `required`: both the resource and the label, whether or not such a node is up yet (work waits for one).
    - `auto`: constrain only by what the live nodes declare; a cluster with no node of this region (a laptop, CI,
      a one-region cluster without declarations) places the work anywhere. The resource pins when any node has it;
      the label is added only when every node with the resource also carries it, so it never excludes a node the
      resource admits (a half-labelled cluster still works).
    """
    name = region.name
    resource = region_resource(name)
    if pinning is RegionPinning.OFF or region.endpoint_url:
        return {}
    if pinning is RegionPinning.REQUIRED:
        return {"resources": {resource: PIN_AMOUNT}, "label_selector": {REGION_LABEL: name}}
    live = [node for node in nodes if node.alive]
    with_resource = [node for node in live if node.resources.get(resource, 0.0) > 0]
    labelled = [node for node in live if node.labels.get(REGION_LABEL) == name]
    options: dict[str, Any] = {}
    if with_resource:
        options["resources"] = {resource: PIN_AMOUNT}
        if all(node.labels.get(REGION_LABEL) == name for node in with_resource):
            options["label_selector"] = {REGION_LABEL: name}
    elif labelled:
        options["label_selector"] = {REGION_LABEL: name}
    return options


class PlacementVerdict(StrEnum):
    """Where one piece of a region's work runs, judged against the cluster's nodes."""

    ON_REGION = "on_region"  # on a node of its own region
    UNPINNED = "unpinned"  # on a node without a region, and the cluster has no node of this region (a laptop, CI)
    MISPLACED = "misplaced"  # on another region's node, or off-region although the region has nodes
    PENDING = "pending"  # not placed yet (waiting for a node of its region, or starting)


def placement_verdict(region: str, node: ClusterNode | None, nodes: Sequence[ClusterNode]) -> PlacementVerdict:
    """Judge where a piece of `region`'s work runs (`node` None: not placed yet)."""
    if node is None:
        return PlacementVerdict.PENDING
    if region in node.regions:
        return PlacementVerdict.ON_REGION
    region_has_nodes = any(n.alive and region in n.regions for n in nodes)
    if node.regions or region_has_nodes:
        return PlacementVerdict.MISPLACED
    return PlacementVerdict.UNPINNED
