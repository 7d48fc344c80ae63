"""The overload benchmark's CPU accounting by role, on a fake /proc."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from benchmarks.process_cpu import CLOCK_TICKS, cpu_by_role, pin_models, role_of, share_of, used


def _process(proc: Path, pid: int, cmdline: str, utime: int, stime: int) -> None:
    entry = proc / str(pid)
    entry.mkdir()
    (entry / "cmdline").write_bytes(cmdline.replace(" ", "\0").encode())
    rest = ["S"] + ["0"] * 10 + [str(utime), str(stime)] + ["0"] * 8
    (entry / "stat").write_text(f"{pid} (ray::odd name) " + " ".join(rest))


def test_roles_from_command_lines() -> None:
    assert role_of("ray::ServeReplica:gridshift:Gateway", 5, 1) == "gateway"
    assert role_of("ray::ServeReplica:gridshift:region-us-east-1", 5, 1) == "model"
    assert role_of("ray::ProxyActor", 5, 1) == "proxy"
    assert role_of("ray::ControlActor.sync", 5, 1) == "other ray"
    assert role_of("python -m benchmarks.bench_overload", 1, 1) == "load generator"
    assert role_of("/usr/bin/sshd", 5, 1) is None


def test_cpu_seconds_by_role_and_shares(tmp_path: Path) -> None:
    ticks = CLOCK_TICKS
    _process(tmp_path, 10, "ray::ServeReplica:gridshift:region-a", 3 * ticks, 1 * ticks)
    _process(tmp_path, 11, "ray::ServeReplica:gridshift:region-b", 2 * ticks, 0)
    _process(tmp_path, 12, "ray::ProxyActor", 1 * ticks, 1 * ticks)
    _process(tmp_path, 13, "bash", 50 * ticks, 0)  # not the fleet's
    (tmp_path / "self").mkdir()
    cpu = cpu_by_role(own_pid=99, proc=tmp_path)
    assert cpu["model"] == pytest.approx(6.0)
    assert cpu["proxy"] == pytest.approx(2.0)
    assert cpu["gateway"] == 0.0
    before = dict.fromkeys(cpu, 0.0)
    assert used(before, cpu) == cpu
    split = share_of(used(before, cpu))
    assert split["model"] == pytest.approx(0.75)
    assert sum(split.values()) == pytest.approx(1.0)
    assert share_of(used(cpu, cpu)) == {}


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="pinning needs two cores")
def test_pin_models_gives_model_processes_the_last_core(tmp_path: Path) -> None:
    child = subprocess.Popen(["sleep", "30"])
    try:
        _process(tmp_path, child.pid, "ray::ServeReplica:gridshift:region-a", 0, 0)
        (tmp_path / str(child.pid) / "task" / str(child.pid)).mkdir(parents=True)
        models, others = pin_models(1, proc=tmp_path)
        assert os.sched_getaffinity(child.pid) == models
        assert models == {max(os.sched_getaffinity(0))}
        assert not models & others
        with pytest.raises(ValueError, match="must leave at least one"):
            pin_models(len(os.sched_getaffinity(0)), proc=tmp_path)
    finally:
        child.kill()
        child.wait()
