"""Benchmarks cannot rot: every runnable one has a --smoke size, which scripts/bench_smoke.sh runs in CI."""

from __future__ import annotations

import re

from tests.conftest import REPO_ROOT


def test_every_runnable_benchmark_has_a_smoke_size() -> None:
    runnable = [
        path
        for path in sorted((REPO_ROOT / "benchmarks").glob("*.py"))
        if 'if __name__ == "__main__":' in path.read_text()
    ]
    assert len(runnable) >= 8
    missing = [path.name for path in runnable if not re.search(r'add_argument\(\s*"--smoke"', path.read_text())]
    assert not missing, f"benchmarks without --smoke: {missing}"


def test_the_test_command_runs_the_smoke_sizes() -> None:
    script = (REPO_ROOT / "scripts" / "test.sh").read_text()
    assert "bash scripts/bench_smoke.sh" in script
