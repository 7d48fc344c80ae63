"""Multi-node and multi-cluster gridshift on real Ray processes on this host.

(a) A multi-node cluster: `ray start --head` plus one worker per region, each declaring the resources and labels of
    its node type in cluster.yaml (read from the file, not restated here); the fleet is deployed by a separate
    driver process, and every regional replica, and a region's batch job, must run on a node of its region.
(b) Multi-cluster: a second, separate Ray cluster serves us-west-2 alone; the first cluster's gateway names it
    remote (endpoint_url), routes there, fails over with no failed tolerant request when it is killed, and routes
    there again once it is back.

Ports: 23000-23999 only (Ray GCS, node manager, object manager, agents, workers; Serve HTTP 23900/23901);
processes are stopped by id (local_cluster.py), never with `ray stop`.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from fleet.config import FleetConfig
from fleet.loaders import parse_fleet
from router.placement import REGION_LABEL, region_resource
from router.routing import RouteReason
from serve_apps.client import GridshiftClient, GridshiftClientError
from serve_apps.cluster_config import NodeType, load_yaml_file, node_types, start_flags
from tests.conftest import REPO_ROOT
from tests.integration.conftest import ADMIN_TOKEN, integration_fleet
from tests.integration.local_cluster import LocalRayCluster, gridshift
from tests.integration.polling import wait_for

# Each test deploys (minutes on 2 cores under load): a wider bound than the suite's default 300 s per test.
pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(600)]

MAIN_BASE_PORT = 23000  # head 23000-23049, a worker per region from 23050 on
REMOTE_BASE_PORT = 23300
MAIN_HTTP_PORT = 23900
REMOTE_HTTP_PORT = 23901
REMOTE = "us-west-2"
# Whole CPUs (`ray start` takes no fractions): more than the host's 2 cores in total, which is fine since
# replicas reserve 0.25 each and run one torch thread; what matters here is where they land.
HEAD_CPUS = 1  # the gateway (0.25); the control actor and Serve's own actors take none
WORKER_CPUS = 1  # one regional replica (0.25) and batch work
DEPLOY_TIMEOUT_S = 240.0


def _cluster_types() -> tuple[NodeType, dict[str, NodeType]]:
    """cluster.yaml's head type, and its worker types by the region they declare."""
    cluster = load_yaml_file(REPO_ROOT / "cluster.yaml")
    types = node_types(cluster)
    head = types.pop(cluster["head_node_type"])
    return head, {next(iter(t.as_node.regions)): t for t in types.values()}


def _fleet_file(tmp_path: Path, name: str, fleet: FleetConfig) -> Path:
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(fleet.model_dump(mode="json")))
    return path


def _main_fleet(remote_url: str | None = None) -> FleetConfig:
    """The integration fleet (heat-wave peak held still, fast refresh and probes) on this test's port; with
    `remote_url`, us-west-2 is served by another cluster there."""
    data = integration_fleet().model_dump(mode="json")
    data["gateway"]["port"] = MAIN_HTTP_PORT
    for region in data["regions"]:
        if region["name"] == REMOTE:
            region["endpoint_url"] = remote_url
    return parse_fleet(data, source="cluster test fleet")


def _deploy(cluster: LocalRayCluster, fleet_file: Path, *args: str) -> dict[str, Any]:
    """`gridshift cluster deploy` from a driver process of `cluster`; the placement report it prints."""
    done = gridshift(
        cluster, "cluster", "deploy", "--address", cluster.address, "--fleet", str(fleet_file),
        "--proxy-location", "HeadOnly", "--timeout-s", f"{DEPLOY_TIMEOUT_S:g}", "--json", *args,
        timeout_s=DEPLOY_TIMEOUT_S + 60, extra_env={"GRIDSHIFT_ADMIN_TOKEN": ADMIN_TOKEN},
    )  # fmt: skip
    assert done.returncode == 0, f"{done.stdout}\n{done.stderr}\n{cluster.logs_tail()}"
    report: dict[str, Any] = json.loads(done.stdout)
    return report


def _down(cluster: LocalRayCluster) -> None:
    """`gridshift cluster down`: a clean slate whether or not another test deployed first."""
    done = gridshift(cluster, "cluster", "down", "--address", cluster.address, timeout_s=120)
    assert done.returncode == 0, done.stderr


def _placement(cluster: LocalRayCluster) -> dict[str, Any]:
    done = gridshift(cluster, "cluster", "placement", "--address", cluster.address, "--json", timeout_s=120)
    assert done.returncode in (0, 1), done.stderr
    report: dict[str, Any] = json.loads(done.stdout)
    return report


def _assert_on_its_regions_node(item: dict[str, Any], report: dict[str, Any], workers: dict[str, NodeType]) -> None:
    """The node `item` runs on declares exactly what cluster.yaml's node type of its region declares."""
    node = next(n for n in report["nodes"] if n["node_id"] == item["node_id"])
    declared = workers[item["region"]]
    assert node["resources"].get(region_resource(item["region"])) == declared.resources[region_resource(item["region"])]
    assert node["labels"].get(REGION_LABEL) == declared.labels[REGION_LABEL] == item["region"], (item, node)
    assert item["verdict"] == "on_region", item


@pytest.fixture(scope="module")
def main_cluster() -> Iterator[LocalRayCluster]:
    """Head plus one worker per region of cluster.yaml, each started with that node type's declarations."""
    head, workers = _cluster_types()
    cluster = LocalRayCluster("main", MAIN_BASE_PORT)
    try:
        cluster.start_head(start_flags(head), HEAD_CPUS)
        for region, node_type in sorted(workers.items()):
            cluster.add_worker(start_flags(node_type), WORKER_CPUS, log_name=f"worker-{region}")
        cluster.assert_running(settle_s=3.0)
        yield cluster
    finally:
        cluster.stop()
    assert not cluster.own_pids(), "processes of the test cluster outlived it"


@pytest.fixture
def client() -> Iterator[GridshiftClient]:
    # One attempt per call: these tests count failed requests, which the client's retries would hide.
    with GridshiftClient(f"http://127.0.0.1:{MAIN_HTTP_PORT}", timeout_s=60, attempts=1) as gateway:
        yield gateway


def test_every_regional_replica_and_batch_job_runs_on_its_regions_node(
    main_cluster: LocalRayCluster, tmp_path: Path, client: GridshiftClient
) -> None:
    _, workers = _cluster_types()
    fleet = _main_fleet()
    assert set(workers) == set(fleet.region_names)
    _down(main_cluster)
    report = _deploy(main_cluster, _fleet_file(tmp_path, "fleet", fleet), "--wait-for-region-nodes", "120")
    replicas = [item for item in report["work"] if item["kind"] == "replica"]
    assert sorted(item["region"] for item in replicas) == sorted(fleet.region_names)
    for item in replicas:
        _assert_on_its_regions_node(item, report, workers)
    # The head declares no region, so no region's model runs there.
    head_ids = {n["node_id"] for n in report["nodes"] if n["alive"] and not n["regions"]}
    assert len(head_ids) == 1
    assert not head_ids & {item["node_id"] for item in replicas}

    assert client.embed(["served in Ohio"], origin="us-east-2", workload_class="realtime").routing.region == "us-east-2"

    # A batch job for us-west-1, submitted through the gateway, lands on us-west-1's node.
    corpus = tmp_path / "input.txt"
    corpus.write_text("".join(f"row {i}: wait for a clean hour\n" for i in range(40)))
    job = {
        "job_id": "pinned-job",
        "pipeline": "example_pipelines.uppercase:uppercase",
        "input": str(corpus),
        "output": str(tmp_path / "out"),
        "deadline": "2022-09-08T12:00:00Z",
        "region": "us-west-1",
        "block_rows": 20,
    }
    client.submit_job(job, ADMIN_TOKEN)  # raises unless accepted
    deadline = time.monotonic() + 60
    while True:
        jobs = [item for item in _placement(main_cluster)["work"] if item["kind"] == "batch_job"]
        if (jobs and jobs[0]["node_id"] is not None) or time.monotonic() > deadline:
            break
        time.sleep(1.0)
    assert [item["name"] for item in jobs] == ["pinned-job"]
    _assert_on_its_regions_node(jobs[0], _placement(main_cluster), workers)


class TolerantTraffic:
    """Tolerant requests from us-west-1, one after another, until stopped (bounded): every answer recorded as
    (monotonic s, error or "", region, reason)."""

    def __init__(self, client: GridshiftClient, max_requests: int = 400) -> None:
        self.client = client
        self.max_requests = max_requests
        self.answers: list[tuple[float, str, str, str]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="tolerant-traffic", daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set() and len(self.answers) < self.max_requests:
            try:
                routing = self.client.embed(
                    ["move me where the grid is calm"], origin="us-west-1", workload_class="tolerant"
                ).routing
            except (GridshiftClientError, OSError) as error:
                self.answers.append((time.monotonic(), repr(error), "", ""))
            else:
                self.answers.append((time.monotonic(), "", routing.region, routing.reason))
            time.sleep(0.05)

    def __enter__(self) -> TolerantTraffic:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=60)


def _region_view(client: GridshiftClient, region: str) -> dict[str, Any]:
    view: dict[str, Any] = next(r for r in client.regions()["regions"] if r["region"] == region)
    return view


def _start_remote(tmp_path: Path) -> LocalRayCluster:
    """A separate one-node cluster serving us-west-2 alone; its node declares us-west-2 as in cluster.yaml."""
    _, workers = _cluster_types()
    remote = LocalRayCluster("remote", REMOTE_BASE_PORT)
    try:
        remote.start_head(start_flags(workers[REMOTE]), HEAD_CPUS)
        report = _deploy(remote, _fleet_file(tmp_path, "remote-fleet", _main_fleet()), "--region", REMOTE,
                         "--port", str(REMOTE_HTTP_PORT))  # fmt: skip
    except BaseException:
        remote.stop()
        raise
    [replica] = [item for item in report["work"] if item["kind"] == "replica"]
    assert (replica["region"], replica["verdict"]) == (REMOTE, "on_region")
    return remote


def test_a_remote_region_is_routed_to_failed_over_from_and_recovered(
    main_cluster: LocalRayCluster, tmp_path: Path, client: GridshiftClient
) -> None:
    remote = _start_remote(tmp_path)
    try:
        _down(main_cluster)
        report = _deploy(
            main_cluster, _fleet_file(tmp_path, "main-fleet", _main_fleet(f"http://127.0.0.1:{REMOTE_HTTP_PORT}"))
        )
        assert REMOTE not in {item["region"] for item in report["work"]}  # served by the other cluster

        realtime = client.embed(["stay in Oregon"], origin=REMOTE, workload_class="realtime")
        assert realtime.routing.region == REMOTE
        with TolerantTraffic(client) as before:
            wait_for(lambda: len(before.answers) >= 10, 60, "ten tolerant answers")
        assert [a for a in before.answers if a[1]] == []
        assert {region for _, _, region, _ in before.answers} == {REMOTE}  # the most headroom at the peak
        view = _region_view(client, REMOTE)
        assert view["healthy"]
        assert view["gateway"]["served"] >= 10

        with TolerantTraffic(client) as during:
            wait_for(lambda: len(during.answers) >= 5, 60, "tolerant answers before the kill")
            killed_at = time.monotonic()
            remote.stop()
            wait_for(lambda: not _region_view(client, REMOTE)["healthy"], 30, "remote marked down")
            down_at = time.monotonic()
            wait_for(lambda: sum(t > down_at + 1.0 for t, *_ in during.answers) >= 5, 60, "answers after")
        assert [a for a in during.answers if a[1]] == [], "a tolerant request failed during the failover"
        after = [a for a in during.answers if a[0] > down_at + 1.0]
        assert len(after) >= 5
        assert not [a for a in after if a[2] == REMOTE or a[3].startswith("failover:")]  # routed around it
        rerouted = client.embed(["Oregon is gone"], origin=REMOTE, workload_class="realtime")
        assert rerouted.routing.region != REMOTE
        assert rerouted.routing.reason == RouteReason.REALTIME_NEAREST.value

        remote = _start_remote(tmp_path)
        back_after_s = wait_for(lambda: _region_view(client, REMOTE)["healthy"], 60, "remote healthy again")
        failovers = sum(reason.startswith("failover:") for *_, reason in during.answers)
        with TolerantTraffic(client) as recovered:
            wait_for(lambda: any(region == REMOTE for _, _, region, _ in recovered.answers), 60, "served there")
        assert [a for a in recovered.answers if a[1]] == []
        print(
            f"\n{len(during.answers)} tolerant answers across the kill, {failovers} by failover, none failed; "
            f"remote marked down {down_at - killed_at:.1f} s after the kill began; healthy again "
            f"{back_after_s:.1f} s after its redeploy finished"
        )
    finally:
        remote.stop()
    assert not remote.own_pids()
