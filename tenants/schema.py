"""The tenants database's tables and its numbered migrations, applied in order and recorded in schema_migrations.

SQLAlchemy Core, one schema for SQLite and PostgreSQL. A new migration is one more function appended to
MIGRATIONS; a step never changes once released.
"""

from __future__ import annotations

from collections.abc import Callable

import sqlalchemy as sa

metadata = sa.MetaData()

schema_migrations = sa.Table(
    "schema_migrations",
    metadata,
    sa.Column("version", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("name", sa.String(80), nullable=False),
    sa.Column("applied_at_s", sa.Float, nullable=False),
)

tenants = sa.Table(
    "tenants",
    metadata,
    sa.Column("tenant_id", sa.String(32), primary_key=True),
    sa.Column("name", sa.String(200), nullable=False, unique=True),
    sa.Column("default_tier", sa.Integer, nullable=False),
    sa.Column("max_tier", sa.Integer, nullable=False),
    sa.Column("requests_per_s", sa.Float, nullable=True),  # null: the fleet's default
    sa.Column("items_per_s", sa.Float, nullable=True),
    sa.Column("created_at_s", sa.Float, nullable=False),
    sa.Column("revoked_at_s", sa.Float, nullable=True),
)

api_keys = sa.Table(
    "api_keys",
    metadata,
    sa.Column("key_id", sa.String(32), primary_key=True),  # the public part of the key, used to find its row
    sa.Column("tenant_id", sa.String(32), sa.ForeignKey("tenants.tenant_id"), nullable=False, index=True),
    sa.Column("salt", sa.LargeBinary(32), nullable=False),
    sa.Column("secret_hash", sa.LargeBinary(64), nullable=False),
    sa.Column("created_at_s", sa.Float, nullable=False),
    sa.Column("revoked_at_s", sa.Float, nullable=True),
)

usage = sa.Table(
    "usage",
    metadata,
    sa.Column("request_id", sa.String(80), primary_key=True),  # idempotency: a replay of the same id is one record
    sa.Column("tenant_id", sa.String(32), nullable=False),
    sa.Column("at_s", sa.Float, nullable=False),  # wall clock when served
    sa.Column("grid_hour_s", sa.Integer, nullable=False),  # the control clock's hour whose price applied
    sa.Column("kind", sa.String(16), nullable=False),  # inference | batch | training
    sa.Column("region", sa.String(64), nullable=False),
    sa.Column("origin", sa.String(64), nullable=False),
    sa.Column("tier", sa.Integer, nullable=False),
    sa.Column("items", sa.Integer, nullable=False),
    sa.Column("kwh", sa.Float, nullable=False),
    sa.Column("gco2", sa.Float, nullable=False),
    sa.Column("usd", sa.Float, nullable=False),
    sa.Column("earned_usd", sa.Float, nullable=False),  # tier-0 price at the origin less what was charged
    sa.Column("moved", sa.Boolean, nullable=False),
    sa.Column("degraded", sa.Boolean, nullable=False),  # jobs: shrunk or run at reduced precision
    sa.Column("deferred", sa.Boolean, nullable=False, server_default=sa.false()),  # queued (inference), paused (jobs)
    sa.Column("job_hours", sa.Float, nullable=False, server_default="0"),  # jobs: full-size-equivalent hours run
    sa.Index("usage_tenant_at", "tenant_id", "at_s"),
)


def _m001_tenants_and_keys(connection: sa.Connection) -> None:
    for table in (tenants, api_keys):
        table.create(connection)


_M002_USAGE_COLUMNS = (
    "request_id",
    "tenant_id",
    "at_s",
    "grid_hour_s",
    "kind",
    "region",
    "origin",
    "tier",
    "items",
    "kwh",
    "gco2",
    "usd",
    "earned_usd",
    "moved",
    "degraded",
)


def _m002_usage(connection: sa.Connection) -> None:
    # The table as it was released in step 2; step 3 adds the columns after it (steps never change once released).
    columns = [column._copy() for column in usage.columns if column.name in _M002_USAGE_COLUMNS]
    sa.Table(usage.name, sa.MetaData(), *columns, sa.Index("usage_tenant_at", "tenant_id", "at_s")).create(connection)


def _add_column(connection: sa.Connection, table: sa.Table, column: sa.Column[object]) -> None:
    """ALTER TABLE ... ADD COLUMN, spelled by the database's own dialect (SQLite and PostgreSQL alike)."""
    spec = sa.schema.CreateColumn(column).compile(dialect=connection.dialect)
    connection.execute(sa.text(f"ALTER TABLE {table.name} ADD COLUMN {spec}"))


def _m003_job_usage(connection: sa.Connection) -> None:
    for name in ("deferred", "job_hours"):
        _add_column(connection, usage, usage.c[name])


MIGRATIONS: tuple[tuple[str, Callable[[sa.Connection], None]], ...] = (
    ("tenants and api keys", _m001_tenants_and_keys),
    ("usage", _m002_usage),
    ("usage of jobs and deferrals", _m003_job_usage),
)
"""Schema steps in order; step i is version i + 1."""

LATEST_VERSION = len(MIGRATIONS)


def schema_version(connection: sa.Connection) -> int:
    """The version the database is at (0: empty)."""
    if not sa.inspect(connection).has_table(schema_migrations.name):
        return 0
    return int(
        connection.execute(sa.select(sa.func.coalesce(sa.func.max(schema_migrations.c.version), 0))).scalar_one()
    )


def migrate(engine: sa.Engine, now_s: float) -> list[int]:
    """Apply every pending step, each in its own transaction with its record; returns the versions applied.
    A database newer than this code is refused rather than written with an older schema."""
    applied: list[int] = []
    with engine.begin() as connection:
        schema_migrations.create(connection, checkfirst=True)
    while True:
        with engine.begin() as connection:
            current = schema_version(connection)
            if current > LATEST_VERSION:
                raise RuntimeError(
                    f"the tenants database is at schema version {current}, newer than this gridshift "
                    f"({LATEST_VERSION}): upgrade gridshift"
                )
            if current == LATEST_VERSION:
                return applied
            name, step = MIGRATIONS[current]
            step(connection)
            connection.execute(sa.insert(schema_migrations).values(version=current + 1, name=name, applied_at_s=now_s))
            applied.append(current + 1)
