"""`gridshift up`, the main job, as a user runs it: it serves, prints its summary, and SIGTERM stops it cleanly.

A separate process with its own local Ray cluster (the session's cluster belongs to this process).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import openai
import pytest

from tests.conftest import REPO_ROOT
from tests.integration.polling import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.slow]

PORT = int(os.environ.get("GRIDSHIFT_TEST_UP_PORT", "18091"))


def test_gridshift_up_serves_and_stops_cleanly_on_sigterm(tmp_path: Path) -> None:
    log = tmp_path / "up.log"
    with log.open("w") as sink:
        process = subprocess.Popen(
            [sys.executable, "-m", "serve_apps.cli", "up", "--port", str(PORT)],
            cwd=REPO_ROOT,
            stdout=sink,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
    try:

        def ready() -> bool:
            try:
                return httpx.get(f"http://127.0.0.1:{PORT}/readyz", timeout=2).status_code == 200
            except httpx.HTTPError:
                return False

        wait_for(lambda: ready() or process.poll() is not None, 240.0, "gridshift up ready")
        assert process.poll() is None, log.read_text()
        # The moment readiness turns green, a first request from the openai client succeeds, once, no retry.
        client = openai.OpenAI(base_url=f"http://127.0.0.1:{PORT}/v1", api_key="unused", max_retries=0, timeout=30)
        first = client.embeddings.create(input=["the first request after ready"], model="all-MiniLM-L6-v2")
        assert len(first.data[0].embedding) == 384
        assert [m.id for m in client.models.list()] == ["all-MiniLM-L6-v2"]
        regions = httpx.get(f"http://127.0.0.1:{PORT}/v1/regions", timeout=10).json()
        assert {r["region"] for r in regions["regions"]} == {"us-east-1", "us-east-2", "us-west-1", "us-west-2"}
        wait_for(lambda: "tolerant from us-west-1" in log.read_text(), 60.0, "a routing summary printed")
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=120)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=30)
    output = log.read_text()
    assert process.returncode == 0, output
    assert "gridshift: serving at" in output
    assert "admin token" in output
    assert "tolerant from us-west-1" in output  # the routing summary
    assert "gridshift: shutting down" in output
