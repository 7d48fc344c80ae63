"""CPU seconds per role of a one-machine Ray Serve fleet, read from /proc: where a load level's cores went.

On a machine that hosts the load generator, Serve's HTTP proxy, the gateway and the model replicas together, the
work a rejected request still costs (HTTP, the proxy, the gateway's admission) comes out of the model's share.
Measuring it per role says how much of a goodput shortfall is that, rather than guessing.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

ROLES = ("model", "gateway", "proxy", "load generator", "other ray")
CLOCK_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def role_of(cmdline: str, pid: int, own_pid: int) -> str | None:
    """The role of a process from its command line (Ray names its workers `ray::<actor>`), None if not the fleet's."""
    if pid == own_pid:
        return "load generator"  # the benchmark's own process sends the requests (and is Ray's driver)
    if "ServeReplica:" in cmdline:
        return "gateway" if ":Gateway" in cmdline else "model" if ":region-" in cmdline else "other ray"
    if "ProxyActor" in cmdline:
        return "proxy"
    if cmdline.startswith("ray::") or "/ray/" in cmdline or "raylet" in cmdline or "gcs_server" in cmdline:
        return "other ray"
    return None


def cpu_by_role(own_pid: int | None = None, proc: Path = Path("/proc")) -> dict[str, float]:
    """CPU seconds (user + system) each role's processes have used so far. Processes that end between two readings
    drop out of the difference; the fleet's do not end during a level."""
    totals = dict.fromkeys(ROLES, 0.0)
    for pid, role in fleet_processes(own_pid, proc).items():
        try:
            stat = (proc / str(pid) / "stat").read_text()
        except OSError:  # the process ended while we read
            continue
        fields = stat.rsplit(")", 1)[1].split()  # after the command name, which may hold spaces
        totals[role] += (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # utime, stime
    return totals


def used(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    """CPU seconds each role used between two readings of cpu_by_role."""
    return {role: max(after.get(role, 0.0) - before.get(role, 0.0), 0.0) for role in ROLES}


def share_of(seconds: dict[str, float]) -> dict[str, float]:
    """Each role's share of the CPU seconds given (empty when none were used)."""
    total = sum(seconds.values())
    return {role: value / total for role, value in seconds.items()} if total > 0 else {}


def fleet_processes(own_pid: int | None = None, proc: Path = Path("/proc")) -> dict[int, str]:
    """The fleet's processes now: pid -> role."""
    own = os.getpid() if own_pid is None else own_pid
    found = {}
    for entry in proc.iterdir():
        if entry.name.isdigit():
            try:
                cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
            except OSError:
                continue
            role = role_of(cmdline, int(entry.name), own)
            if role is not None:
                found[int(entry.name)] = role
    return found


def pin_models(model_cores: int, proc: Path = Path("/proc")) -> tuple[set[int], set[int]]:
    """Give the model replicas the last `model_cores` cores and every other fleet process (proxy, gateway, load
    generator, Ray's own) the rest: a one-machine stand-in for a deployment whose ingress has cores of its own.
    Every thread of each process is pinned (Linux keeps affinity per thread). Returns (model cores, other cores)."""
    cores = sorted(os.sched_getaffinity(0))
    if not 0 < model_cores < len(cores):
        raise ValueError(f"model_cores must leave at least one of the {len(cores)} cores, got {model_cores}")
    models, others = set(cores[-model_cores:]), set(cores[:-model_cores])
    for pid, role in fleet_processes(None, proc).items():
        mask = models if role == "model" else others
        try:
            threads = [int(task.name) for task in (proc / str(pid) / "task").iterdir()]
        except OSError:
            continue
        for tid in threads:
            with contextlib.suppress(OSError):  # a thread that ended meanwhile
                os.sched_setaffinity(tid, mask)
    return models, others
