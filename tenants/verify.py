"""Key checks with a short cache: a key's row is read at most once per `cache_s` per replica, compared every time.

A revoked key stops working within `cache_s`. While the database is unreachable a key seen before keeps its last
known answer (requests keep being served); one never seen cannot be checked (TenantsDatabaseError).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import sqlalchemy as sa

from tenants.keys import parse_key, secret_matches
from tenants.store import KeyRecord, Tenant, TenantsDatabaseError

CACHE_MAX = 10_000


class KeyLookup(Protocol):
    def key(self, key_id: str) -> KeyRecord | None: ...


@dataclass(frozen=True)
class _Cached:
    record: KeyRecord | None
    read_at_s: float


class KeyVerifier:
    """The tenant a presented key opens, or None (malformed, unknown, wrong, revoked: one answer for all)."""

    def __init__(
        self, lookup: Callable[[], KeyLookup], cache_s: float, monotonic_s: Callable[[], float] = time.monotonic
    ):
        self._lookup = lookup  # the store, opened on first use
        self._cache_s = cache_s
        self._monotonic_s = monotonic_s
        self._cache: dict[str, _Cached] = {}

    async def tenant(self, presented: str) -> Tenant | None:
        parsed = parse_key(presented)
        key_id, secret = parsed if parsed is not None else ("", presented[:128])
        record = await self._record(key_id) if parsed is not None else None
        # Always one constant-time comparison, against a dummy when there is no row: no timing tells them apart.
        matches = secret_matches(
            None if record is None else record.salt, None if record is None else record.secret_hash, secret
        )
        if record is None or not matches or record.revoked:
            return None
        return record.tenant

    async def _record(self, key_id: str) -> KeyRecord | None:
        now = self._monotonic_s()
        cached = self._cache.get(key_id)
        if cached is not None and now - cached.read_at_s < self._cache_s:
            return cached.record
        try:
            record = await asyncio.to_thread(lambda: self._lookup().key(key_id))
        except (sa.exc.SQLAlchemyError, TenantsDatabaseError) as error:
            if cached is not None:
                return cached.record  # serve on the last known answer while the database is away
            raise TenantsDatabaseError(f"cannot check the key: tenants database unreachable ({error})") from None
        if len(self._cache) >= CACHE_MAX:
            self._cache.clear()  # bounded: a flood of made-up key ids cannot grow it without limit
        self._cache[key_id] = _Cached(record, now)
        return record
