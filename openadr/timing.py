"""OpenADR 3 time: RFC 3339 instants, ISO 8601 durations, and where each interval of an event starts and ends.

Rules (Definition and User Guide, intervalPeriod): an event's intervalPeriod gives the first interval's start
and every interval's default duration; intervals follow one another; an interval's own intervalPeriod
overrides either. A start of "0001-01-01" means now (3.1.0); a duration of PT0S (the default) or P9999Y
means until further notice for the payload types gridshift acts on.
"""

from __future__ import annotations

import calendar
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from openadr.schema import NOW_SENTINELS

_DURATION = re.compile(
    r"^(?P<sign>-?)P(?=\d|T\d)(?:(?P<years>\d+)Y)?(?:(?P<months>\d+)M)?(?:(?P<days>\d+)(?P<dw>[DW]))?"
    r"(?:T(?:(?P<hours>\d+)H)?(?:(?P<minutes>\d+)M)?(?:(?P<seconds>\d+(?:\.\d+)?)S)?)?$"
)
INFINITE_YEARS = 9999
"""A duration of this many years or more is "infinity" (Definition: P9999Y)."""


@dataclass(frozen=True)
class Duration:
    """An ISO 8601 duration: calendar months (years are 12) plus exact seconds; `infinite` for P9999Y."""

    months: int = 0
    seconds: float = 0.0
    infinite: bool = False

    @property
    def is_zero(self) -> bool:
        return not self.infinite and self.months == 0 and self.seconds == 0.0

    def after(self, start_s: float) -> float | None:
        """The instant this long after `start_s`; None for an infinite duration."""
        if self.infinite:
            return None
        moment = datetime.fromtimestamp(start_s, tz=UTC)
        if self.months:
            month_index = moment.month - 1 + self.months
            year, month = moment.year + month_index // 12, month_index % 12 + 1
            day = min(moment.day, calendar.monthrange(year, month)[1])
            moment = moment.replace(year=year, month=month, day=day)
        return (moment + timedelta(seconds=self.seconds)).timestamp()


def parse_duration(text: str) -> Duration:
    """Parse an ISO 8601 duration as the spec's pattern allows; negative durations are refused (no interval
    runs backwards)."""
    match = _DURATION.match(text)
    if match is None:
        raise ValueError(f"not an ISO 8601 duration: {text!r}")
    if match["sign"]:
        raise ValueError(f"negative duration {text!r}")
    years = int(match["years"] or 0)
    if years >= INFINITE_YEARS:
        return Duration(infinite=True)
    days = int(match["days"] or 0) * (7 if match["dw"] == "W" else 1)
    seconds = days * 86_400 + int(match["hours"] or 0) * 3600 + int(match["minutes"] or 0) * 60
    return Duration(months=years * 12 + int(match["months"] or 0), seconds=seconds + float(match["seconds"] or 0))


def parse_instant(text: str, now_s: float) -> float:
    """An RFC 3339 date-time as epoch seconds; the 'now' sentinel as `now_s`."""
    if text in NOW_SENTINELS:
        return now_s
    moment = datetime.fromisoformat(text.replace("z", "Z"))
    if moment.tzinfo is None:
        raise ValueError(f"date-time without a UTC offset: {text!r}")
    return moment.timestamp()


def format_instant(at_s: float) -> str:
    """Epoch seconds as the RFC 3339 UTC form the spec's examples use (milliseconds, Z)."""
    return datetime.fromtimestamp(at_s, tz=UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def format_duration(seconds: float) -> str:
    """Seconds as an ISO 8601 duration (PT...S), whole or with milliseconds."""
    if seconds < 0:
        raise ValueError(f"negative duration {seconds}")
    whole = int(seconds)
    return f"PT{whole}S" if seconds == whole else f"PT{seconds:.3f}S"


@dataclass(frozen=True)
class IntervalWindow:
    """Where one event interval sits in time: [start_s, end_s), end None while it lasts until cleared."""

    interval_id: int
    start_s: float
    end_s: float | None

    def covers(self, at_s: float) -> bool:
        return self.start_s <= at_s and (self.end_s is None or at_s < self.end_s)


def _period(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def interval_windows(event: Mapping[str, Any], now_s: float) -> list[IntervalWindow]:
    """Each interval's window, in list order. `now_s` stands for a missing start or the 'now' sentinel; pass
    the time the event was first seen so that re-reading it later gives the same windows."""
    base = _period(event.get("intervalPeriod"))
    base_duration = parse_duration(base["duration"]) if isinstance(base.get("duration"), str) else Duration()
    cursor: float | None = parse_instant(base["start"], now_s) if isinstance(base.get("start"), str) else now_s
    windows: list[IntervalWindow] = []
    intervals: Sequence[Any] = event.get("intervals") or []
    for interval in intervals:
        own = _period(interval.get("intervalPeriod"))
        start = parse_instant(own["start"], now_s) if isinstance(own.get("start"), str) else cursor
        if start is None:
            break  # follows an interval that never ends: it never starts
        duration = parse_duration(own["duration"]) if isinstance(own.get("duration"), str) else base_duration
        end = None if duration.is_zero else duration.after(start)
        windows.append(IntervalWindow(int(interval["id"]), start, end))
        cursor = end
    return windows
