"""The tenants database on a real PostgreSQL server this test starts (initdb + pg_ctl on a free local port, as an
unprivileged user when run as root) and stops by its process id: migrations, keys, idempotent usage."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tenants.keys import parse_key
from tenants.store import TenantStore, UsageRecord, usage_totals

pytestmark = [pytest.mark.integration, pytest.mark.slow]

BIN = Path("/usr/lib/postgresql/15/bin")


def _binary(name: str) -> str | None:
    return shutil.which(name) or (str(BIN / name) if (BIN / name).exists() else None)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture(scope="module")
def postgres_url() -> Iterator[str]:
    initdb, postgres = _binary("initdb"), _binary("postgres")
    if initdb is None or postgres is None:
        pytest.skip("PostgreSQL server binaries (initdb, postgres) are not installed")
    # Not pytest's tmp_path: its parents are private to root, and the server may run as another user.
    folder = Path(tempfile.mkdtemp(prefix="gridshift-pg-"))
    data = folder / "data"
    as_user: list[str] = []
    if os.geteuid() == 0:  # initdb refuses root: run the server as nobody, in a folder nobody owns
        if shutil.which("runuser") is None:
            pytest.skip("running as root without runuser: cannot start PostgreSQL as an unprivileged user")
        as_user = ["runuser", "-u", "nobody", "--"]
        folder.chmod(0o777)
    port = _free_port()
    subprocess.run(
        [*as_user, initdb, "-D", str(data), "-U", "gridshift", "--auth=trust"], check=True, capture_output=True
    )
    server = subprocess.Popen(
        [*as_user, postgres, "-D", str(data), "-p", str(port), "-h", "127.0.0.1", "-k", str(data)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"postgresql+psycopg://gridshift@127.0.0.1:{port}/postgres"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                TenantStore.open(url).close()
                break
            except Exception:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise
                time.sleep(0.3)
        yield url
    finally:
        _stop(server, data)
        shutil.rmtree(folder, ignore_errors=True)


def _stop(server: subprocess.Popen[bytes], data: Path) -> None:
    """Fast shutdown (SIGINT) of the server by its process id. As root the process started is runuser, which does
    not pass SIGINT on (the server then ran until the 30 s timeout): the server's own id is in its postmaster.pid."""
    pid_file = data / "postmaster.pid"
    postmaster = int(pid_file.read_text().split()[0]) if pid_file.exists() else server.pid
    with contextlib.suppress(ProcessLookupError):  # it already ended
        os.kill(postmaster, signal.SIGINT)
    try:
        server.wait(timeout=30)
    except subprocess.TimeoutExpired:
        server.kill()
        server.wait()
        with contextlib.suppress(ProcessLookupError):
            os.kill(postmaster, signal.SIGKILL)


def test_tenants_keys_and_usage_on_postgres(postgres_url: str) -> None:
    store = TenantStore.open(postgres_url)
    try:
        tenant, key = store.create_tenant("acme", 1, 3, requests_per_s=5.0)
        parsed = parse_key(key)
        assert parsed is not None
        record = store.key(parsed[0])
        assert record is not None
        assert record.tenant == tenant
        assert not record.revoked
        row = UsageRecord(
            "req-1", tenant.tenant_id, 10.0, 0, "inference", "a", "a", 1, 4, 0.1, 2.0, 0.01, 0.0, False, False
        )
        store.record_usage([row])
        store.record_usage([row])  # idempotent on the request id, as on SQLite
        assert usage_totals(store.usage())[tenant.tenant_id]["requests"] == 1
        _, new = store.rotate("acme")
        old = store.key(parsed[0])
        assert old is not None
        assert old.revoked
        assert new != key
    finally:
        store.close()
    TenantStore.open(postgres_url).close()  # reopening applies no migration twice
