"""Real multi-process Ray clusters on this host for integration tests: `ray start` heads and workers whose
resources and labels come from cluster.yaml's node types, on ports of one block, in a temp dir of their own.

Every `ray start --block` runs in a new process group; stopping a cluster kills that group and every process
descended from it, by id (Ray's workers are the raylet's children but lead groups of their own), so nothing
another engineer or test started on this host is touched. Never `ray stop`: it would stop everyone's Ray.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from tests.integration.polling import wait_for

BIN = Path(sys.executable).parent
PORTS_PER_NODE = 50
OBJECT_STORE_BYTES = 100 * 1024 * 1024


def clean_env(ray_token: str) -> dict[str, str]:
    """This process's environment without any Ray setting it may have picked up (the session fixture's
    ray.init sets some), plus token auth with this cluster's own token and one torch thread per process."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
    env.update(
        RAY_AUTH_MODE="token",
        RAY_AUTH_TOKEN=ray_token,
        RAY_USAGE_STATS_ENABLED="0",
        OMP_NUM_THREADS="1",
        MKL_NUM_THREADS="1",
    )
    return env


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:  # exited meanwhile
            continue
        # The command name may hold spaces and parentheses: the parent pid is the 2nd field after the last ')'.
        if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
            found.append(int(entry.name))
    return found


def descendants(pid: int) -> set[int]:
    """Every process descended from `pid` (children, their children, ...)."""
    seen: set[int] = set()
    frontier = [pid]
    while frontier:
        for child in _children(frontier.pop()):
            if child not in seen:
                seen.add(child)
                frontier.append(child)
    return seen


def _listening(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
    except OSError:
        return False
    return True


def wait_for_port(port: int, timeout_s: float) -> None:
    wait_for(lambda: _listening(port), timeout_s, f"something listening on 127.0.0.1:{port}", poll_s=0.2)


@dataclass
class LocalRayCluster:
    """One Ray cluster of `ray start` processes on this host. Node i owns ports base + 50 i .. base + 50 i + 49:
    GCS +0, node manager +1, object manager +2, client server +3, agents +4..+7, dashboard +8, head metrics +10 and
    +11, workers +12..+49. (Serve replicas also bind an inter-deployment gRPC port the OS picks: Serve has no
    setting for it.)"""

    name: str
    base_port: int
    token: str = field(default_factory=lambda: secrets.token_hex(32))
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)
    temp_dir: Path = field(init=False)

    def __post_init__(self) -> None:
        # Short: Ray's unix socket paths under it must stay below 107 characters.
        self.temp_dir = Path(tempfile.mkdtemp(prefix="gridshift-h7-", dir="/tmp"))

    @property
    def gcs_port(self) -> int:
        return self.base_port

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.gcs_port}"

    @property
    def env(self) -> dict[str, str]:
        return clean_env(self.token)

    def _node_ports(self, index: int) -> list[str]:
        base = self.base_port + PORTS_PER_NODE * index
        return [
            f"--node-manager-port={base + 1}",
            f"--object-manager-port={base + 2}",
            f"--dashboard-agent-listen-port={base + 4}",
            f"--dashboard-agent-grpc-port={base + 5}",
            f"--metrics-export-port={base + 6}",
            f"--runtime-env-agent-port={base + 7}",
            f"--min-worker-port={base + 12}",
            f"--max-worker-port={base + PORTS_PER_NODE - 1}",
        ]

    def _start(self, args: list[str], log_name: str, extra_env: dict[str, str] | None = None) -> None:
        log = (self.temp_dir / f"{log_name}.log").open("wb")
        process = subprocess.Popen(
            [str(BIN / "ray"), "start", "--block", "--disable-usage-stats", *args],
            env={**self.env, **(extra_env or {})},
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        self.processes.append(process)

    def assert_running(self, settle_s: float) -> None:
        """Fail with the logs if a node's `ray start` exited (a bad flag, a port taken) within `settle_s`."""
        time.sleep(settle_s)
        exited = [p.args for p in self.processes if p.poll() is not None]
        if exited:
            raise RuntimeError(f"{self.name}: ray start exited: {exited}\n{self.logs_tail()}")

    def start_head(self, declarations: list[str], num_cpus: int) -> None:
        """The head node: GCS on base_port, the dashboard (and the Ray Jobs API batch jobs are submitted through) on
        loopback, its flags as a node type of cluster.yaml declares."""
        base = self.base_port
        self._start(
            [
                "--head",
                f"--port={self.gcs_port}",
                f"--ray-client-server-port={base + 3}",
                f"--dashboard-port={base + 8}",
                "--include-dashboard=true",
                "--dashboard-host=127.0.0.1",
                f"--temp-dir={self.temp_dir / 'ray'}",
                f"--num-cpus={num_cpus}",
                f"--object-store-memory={OBJECT_STORE_BYTES}",
                *self._node_ports(0),
                *declarations,
            ],
            "head",
            # The head's autoscaler monitor and dashboard export metrics on fixed default ports otherwise.
            extra_env={"AUTOSCALER_METRIC_PORT": str(base + 10), "DASHBOARD_METRIC_PORT": str(base + 11)},
        )
        wait_for_port(self.gcs_port, timeout_s=60)

    def add_worker(self, declarations: list[str], num_cpus: int, log_name: str) -> None:
        """A worker node joining the head, declaring what a node type of cluster.yaml declares. Returns once its
        raylet listens: nodes on one host share the session's socket folder, and raylets started together race
        for the same socket names."""
        node_manager_port = self.base_port + PORTS_PER_NODE * len(self.processes) + 1
        self._start(
            [
                f"--address={self.address}",
                f"--num-cpus={num_cpus}",
                f"--object-store-memory={OBJECT_STORE_BYTES}",
                "--include-log-monitor=false",  # one per host is enough: the head's
                *self._node_ports(len(self.processes)),
                *declarations,
            ],
            log_name,
        )
        wait_for_port(node_manager_port, timeout_s=60)

    def logs_tail(self, lines: int = 40) -> str:
        """The last lines of every node's `ray start` log (for assertion messages)."""
        out = []
        for log in sorted(self.temp_dir.glob("*.log")):
            out.append(f"--- {log.name}")
            out.extend(log.read_text(errors="replace").splitlines()[-lines:])
        return "\n".join(out)

    def own_pids(self) -> set[int]:
        """Live processes of this cluster: what its `ray start` processes started (descendants), and any that
        outlived their parent, found by this cluster's own Ray token in their environment. Zombies excluded."""
        pids: set[int] = set()
        for process in self.processes:
            pids |= {process.pid} | descendants(process.pid)
        marker = f"RAY_AUTH_TOKEN={self.token}".encode()
        for entry in Path("/proc").iterdir():
            try:
                if entry.name.isdigit() and marker in (entry / "environ").read_bytes().split(b"\0"):
                    pids.add(int(entry.name))
            except OSError:  # exited meanwhile, or not ours to read
                continue
        alive = set()
        for pid in pids:
            try:
                state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
            except OSError:
                continue
            if state != "Z":
                alive.add(pid)
        return alive

    def stop(self) -> None:
        """Kill every process of this cluster (its process groups, then each remaining process by id), wait for
        them to go, and remove its temp dir."""
        for process in self.processes:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
        deadline = time.monotonic() + 30
        while (left := self.own_pids()) and time.monotonic() < deadline:
            for pid in left:  # Ray's workers lead process groups of their own
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            time.sleep(0.2)
        for process in self.processes:
            process.wait(timeout=30)
        self.processes.clear()
        shutil.rmtree(self.temp_dir, ignore_errors=True)


def gridshift(cluster: LocalRayCluster, *args: str, timeout_s: float, extra_env: dict[str, str] | None = None):
    """Run a `gridshift` verb as a separate driver process of `cluster` (this process may be connected to another
    Ray cluster: one process, one cluster)."""
    return subprocess.run(
        [str(BIN / "gridshift"), *args],
        env={**cluster.env, **(extra_env or {})},
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=False,
    )
