"""The tenants database: tenants, their keys and their usage, through SQLAlchemy Core (SQLite or PostgreSQL).

Blocking calls: the gateway runs them in a worker thread (serve_apps/tenant_auth.py, tenants/usage.py).
"""

from __future__ import annotations

import os
import secrets
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from fleet.errors import GridshiftError
from fleet.tenants import MAX_TIER, TenantsConfig
from tenants.keys import new_key
from tenants.schema import api_keys, migrate, tenants, usage

HOME_ENV = "GRIDSHIFT_HOME"
DEFAULT_DB_FILE = "tenants.db"


class TenantsDatabaseError(GridshiftError):
    """The tenants database cannot be reached or refused a statement."""


class UnknownTenantError(GridshiftError):
    """No tenant by that name or id."""


@dataclass(frozen=True)
class Tenant:
    tenant_id: str
    name: str
    default_tier: int
    max_tier: int
    requests_per_s: float | None
    items_per_s: float | None
    created_at_s: float
    revoked_at_s: float | None

    @property
    def active(self) -> bool:
        return self.revoked_at_s is None


@dataclass(frozen=True)
class KeyRecord:
    """A key's row as the auth check needs it: the hash to compare and the tenant it opens."""

    key_id: str
    salt: bytes
    secret_hash: bytes
    tenant: Tenant
    revoked: bool  # the key or its tenant


@dataclass(frozen=True)
class UsageRecord:
    request_id: str
    tenant_id: str
    at_s: float
    grid_hour_s: int
    kind: str
    region: str
    origin: str
    tier: int
    items: int
    kwh: float
    gco2: float
    usd: float
    earned_usd: float
    moved: bool
    degraded: bool
    deferred: bool = False  # inference: held in the deferral queue; jobs: paused by the grid
    job_hours: float = 0.0  # jobs: full-size-equivalent hours run (inference: 0)


def database_url(config: TenantsConfig) -> str:
    """The configured URL, else SQLite at $GRIDSHIFT_HOME/tenants.db (default ~/.gridshift), read when called."""
    if config.database_url:
        return config.database_url
    home = Path(os.environ.get(HOME_ENV) or Path.home() / ".gridshift")
    return f"sqlite:///{home / DEFAULT_DB_FILE}"


def redacted(url: str) -> str:
    """The URL with any password hidden, for messages."""
    return sa.make_url(url).render_as_string(hide_password=True)


def _engine(url: str) -> sa.Engine:
    parsed = sa.make_url(url)
    if parsed.get_backend_name() == "sqlite":
        connect_args = {"check_same_thread": False, "timeout": 30}
        if not parsed.database or parsed.database == ":memory:":
            # One shared connection: each new connection to :memory: would be a new, empty database.
            return sa.create_engine(parsed, connect_args=connect_args, poolclass=sa.pool.StaticPool)
        Path(parsed.database).expanduser().parent.mkdir(parents=True, exist_ok=True)
        engine = sa.create_engine(parsed, connect_args=connect_args)

        @sa.event.listens_for(engine, "connect")
        def _pragmas(connection: Any, _record: Any) -> None:
            # WAL: several gateway replicas (processes) write usage while readers keep reading.
            cursor = connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.close()

        return engine
    return sa.create_engine(parsed, pool_pre_ping=True)


def _tenant(row: Any) -> Tenant:
    return Tenant(
        row.tenant_id,
        row.name,
        row.default_tier,
        row.max_tier,
        row.requests_per_s,
        row.items_per_s,
        row.created_at_s,
        row.revoked_at_s,
    )


def _tiers(default_tier: int, max_tier: int) -> None:
    if not 0 <= default_tier <= max_tier <= MAX_TIER:
        raise GridshiftError(f"tiers: need 0 <= default_tier <= max_tier <= {MAX_TIER}, got {default_tier}, {max_tier}")


class TenantStore:
    """Tenants, keys and usage in one database. `open` migrates it to the latest schema first."""

    def __init__(self, engine: sa.Engine, time_s: Callable[[], float] = time.time) -> None:
        self.engine = engine
        self._time_s = time_s

    @classmethod
    def open(cls, url: str, time_s: Callable[[], float] = time.time) -> TenantStore:
        try:
            engine = _engine(url)
            migrate(engine, time_s())
        except (sa.exc.SQLAlchemyError, OSError) as error:  # no server, no such file or folder, refused
            raise TenantsDatabaseError(
                f"tenants database {redacted(url)} is unreachable: {getattr(error, 'orig', None) or error}"
            ) from None
        return cls(engine, time_s)

    def close(self) -> None:
        self.engine.dispose()

    # Tenants and keys -------------------------------------------------------------------------------------------

    def create_tenant(
        self,
        name: str,
        default_tier: int,
        max_tier: int,
        requests_per_s: float | None = None,
        items_per_s: float | None = None,
    ) -> tuple[Tenant, str]:
        """A new tenant and its first key, returned in plain text this once."""
        _tiers(default_tier, max_tier)
        if not name.strip():
            raise GridshiftError("name: must not be empty")
        for what, rate in (("requests_per_s", requests_per_s), ("items_per_s", items_per_s)):
            if rate is not None and not rate > 0:
                raise GridshiftError(f"{what}: must be positive, got {rate}")
        tenant = Tenant(
            tenant_id="t_" + secrets.token_hex(6),
            name=name.strip(),
            default_tier=default_tier,
            max_tier=max_tier,
            requests_per_s=requests_per_s,
            items_per_s=items_per_s,
            created_at_s=self._time_s(),
            revoked_at_s=None,
        )
        key = new_key()
        with self.engine.begin() as connection:
            if connection.execute(sa.select(tenants.c.tenant_id).where(tenants.c.name == tenant.name)).first():
                raise GridshiftError(f"name: a tenant {tenant.name!r} already exists")
            connection.execute(sa.insert(tenants).values(**asdict(tenant)))
            self._insert_key(connection, tenant.tenant_id, key.key_id, key.salt, key.secret_hash)
        return tenant, key.plain

    def _insert_key(self, connection: sa.Connection, tenant_id: str, key_id: str, salt: bytes, digest: bytes) -> None:
        connection.execute(
            sa.insert(api_keys).values(
                key_id=key_id, tenant_id=tenant_id, salt=salt, secret_hash=digest, created_at_s=self._time_s()
            )
        )

    def tenants(self) -> list[Tenant]:
        with self.engine.connect() as connection:
            rows = connection.execute(sa.select(tenants).order_by(tenants.c.created_at_s, tenants.c.name)).all()
        return [_tenant(row) for row in rows]

    def tenant(self, ref: str) -> Tenant:
        """A tenant by id or name."""
        with self.engine.connect() as connection:
            row = connection.execute(
                sa.select(tenants).where(sa.or_(tenants.c.tenant_id == ref, tenants.c.name == ref))
            ).first()
        if row is None:
            raise UnknownTenantError(f"no tenant {ref!r}")
        return _tenant(row)

    def revoke(self, ref: str) -> Tenant:
        """Revoke the tenant and every key it has; its usage stays."""
        tenant = self.tenant(ref)
        now = self._time_s()
        with self.engine.begin() as connection:
            connection.execute(
                sa.update(tenants)
                .where(tenants.c.tenant_id == tenant.tenant_id, tenants.c.revoked_at_s.is_(None))
                .values(revoked_at_s=now)
            )
            self._revoke_keys(connection, tenant.tenant_id, now)
        return self.tenant(tenant.tenant_id)

    def _revoke_keys(self, connection: sa.Connection, tenant_id: str, now: float) -> None:
        connection.execute(
            sa.update(api_keys)
            .where(api_keys.c.tenant_id == tenant_id, api_keys.c.revoked_at_s.is_(None))
            .values(revoked_at_s=now)
        )

    def rotate(self, ref: str) -> tuple[Tenant, str]:
        """A fresh key for an active tenant; its old keys are revoked in the same transaction."""
        tenant = self.tenant(ref)
        if not tenant.active:
            raise GridshiftError(f"tenant {tenant.name!r} is revoked: create a new one")
        key = new_key()
        with self.engine.begin() as connection:
            self._revoke_keys(connection, tenant.tenant_id, self._time_s())
            self._insert_key(connection, tenant.tenant_id, key.key_id, key.salt, key.secret_hash)
        return tenant, key.plain

    def key(self, key_id: str) -> KeyRecord | None:
        with self.engine.connect() as connection:
            row = connection.execute(
                sa.select(
                    api_keys.c.salt, api_keys.c.secret_hash, api_keys.c.revoked_at_s.label("key_revoked_at_s"), tenants
                )
                .join(tenants, api_keys.c.tenant_id == tenants.c.tenant_id)
                .where(api_keys.c.key_id == key_id)
            ).first()
        if row is None:
            return None
        tenant = _tenant(row)
        revoked = row.key_revoked_at_s is not None or not tenant.active
        return KeyRecord(key_id, row.salt, row.secret_hash, tenant, revoked)

    # Usage ------------------------------------------------------------------------------------------------------

    def record_usage(self, records: Sequence[UsageRecord]) -> None:
        """Insert the records; a request id already recorded is skipped (replays and failovers count once)."""
        if not records:
            return
        dialect = self.engine.dialect.name
        insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
        statement = insert(usage).on_conflict_do_nothing(index_elements=[usage.c.request_id])
        with self.engine.begin() as connection:
            connection.execute(statement, [asdict(record) for record in records])

    def usage(
        self, from_s: float | None = None, to_s: float | None = None, tenant_id: str | None = None
    ) -> list[UsageRecord]:
        """Records with from_s <= at_s < to_s, oldest first."""
        query = sa.select(usage).order_by(usage.c.at_s, usage.c.request_id)
        if from_s is not None:
            query = query.where(usage.c.at_s >= from_s)
        if to_s is not None:
            query = query.where(usage.c.at_s < to_s)
        if tenant_id is not None:
            query = query.where(usage.c.tenant_id == tenant_id)
        with self.engine.connect() as connection:
            rows = connection.execute(query).all()
        return [UsageRecord(**row._asdict()) for row in rows]


def usage_totals(records: Iterable[UsageRecord]) -> dict[str, dict[str, Any]]:
    """Per tenant: requests (calls and jobs), items (embedded items, job rows or steps), job-hours, kWh, gCO2, USD
    charged, USD flexibility earned, and how many were moved, degraded or deferred."""
    totals: dict[str, dict[str, Any]] = {}
    for record in records:
        entry = totals.setdefault(
            record.tenant_id,
            {
                "requests": 0,
                "items": 0,
                "kwh": 0.0,
                "gco2": 0.0,
                "usd": 0.0,
                "earned_usd": 0.0,
                "moved": 0,
                "degraded": 0,
                "deferred": 0,
                "job_hours": 0.0,
            },
        )
        entry["requests"] += 1
        entry["items"] += record.items
        entry["kwh"] += record.kwh
        entry["gco2"] += record.gco2
        entry["usd"] += record.usd
        entry["earned_usd"] += record.earned_usd
        entry["moved"] += int(record.moved)
        entry["degraded"] += int(record.degraded)
        entry["deferred"] += int(record.deferred)
        entry["job_hours"] += record.job_hours
    return totals
