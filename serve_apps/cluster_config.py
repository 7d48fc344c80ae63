"""Cluster files: read cluster.yaml and the KubeRay manifests, check them against the fleet, and turn a node
type's region declarations into `ray start` flags. No Ray here: these are files, checked before anything starts."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from fleet.config import FleetConfig
from fleet.errors import ConfigError
from fleet.loaders import load_fleet
from router.placement import REGION_LABEL, REGION_RESOURCE_PREFIX, ClusterNode, region_resource

REGION_APP_IMPORT_PATH = "serve_apps.cluster:region_app_builder"
"""The Serve entry point that serves one region of a fleet as its own cluster (multi-cluster mode)."""

# Resources `ray start` takes as flags of their own rather than in --resources.
_BUILTIN_RESOURCES = {"CPU": "--num-cpus", "GPU": "--num-gpus", "memory": "--memory"}


def load_yaml_file(path: str | Path) -> Any:
    """Parse a YAML file; ConfigError naming the file when it cannot be read or parsed."""
    file = Path(path)
    try:
        return yaml.safe_load(file.read_text(encoding="utf-8"))
    except OSError as error:
        raise ConfigError(f"{file}: cannot read: {error.strerror or error}") from None
    except yaml.YAMLError as error:
        raise ConfigError(f"{file}: not valid YAML: {error}") from None


@dataclass(frozen=True)
class NodeType:
    """One node type of a cluster launcher config: what its nodes declare to Ray."""

    name: str
    resources: Mapping[str, float]
    labels: Mapping[str, str]
    min_workers: int

    @property
    def as_node(self) -> ClusterNode:
        """A node of this type, as placement sees it."""
        return ClusterNode(node_id=self.name, alive=True, resources=self.resources, labels=self.labels)


def node_types(cluster: Any, source: str = "cluster.yaml") -> dict[str, NodeType]:
    """The `available_node_types` of a cluster launcher config."""
    types = cluster.get("available_node_types") if isinstance(cluster, Mapping) else None
    if not isinstance(types, Mapping) or not types:
        raise ConfigError(f"{source}: available_node_types must be a non-empty mapping of node types")
    parsed: dict[str, NodeType] = {}
    for name, spec in types.items():
        if not isinstance(spec, Mapping):
            raise ConfigError(f"{source}: available_node_types.{name} must be a mapping")
        resources = spec.get("resources") or {}
        labels = spec.get("labels") or {}
        if not isinstance(resources, Mapping) or not isinstance(labels, Mapping):
            raise ConfigError(f"{source}: available_node_types.{name}: resources and labels must be mappings")
        try:
            parsed[str(name)] = NodeType(
                name=str(name),
                resources={str(k): float(v) for k, v in resources.items()},
                labels={str(k): str(v) for k, v in labels.items()},
                min_workers=int(spec.get("min_workers", 0)),
            )
        except (TypeError, ValueError) as error:
            raise ConfigError(f"{source}: available_node_types.{name}: {error}") from None
    return parsed


def start_flags(node_type: NodeType) -> list[str]:
    """`ray start` flags declaring what nodes of this type declare: CPU/GPU/memory, custom resources, labels.
    (The cluster launcher does the same through RAY_OVERRIDE_RESOURCES / RAY_OVERRIDE_LABELS.)"""
    flags: list[str] = []
    custom: dict[str, float | int] = {}
    for name, amount in sorted(node_type.resources.items()):
        if name in _BUILTIN_RESOURCES:
            flags.append(f"{_BUILTIN_RESOURCES[name]}={amount:g}")
        else:
            custom[name] = int(amount) if amount.is_integer() else amount
    if custom:
        flags.append(f"--resources={json.dumps(custom, separators=(',', ':'))}")
    if node_type.labels:
        flags.append("--labels=" + ",".join(f"{key}={value}" for key, value in sorted(node_type.labels.items())))
    return flags


def _declaration_problems(where: str, node: ClusterNode, fleet: FleetConfig) -> list[str]:
    """What is wrong with one node (type)'s region declarations: both or neither, one region, in the fleet."""
    problems = []
    by_resource, by_label = node.regions_by_resource, node.region_by_label
    if len(by_resource) > 1:
        problems.append(f"{where}: declares several regions {sorted(by_resource)}; a node is in one region")
    elif by_resource and by_label is None:
        problems.append(f"{where}: has the resource of region {min(by_resource)} but no label {REGION_LABEL}")
    elif by_label is not None and not by_resource:
        problems.append(f"{where}: has label {REGION_LABEL}={by_label} but no resource {region_resource(by_label)}")
    elif by_label is not None and by_resource != {by_label}:
        problems.append(f"{where}: resource says region {min(by_resource)}, label says {by_label}")
    for region in sorted(node.regions - set(fleet.region_names)):
        problems.append(f"{where}: region {region!r} is not in the fleet {list(fleet.region_names)}")
    for name, amount in node.resources.items():
        if name.startswith(REGION_RESOURCE_PREFIX) and (amount < 1 or not float(amount).is_integer()):
            problems.append(f"{where}: {name} must be a whole number >= 1 (the launcher's schema), got {amount:g}")
    return problems


def check_cluster_config(cluster: Any, fleet: FleetConfig, source: str = "cluster.yaml") -> None:
    """Check a cluster launcher config against the fleet: the head declares no region; every worker type declares
    exactly one region of the fleet, by resource and label alike; every in-cluster region has a worker type.
    Raise ConfigError listing every problem."""
    types = node_types(cluster, source)
    head = cluster.get("head_node_type")
    problems = []
    if head not in types:
        problems.append(f"head_node_type: {head!r} is not one of the node types {sorted(types)}")
    for name, node_type in types.items():
        where = f"available_node_types.{name}"
        if name == head:
            if node_type.as_node.regions:
                problems.append(f"{where}: the head declares region(s) {sorted(node_type.as_node.regions)}")
            continue
        problems.extend(_declaration_problems(where, node_type.as_node, fleet))
    covered = {region for name, t in types.items() if name != head for region in t.as_node.regions}
    for region in fleet.regions:
        if region.endpoint_url is None and region.name not in covered:
            problems.append(f"region {region.name!r}: no worker node type declares it")
    if problems:
        raise ConfigError(f"{source}: does not match fleet {fleet.name!r}:\n" + "\n".join(f"  {p}" for p in problems))


def _group_declarations(group: Mapping[str, Any], where: str) -> ClusterNode:
    """What a KubeRay group's nodes declare: rayStartParams `resources` (JSON in KubeRay's extra quotes) and the
    group's `labels` (KubeRay >= 1.5.1; a `labels` start param, k=v,..., is read too)."""
    params = group.get("rayStartParams") or {}
    raw_resources = str(params.get("resources", "{}")).strip().strip("'\"").replace('\\"', '"')
    try:
        resources = json.loads(raw_resources) if raw_resources else {}
    except json.JSONDecodeError as error:
        raise ConfigError(f"{where}.rayStartParams.resources: not JSON: {error}") from None
    labels = {str(k): str(v) for k, v in (group.get("labels") or {}).items()}
    for pair in filter(None, str(params.get("labels", "")).split(",")):
        key, sep, value = pair.partition("=")
        if not sep:
            raise ConfigError(f"{where}.rayStartParams.labels: {pair!r} is not key=value")
        labels[key.strip()] = value.strip()
    return ClusterNode(node_id=where, alive=True, resources=resources, labels=labels)


def check_rayservice(manifest: Any, serve_config: Any, source: str) -> str:
    """Check a KubeRay RayService that serves one region: its Serve config builds that region with the region
    entry point, matches serve_config.yaml's application (name, route, port, args), and every node group
    declares that region by resource and label. Return the region; raise ConfigError listing every problem."""
    if not isinstance(manifest, Mapping) or manifest.get("kind") != "RayService":
        raise ConfigError(f"{source}: not a RayService manifest")
    spec = manifest.get("spec") or {}
    serve = yaml.safe_load(spec.get("serveConfigV2") or "null")
    apps = serve.get("applications") if isinstance(serve, Mapping) else None
    if not isinstance(apps, list) or len(apps) != 1:
        raise ConfigError(f"{source}: spec.serveConfigV2 must hold exactly one application")
    app, reference = apps[0], serve_config["applications"][0]
    args = app.get("args") or {}
    region = str(args.get("region", ""))
    fleet = load_fleet(args.get("fleet"))
    problems = []
    if app.get("import_path") != REGION_APP_IMPORT_PATH:
        problems.append(f"import_path: {app.get('import_path')!r}, expected {REGION_APP_IMPORT_PATH!r}")
    if region not in fleet.region_names:
        problems.append(f"args.region: {region!r} is not in the fleet {list(fleet.region_names)}")
    for key in ("name", "route_prefix"):
        if app.get(key) != reference.get(key):
            problems.append(f"{key}: {app.get(key)!r}, serve_config.yaml has {reference.get(key)!r}")
    missing_args = sorted(set(reference.get("args") or {}) - set(args))
    if missing_args:
        problems.append(f"args: missing {missing_args} that serve_config.yaml passes")
    if (serve.get("http_options") or {}).get("port") != serve_config["http_options"]["port"]:
        problems.append("http_options.port differs from serve_config.yaml's")
    cluster = spec.get("rayClusterConfig") or {}
    groups = [("headGroupSpec", cluster.get("headGroupSpec") or {})]
    groups += [(f"workerGroupSpecs.{g.get('groupName')}", g) for g in cluster.get("workerGroupSpecs") or []]
    for where, group in groups:
        node = _group_declarations(group, where)
        problems.extend(_declaration_problems(where, node, fleet))
        if node.regions != {region}:
            problems.append(f"{where}: declares {sorted(node.regions)}, the service serves {region!r}")
    if problems:
        raise ConfigError(f"{source}:\n" + "\n".join(f"  {p}" for p in problems))
    return region
