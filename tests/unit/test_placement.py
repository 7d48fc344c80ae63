"""Region placement: the one pinning rule for regional replicas and batch jobs, its verdicts, and its users."""

from __future__ import annotations

import inspect
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

import batch.submit
import rayjobs.submission
from batch.spec import BatchJobSpec
from fleet.loaders import load_fleet
from fleet.serving import ComputeScheduling, RegionPinning, ServingConfig
from rayjobs.priority import SETUP_HOOK
from router.placement import (
    PIN_AMOUNT,
    REGION_LABEL,
    ClusterNode,
    PlacementVerdict,
    nodes_from_ray,
    placement_verdict,
    region_placement,
    region_resource,
)
from serve_apps.app import regional_actor_options, regional_model_kwargs
from serve_apps.cluster import PlacedWork, missing_region_nodes, placement_json, placement_table
from serve_apps.regional import RegionalModel

FLEET = load_fleet()
WEST2 = FLEET.region("us-west-2")
AUTO = RegionPinning.AUTO


def _node(node_id: str, region: str | None = None, *, label: bool = True, resource: bool = True, alive: bool = True):
    resources: dict[str, float] = {"CPU": 4.0}
    labels: dict[str, str] = {"ray.io/node-id": node_id}
    if region and resource:
        resources[region_resource(region)] = 1.0
    if region and label:
        labels[REGION_LABEL] = region
    return ClusterNode(node_id, alive, resources, labels)


def _admits(node: ClusterNode, options: dict[str, Any]) -> bool:
    """Would Ray place work with these options on this node (resources and label selector both met)?"""
    needs = options.get("resources", {})
    selector = options.get("label_selector", {})
    return (
        node.alive
        and all(node.resources.get(name, 0.0) >= amount for name, amount in needs.items())
        and all(node.labels.get(key) == value for key, value in selector.items())
    )


def test_a_cluster_without_region_nodes_places_work_anywhere() -> None:
    assert region_placement(WEST2, AUTO, []) == {}
    assert region_placement(WEST2, AUTO, [_node("head"), _node("other", "us-east-1")]) == {}


def test_region_nodes_pin_by_resource_and_label() -> None:
    nodes = [_node("head"), _node("w2", "us-west-2"), _node("e1", "us-east-1")]
    options = region_placement(WEST2, AUTO, nodes)
    assert options == {
        "resources": {"gridshift-region-us-west-2": pytest.approx(PIN_AMOUNT)},
        "label_selector": {REGION_LABEL: "us-west-2"},
    }
    assert [n.node_id for n in nodes if _admits(n, options)] == ["w2"]


def test_a_half_labelled_region_pins_by_resource_only_so_no_region_node_is_excluded() -> None:
    nodes = [_node("a", "us-west-2"), _node("b", "us-west-2", label=False)]
    options = region_placement(WEST2, AUTO, nodes)
    assert "label_selector" not in options
    assert [n.node_id for n in nodes if _admits(n, options)] == ["a", "b"]


def test_label_only_nodes_pin_by_label() -> None:
    options = region_placement(WEST2, AUTO, [_node("a", "us-west-2", resource=False), _node("head")])
    assert options == {"label_selector": {REGION_LABEL: "us-west-2"}}


def test_dead_nodes_do_not_count() -> None:
    assert region_placement(WEST2, AUTO, [_node("gone", "us-west-2", alive=False)]) == {}


def test_required_pins_before_any_node_exists_and_off_never_pins() -> None:
    assert region_placement(WEST2, RegionPinning.REQUIRED, []) == {
        "resources": {"gridshift-region-us-west-2": pytest.approx(PIN_AMOUNT)},
        "label_selector": {REGION_LABEL: "us-west-2"},
    }
    assert region_placement(WEST2, RegionPinning.OFF, [_node("w2", "us-west-2")]) == {}


def test_a_remote_region_has_no_nodes_here_to_pin_to() -> None:
    remote = WEST2.model_copy(update={"endpoint_url": "http://127.0.0.1:23901"})
    assert region_placement(remote, RegionPinning.REQUIRED, [_node("w2", "us-west-2")]) == {}


REGIONS = ("us-east-1", "us-west-2")
node_strategy = st.builds(
    _node,
    st.uuids().map(lambda u: u.hex[:8]),
    st.sampled_from((None, *REGIONS)),
    label=st.booleans(),
    resource=st.booleans(),
    alive=st.booleans(),
)


@given(st.lists(node_strategy, max_size=6), st.sampled_from(REGIONS))
def test_auto_pinning_admits_exactly_region_nodes_or_anything(nodes: list[ClusterNode], name: str) -> None:
    options = region_placement(FLEET.region(name), AUTO, nodes)
    region_nodes = [n for n in nodes if n.alive and name in n.regions]
    if not region_nodes:
        assert options == {}  # nowhere special to go: anywhere
        return
    admitted = [n for n in nodes if _admits(n, options)]
    assert admitted, "pinned to a region whose nodes it then excludes"
    assert all(name in n.regions for n in admitted)  # never another region's node, never an unlabelled head


def test_nodes_from_ray_reads_resources_and_labels() -> None:
    raw = [
        {
            "NodeID": "ced54e9a",
            "Alive": True,
            "Resources": {"CPU": 1.0, "gridshift-region-us-west-2": 1.0, "node:192.0.2.2": 1.0},
            "Labels": {"ray.io/node-id": "ced54e9a", "gridshift/region": "us-west-2"},
        },
        {"NodeID": "04f1086e", "Alive": False, "Resources": {"CPU": 1.0}, "Labels": {}},
    ]
    live, dead = nodes_from_ray(raw)
    assert live.regions == {"us-west-2"}
    assert live.region_by_label == "us-west-2"
    assert live.regions_by_resource == {"us-west-2"}
    assert not dead.alive
    assert dead.regions == frozenset()


def test_placement_verdicts() -> None:
    w2, e1, head = _node("w2", "us-west-2"), _node("e1", "us-east-1"), _node("head")
    assert placement_verdict("us-west-2", w2, [w2, e1, head]) is PlacementVerdict.ON_REGION
    assert placement_verdict("us-west-2", e1, [w2, e1, head]) is PlacementVerdict.MISPLACED
    assert placement_verdict("us-west-2", head, [w2, e1, head]) is PlacementVerdict.MISPLACED  # w2 was there
    assert placement_verdict("us-west-2", head, [e1, head]) is PlacementVerdict.UNPINNED
    assert placement_verdict("us-west-2", None, [w2]) is PlacementVerdict.PENDING


def test_regional_replicas_reserve_cpu_and_follow_the_rule() -> None:
    serving = ServingConfig()
    assert regional_actor_options(WEST2, serving, []) == {"num_cpus": serving.replica_num_cpus}
    pinned = regional_actor_options(WEST2, serving, [_node("w2", "us-west-2")])
    assert pinned["num_cpus"] == serving.replica_num_cpus
    assert pinned["resources"] == {"gridshift-region-us-west-2": pytest.approx(PIN_AMOUNT)}
    off = serving.model_copy(update={"region_pinning": RegionPinning.OFF})
    assert regional_actor_options(WEST2, off, [_node("w2", "us-west-2")]) == {"num_cpus": serving.replica_num_cpus}


def test_a_regions_deployment_binds_every_model_parameter_it_names_from_the_fleet() -> None:
    kwargs = regional_model_kwargs(FLEET, "us-west-2", ("fp32",))
    bound = inspect.signature(RegionalModel).bind(**kwargs)  # a misspelt or missing parameter raises TypeError
    assert bound.arguments["region"] == "us-west-2"
    assert bound.arguments["torch_threads"] == FLEET.serving.torch_threads
    assert bound.arguments["knob_refresh_s"] == FLEET.policy.knob_refresh_s
    assert bound.arguments["urgent_classes"] == ("realtime", "firm")  # the default fleet's `mode: stay` classes
    assert bound.arguments["warm_precisions"] == ("fp32",)


class _RecordingJobsClient:
    """Stands in for Ray's JobSubmissionClient: records what a submission asks for."""

    def __init__(self) -> None:
        self.submitted: dict[str, Any] = {}

    def submit_job(self, **request: Any) -> str:
        self.submitted = request
        return str(request["submission_id"])


def _batch_spec() -> BatchJobSpec:
    return BatchJobSpec.model_validate(
        {
            "job_id": "job-1",
            "pipeline": "example_pipelines.uppercase:uppercase",
            "input": "in.txt",
            "output": "out",
            "deadline": "2022-09-07T12:00:00Z",
            "region": "us-west-1",
        }
    )


def test_batch_jobs_are_submitted_to_run_on_their_regions_nodes(monkeypatch: pytest.MonkeyPatch) -> None:
    recorder = _RecordingJobsClient()
    monkeypatch.setattr(rayjobs.submission, "jobs_client", lambda _address, _error: recorder)
    spec = _batch_spec()
    nodes = [_node("head"), _node("w1", "us-west-1")]
    assert batch.submit.submit_job(spec, FLEET, nodes=nodes) == "job-1"
    assert recorder.submitted["submission_id"] == "job-1"
    assert recorder.submitted["entrypoint_resources"] == {"gridshift-region-us-west-1": pytest.approx(PIN_AMOUNT)}
    assert recorder.submitted["entrypoint_label_selector"] == {REGION_LABEL: "us-west-1"}
    assert recorder.submitted["metadata"]["gridshift"] == batch.submit.JOB_KIND
    batch.submit.submit_job(spec.model_copy(update={"region": "us-east-1"}), FLEET, nodes=nodes)
    assert recorder.submitted["entrypoint_resources"] is None  # us-east-1 has no node here: anywhere


@pytest.mark.parametrize(("scheduling", "hooked"), [(ComputeScheduling.IDLE, True), (ComputeScheduling.NICE, False)])
def test_jobs_ask_ray_to_run_their_workers_as_background_work_only_under_idle(
    monkeypatch: pytest.MonkeyPatch, scheduling: ComputeScheduling, hooked: bool
) -> None:
    """serving.compute_scheduling idle: the Ray Job's worker_process_setup_hook lowers its workers
    (rayjobs/priority.py; tests/unit/test_compute_priority.py tests the hook itself)."""
    recorder = _RecordingJobsClient()
    monkeypatch.setattr(rayjobs.submission, "jobs_client", lambda _address, _error: recorder)
    fleet = FLEET.model_copy(update={"serving": FLEET.serving.model_copy(update={"compute_scheduling": scheduling})})
    batch.submit.submit_job(_batch_spec(), fleet)
    hook = recorder.submitted["runtime_env"].get("worker_process_setup_hook")
    assert hook == (SETUP_HOOK if hooked else None)


def test_missing_region_nodes_names_in_cluster_regions_without_a_live_node() -> None:
    nodes = [_node("head"), _node("w2", "us-west-2"), _node("e1", "us-east-1", alive=False)]
    assert missing_region_nodes(FLEET, nodes) == ["us-east-1", "us-east-2", "us-west-1"]
    data = FLEET.model_dump(mode="json")
    for region in data["regions"]:
        region["endpoint_url"] = None if region["name"] == "us-west-2" else f"http://{region['name']}.example:8000"
    assert missing_region_nodes(type(FLEET).model_validate(data), nodes) == []  # the others are remote


def test_placement_report_renders_each_piece_of_work_with_its_verdict() -> None:
    w2, head = _node("w2aaaaaaaa", "us-west-2"), _node("headbbbbbb")
    work = [
        PlacedWork("replica", "r1", "us-west-2", w2, placement_verdict("us-west-2", w2, [w2, head])),
        PlacedWork("batch_job", "job-1", "us-west-2", head, placement_verdict("us-west-2", head, [w2, head])),
    ]
    body = placement_json(work, [w2, head])
    assert [(w["kind"], w["node_id"], w["verdict"]) for w in body["work"]] == [
        ("replica", "w2aaaaaaaa", "on_region"),
        ("batch_job", "headbbbbbb", "misplaced"),
    ]
    assert body["nodes"][0]["regions"] == ["us-west-2"]
    table = placement_table(work, [w2, head]).splitlines()
    assert table[0] == "2 live node(s): w2aaaaaa ['us-west-2'], headbbbb -"
    assert table[2].split() == ["replica", "us-west-2", "w2aaaaaa", "on_region", "r1"]
