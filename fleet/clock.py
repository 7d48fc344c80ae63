"""Clocks: wall time in production, trace replay (start plus speed-up) for demos, tests and benchmarks."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Protocol, overload

from fleet.sources import LiveSourceConfig, TraceSourceConfig


class Clock(Protocol):
    """The one source of "now" for every component; nothing else reads the system time."""

    def now_s(self) -> float:
        """Current time as epoch seconds (UTC)."""
        ...


class WallClock:
    """Real time."""

    def __init__(self, time_s: Callable[[], float] = time.time) -> None:
        self._time_s = time_s

    def now_s(self) -> float:
        return self._time_s()


class ReplayClock:
    """Trace time that starts at `start_s` and advances `speedup` trace seconds per wall second.

    Reads a monotonic source so a wall-clock step (NTP) cannot make replay jump. Past `end_s`, if given,
    it stays at `end_s` rather than run off the end of the trace.
    """

    def __init__(
        self,
        start_s: float,
        speedup: float = 1.0,
        end_s: float | None = None,
        monotonic_s: Callable[[], float] = time.monotonic,
    ) -> None:
        if speedup <= 0:
            raise ValueError(f"speedup must be positive, got {speedup}")
        if end_s is not None and end_s <= start_s:
            raise ValueError("end_s must be after start_s")
        self.start_s = start_s
        self.speedup = speedup
        self.end_s = end_s
        self._monotonic_s = monotonic_s
        self._origin = monotonic_s()

    def now_s(self) -> float:
        elapsed = (self._monotonic_s() - self._origin) * self.speedup
        now = self.start_s + elapsed
        return now if self.end_s is None else min(now, self.end_s)


class FixedClock:
    """A clock that reads one moment until told otherwise (CLI `--at`, unit tests)."""

    def __init__(self, at_s: float) -> None:
        self.at_s = at_s

    def now_s(self) -> float:
        return self.at_s

    def advance(self, seconds: float) -> None:
        self.at_s += seconds


def as_datetime(clock: Clock) -> datetime:
    return datetime.fromtimestamp(clock.now_s(), tz=UTC)


@overload
def clock_for_source(source: TraceSourceConfig) -> ReplayClock: ...


@overload
def clock_for_source(source: TraceSourceConfig | LiveSourceConfig) -> Clock: ...


def clock_for_source(source: TraceSourceConfig | LiveSourceConfig) -> Clock:
    """The clock a signal source defines: a trace's replay window (start, speed-up, end), or live wall time."""
    if isinstance(source, LiveSourceConfig):
        return WallClock()
    return ReplayClock(
        start_s=source.start.timestamp(),
        speedup=source.speedup,
        end_s=None if source.end is None else source.end.timestamp(),
    )
