"""CPU seconds per role of a one-machine Ray Serve fleet, read from /proc: where a load level's cores went.

On a machine that hosts the load generator, Serve's HTTP proxy, the gateway and the model replicas together, the
work a rejected request still costs (HTTP, the proxy, the gateway's admission) comes out of the model's share.
Measuring it per role says how much of a goodput shortfall is that, rather than guessing.
"""

from __future__ import annotations

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
    own = os.getpid() if own_pid is None else own_pid
    totals = dict.fromkeys(ROLES, 0.0)
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
            stat = (entry / "stat").read_text()
        except OSError:  # the process ended while we read
            continue
        role = role_of(cmdline, int(entry.name), own)
        if role is None:
            continue
        fields = stat.rsplit(")", 1)[1].split()  # after the command name, which may hold spaces
        totals[role] += (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # utime, stime
    return totals


def shares(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    """Each role's share of the CPU the fleet used between two readings (0 when it used none)."""
    used = {role: max(after.get(role, 0.0) - before.get(role, 0.0), 0.0) for role in ROLES}
    total = sum(used.values())
    return {role: (value / total if total > 0 else 0.0) for role, value in used.items()}
