"""The tenants database on SQLite: migrations, keys stored only as salted hashes, key checks, idempotent usage, and
the recorder's buffer while the database is away."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Sequence
from pathlib import Path

import pytest
import sqlalchemy as sa

from tenants.keys import parse_key
from tenants.schema import LATEST_VERSION, schema_migrations
from tenants.store import KeyRecord, TenantsDatabaseError, TenantStore, UsageRecord, usage_totals
from tenants.usage import UsageRecorder
from tenants.verify import KeyVerifier


def _record(request_id: str, tenant_id: str, items: int = 3) -> UsageRecord:
    return UsageRecord(
        request_id,
        tenant_id,
        100.0,
        0,
        "inference",
        "us-east-1",
        "us-east-1",
        1,
        items,
        0.1,
        1.0,
        0.01,
        0.0,
        False,
        False,
    )


def test_migrations_run_once_in_order_and_a_newer_database_is_refused(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'tenants.db'}"
    TenantStore.open(url).close()
    store = TenantStore.open(url)  # a second open applies nothing
    with store.engine.connect() as connection:
        versions = connection.execute(sa.select(schema_migrations.c.version)).scalars().all()
    assert versions == list(range(1, LATEST_VERSION + 1))
    with store.engine.begin() as connection:
        connection.execute(
            sa.insert(schema_migrations).values(version=LATEST_VERSION + 1, name="future", applied_at_s=0)
        )
    store.close()
    with pytest.raises(RuntimeError, match="newer than this gridshift"):
        TenantStore.open(url)


def test_an_unreachable_database_is_a_clear_error_at_open(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(TenantsDatabaseError, match="unreachable"):
        TenantStore.open(f"sqlite:///{blocker / 'sub' / 'tenants.db'}")


def test_keys_are_stored_only_as_salted_hashes(tmp_path: Path) -> None:
    path = tmp_path / "tenants.db"
    store = TenantStore.open(f"sqlite:///{path}")
    _, key = store.create_tenant("acme", 1, 3)
    _, other = store.create_tenant("globex", 0, 0)
    store.close()
    parsed = parse_key(key)
    assert parsed is not None
    secret = parsed[1]
    raw = path.read_bytes() + (
        path.with_name("tenants.db-wal").read_bytes() if path.with_name("tenants.db-wal").exists() else b""
    )
    assert secret.encode() not in raw
    with sqlite3.connect(path) as connection:
        salts = [row[0] for row in connection.execute("select salt from api_keys")]
    assert len(set(salts)) == 2  # a salt per key
    assert key != other


def test_a_key_opens_its_tenant_until_revoked_or_rotated(tmp_path: Path) -> None:
    store = TenantStore.open(f"sqlite:///{tmp_path / 'tenants.db'}")
    tenant, key = store.create_tenant("acme", 1, 2)
    now = [0.0]
    verifier = KeyVerifier(lambda: store, cache_s=2.0, monotonic_s=lambda: now[0])

    def check(presented: str) -> str | None:
        found = asyncio.run(verifier.tenant(presented))
        return None if found is None else found.tenant_id

    assert check(key) == tenant.tenant_id
    for bad in ("", "nonsense", key[:-1] + ("A" if key[-1] != "A" else "B"), "gsk_0000000000000000_" + "x" * 43):
        assert check(bad) is None
    _, new = store.rotate("acme")
    now[0] = 1.0
    assert check(key) == tenant.tenant_id  # within the cache period a replica still trusts its last read
    now[0] = 3.0
    assert check(key) is None
    assert check(new) == tenant.tenant_id
    store.revoke(tenant.tenant_id)
    now[0] = 6.0
    assert check(new) is None
    with pytest.raises(Exception, match="revoked"):
        store.rotate("acme")


def test_a_known_key_keeps_working_while_the_database_is_away(tmp_path: Path) -> None:
    store = TenantStore.open(f"sqlite:///{tmp_path / 'tenants.db'}")
    tenant, key = store.create_tenant("acme", 1, 2)
    now = [0.0]
    up = [True]

    class Flaky:
        def key(self, key_id: str) -> KeyRecord | None:
            if not up[0]:
                raise sa.exc.OperationalError("select", {}, Exception("connection refused"))
            return store.key(key_id)

    verifier = KeyVerifier(Flaky, cache_s=1.0, monotonic_s=lambda: now[0])
    assert asyncio.run(verifier.tenant(key)) is not None
    up[0], now[0] = False, 10.0
    assert asyncio.run(verifier.tenant(key)) == tenant  # served on the last known answer
    _, unseen = store.create_tenant("globex", 0, 0)
    with pytest.raises(TenantsDatabaseError, match="unreachable"):
        asyncio.run(verifier.tenant(unseen))


def test_usage_is_recorded_once_per_request_id(tmp_path: Path) -> None:
    store = TenantStore.open(f"sqlite:///{tmp_path / 'tenants.db'}")
    tenant, _ = store.create_tenant("acme", 1, 3)
    first = _record("r1", tenant.tenant_id)
    store.record_usage([first, _record("r2", tenant.tenant_id, 5)])
    store.record_usage([first])  # a replay (another replica, a retried flush) adds nothing
    totals = usage_totals(store.usage())
    assert totals[tenant.tenant_id]["requests"] == 2
    assert totals[tenant.tenant_id]["items"] == 8
    assert store.usage(from_s=101.0) == []


class FlakySink:
    def __init__(self) -> None:
        self.up = False
        self.rows: dict[str, UsageRecord] = {}

    def record_usage(self, records: Sequence[UsageRecord]) -> None:
        if not self.up:
            raise ConnectionError("database away")
        self.rows.update({r.request_id: r for r in records})


def test_the_recorder_buffers_while_the_database_is_away_and_loses_nothing() -> None:
    sink = FlakySink()
    recorder = UsageRecorder(sink, flush_s=60.0, max_buffered=3)

    async def scenario() -> None:
        for index in range(3):
            recorder.add(_record(f"r{index}", "t"))
        assert not await recorder.flush()
        assert recorder.failing
        assert recorder.buffered == 3
        assert recorder.full  # the gateway stops serving tenants here rather than lose a record
        sink.up = True
        assert await recorder.flush()
        assert recorder.buffered == 0
        assert not recorder.full

    asyncio.run(scenario())
    assert sorted(sink.rows) == ["r0", "r1", "r2"]
