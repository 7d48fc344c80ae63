"""The shipped cluster files (cluster.yaml, deploy/kuberay, deploy/docker) parse, satisfy Ray's own schema and
parsers, and agree with the fleet and serve_config.yaml; the checks catch the mistakes they exist for."""

from __future__ import annotations

import copy
import importlib
import json
import re
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import ray
import yaml
from ray._private.label_utils import parse_node_labels_string, validate_node_label_syntax

from fleet.errors import ConfigError
from fleet.loaders import load_fleet
from router.placement import REGION_LABEL, region_resource
from serve_apps.cli import main
from serve_apps.cluster import region_app_builder, region_fleet
from serve_apps.cluster_config import (
    REGION_APP_IMPORT_PATH,
    check_cluster_config,
    check_rayservice,
    load_yaml_file,
    node_types,
    start_flags,
)
from tests.conftest import REPO_ROOT

CLUSTER_YAML = REPO_ROOT / "cluster.yaml"
SERVE_CONFIG = REPO_ROOT / "serve_config.yaml"
RAYSERVICES = sorted((REPO_ROOT / "deploy" / "kuberay").glob("rayservice-*.yaml"))
FLEET = load_fleet()


@pytest.fixture
def cluster() -> dict[str, Any]:
    data: dict[str, Any] = load_yaml_file(CLUSTER_YAML)
    return data


def test_cluster_yaml_satisfies_the_cluster_launchers_schema(cluster: dict[str, Any]) -> None:
    schema = json.loads((Path(ray.autoscaler.__file__).parent / "ray-schema.json").read_text())
    jsonschema.validate(cluster, schema)


def test_cluster_yaml_has_a_worker_type_per_fleet_region_declaring_it_twice(cluster: dict[str, Any]) -> None:
    check_cluster_config(cluster, FLEET)
    types = node_types(cluster)
    head = cluster["head_node_type"]
    assert types[head].as_node.regions == frozenset()
    by_region = {t.as_node.regions_by_resource: t for name, t in types.items() if name != head}
    for region in FLEET.region_names:
        declared = by_region[frozenset({region})]
        assert declared.resources[region_resource(region)] == 1
        assert declared.labels == {REGION_LABEL: region}
        assert declared.min_workers >= 1  # a region without a node cannot serve


def test_cluster_yaml_installs_pinned_cpu_torch_before_gridshift(cluster: dict[str, Any]) -> None:
    commands = cluster["setup_commands"]
    torch_at = next(i for i, c in enumerate(commands) if "torch==2.13.0" in c)
    package_at = next(i for i, c in enumerate(commands) if re.search(r"pip install .*~/gridshift", c))
    assert torch_at < package_at
    assert "download.pytorch.org/whl/cpu" in commands[torch_at]
    assert cluster["file_mounts"]["~/gridshift"] == "."
    assert ray.__version__ in cluster["docker"]["image"]


def test_start_flags_are_what_ray_start_parses_back(cluster: dict[str, Any]) -> None:
    for node_type in node_types(cluster).values():
        flags = dict(flag.removeprefix("--").split("=", 1) for flag in start_flags(node_type))
        assert json.loads(flags.get("resources", "{}")) == {
            k: v for k, v in node_type.resources.items() if k not in ("CPU", "GPU", "memory")
        }
        labels = parse_node_labels_string(flags.get("labels", ""))
        validate_node_label_syntax(labels)
        assert labels == dict(node_type.labels)


def _mutated(cluster: dict[str, Any], path: tuple[str, ...], value: Any) -> dict[str, Any]:
    changed = copy.deepcopy(cluster)
    target = changed
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    return changed


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        (("available_node_types", "region-us-west-2", "labels"), {REGION_LABEL: "us-west-1"}, "label says us-west-1"),
        (("available_node_types", "region-us-west-2", "labels"), {}, "no label gridshift/region"),
        (("available_node_types", "region-us-west-2", "resources"), {}, "no resource gridshift-region-us-west-2"),
        (("available_node_types", "head", "resources"), {"gridshift-region-us-east-1": 1}, "the head declares"),
        (("head_node_type",), "nope", "head_node_type"),
        (
            ("available_node_types", "region-us-west-2", "resources"),
            {"gridshift-region-eu-west-1": 1},
            "'eu-west-1' is not in the fleet",
        ),
    ],
)
def test_the_check_names_what_is_wrong(cluster: dict[str, Any], path: tuple[str, ...], value: Any, message: str):
    with pytest.raises(ConfigError, match=re.escape(message)):
        check_cluster_config(_mutated(cluster, path, value), FLEET)


def test_a_fleet_region_without_nodes_is_reported(cluster: dict[str, Any]) -> None:
    del cluster["available_node_types"]["region-us-east-2"]
    with pytest.raises(ConfigError, match="region 'us-east-2': no worker node type declares it"):
        check_cluster_config(cluster, FLEET)
    # ...unless the fleet serves it from another cluster.
    data = FLEET.model_dump(mode="json")
    data["regions"][1]["endpoint_url"] = "http://us-east-2.example:8000"
    check_cluster_config(cluster, type(FLEET).model_validate(data))


def test_shipped_rayservices_serve_one_region_consistently_with_serve_config() -> None:
    assert RAYSERVICES, "deploy/kuberay ships at least one RayService"
    serve_config = load_yaml_file(SERVE_CONFIG)
    for path in RAYSERVICES:
        manifest = load_yaml_file(path)
        region = check_rayservice(manifest, serve_config, source=str(path))
        assert path.name == f"rayservice-{region}.yaml"
        assert manifest["spec"]["rayClusterConfig"]["rayVersion"] == ray.__version__


def test_a_rayservice_with_another_regions_workers_is_refused() -> None:
    manifest = load_yaml_file(RAYSERVICES[0])
    group = manifest["spec"]["rayClusterConfig"]["workerGroupSpecs"][0]
    group["labels"] = {REGION_LABEL: "us-east-1"}
    group["rayStartParams"]["resources"] = '"{\\"gridshift-region-us-east-1\\": 1}"'
    with pytest.raises(ConfigError, match="declares \\['us-east-1'\\], the service serves 'us-west-2'"):
        check_rayservice(manifest, load_yaml_file(SERVE_CONFIG), source="edited")


def test_the_entry_points_named_in_the_files_exist() -> None:
    module, _, attribute = REGION_APP_IMPORT_PATH.partition(":")
    assert getattr(importlib.import_module(module), attribute) is region_app_builder
    serve_import = load_yaml_file(SERVE_CONFIG)["applications"][0]["import_path"]
    module, _, attribute = serve_import.partition(":")
    assert callable(getattr(importlib.import_module(module), attribute))


def test_the_image_pins_the_same_ray_and_torch_as_the_project() -> None:
    dockerfile = (REPO_ROOT / "deploy" / "docker" / "Dockerfile").read_text()
    pyproject = (REPO_ROOT / "pyproject.toml").read_text()
    constraints = (REPO_ROOT / "constraints.txt").read_text()
    assert f"FROM rayproject/ray:{ray.__version__}-py311-cpu" in dockerfile
    # The exact torch pin lives in the constraints the install script and the image use, not in the package's
    # metadata (which would block GPU builds for users).
    assert "torch==2.13.0" in constraints.splitlines()
    assert "torch==" not in pyproject
    assert dockerfile.index("-c /home/ray/constraints.txt torch") < dockerfile.index('"/home/ray/gridshift[model]"')


def test_the_image_leaves_environments_history_and_results_out() -> None:
    ignored = set((REPO_ROOT / ".dockerignore").read_text().split())
    assert {".venv", ".git", "results"} <= ignored


def test_region_fleet_serves_one_region_in_place() -> None:
    data = FLEET.model_dump(mode="json")
    data["regions"][3]["endpoint_url"] = "http://127.0.0.1:23901"  # remote for the main cluster
    main_fleet = type(FLEET).model_validate(data)
    only = region_fleet(main_fleet, "us-west-2")
    assert only.region_names == ("us-west-2",)
    assert only.default_origin == "us-west-2"
    assert only.region("us-west-2").endpoint_url is None  # served here, by its own cluster
    assert only.signal_source == FLEET.signal_source
    with pytest.raises(ConfigError, match="'eu-west-1' is not in fleet"):
        region_fleet(FLEET, "eu-west-1")
    with pytest.raises(ConfigError, match=r"args\.region"):
        region_app_builder({"fleet": None})


def test_cli_check_and_start_args(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert main(["cluster", "check", "--cluster-config", str(CLUSTER_YAML), "--serve-config", str(SERVE_CONFIG),
                 "--rayservice", *map(str, RAYSERVICES)]) == 0  # fmt: skip
    assert "matches fleet 'default'" in capsys.readouterr().out
    assert main(["cluster", "start-args", "--cluster-config", str(CLUSTER_YAML), "region-us-west-2"]) == 0
    assert capsys.readouterr().out.split() == [
        """'--resources={"gridshift-region-us-west-2":1}'""",
        "'--labels=gridshift/region=us-west-2'",
    ]
    broken = tmp_path / "cluster.yaml"
    broken.write_text(yaml.safe_dump({"available_node_types": {"head": {"resources": {}}}, "head_node_type": "head"}))
    assert main(["cluster", "check", "--cluster-config", str(broken)]) == 2
    assert "region 'us-west-2': no worker node type declares it" in capsys.readouterr().err
    assert main(["cluster", "start-args", "--cluster-config", str(CLUSTER_YAML), "nope"]) == 2
    assert "no node type 'nope'" in capsys.readouterr().err
