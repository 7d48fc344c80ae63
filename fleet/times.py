"""Time helpers: parse the UTC times users give, and convert and format epoch seconds the one way gridshift does."""

from __future__ import annotations

import functools
from datetime import UTC, datetime

from fleet.base import require_utc
from fleet.errors import ConfigError


def utc_now_from(value: str) -> datetime:
    """Parse a user-supplied ISO-8601 time (CLI flags); naive times are rejected, not guessed."""
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise ConfigError(f"not an ISO-8601 time: {value!r} (expected e.g. 2022-09-07T01:00:00Z)") from None
    try:
        return require_utc(parsed)
    except ValueError as error:
        raise ConfigError(f"{value!r}: {error}") from None


def to_epoch_s(moment: datetime) -> int:
    if moment.tzinfo is None:
        raise ValueError("naive datetime: gridshift times are UTC and must carry an offset")
    return int(moment.timestamp())


def from_epoch_s(seconds: int | float) -> datetime:
    return datetime.fromtimestamp(seconds, tz=UTC)


def iso(seconds: int | float) -> str:
    """ISO-8601 UTC with a Z suffix, the form used in traces and JSON output."""
    return _iso(seconds)


# Memoised: the batch gate's reasons name the same hour boundaries for every job, every hour (live and simulated),
# and strftime is most of `should_run`'s cost. The function is pure, so a cached answer is the answer. (Behind a
# typed wrapper: lru_cache's own signature would accept any hashable argument.)
@functools.lru_cache(maxsize=16384)
def _iso(seconds: int | float) -> str:
    return from_epoch_s(seconds).strftime("%Y-%m-%dT%H:%M:%SZ")
