"""Retries of outbound HTTP calls, written once for every client: Retry-After, jittered back-off, what to retry.

Pure: the caller passes the wall-clock time, the random draws and the sleep, so tests neither wait nor guess.
The I/O stays in each client (grid/sources/http.py, openadr/client.py); this is the policy they share.
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC
from email.utils import parsedate_to_datetime
from typing import Protocol, TypeVar

T = TypeVar("T")
Sleep = Callable[[float], Awaitable[None]]


def parse_retry_after(value: str | None, now_s: float) -> float | None:
    """Seconds a `Retry-After` header asks to wait, from delay-seconds or an HTTP-date (RFC 9110 section 10.2.3),
    relative to `now_s` (wall-clock epoch seconds); a date in the past is 0. None when absent or unreadable."""
    if value is None:
        return None
    text = value.strip()
    if not text:
        return None
    # delay-seconds is 1*DIGIT: no sign, no fraction, no exponent, and ASCII only ("²".isdigit() is True).
    if text.isascii() and text.isdigit():
        return float(text)
    try:
        moment = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if moment.tzinfo is None:  # asctime, one of the three HTTP-date forms, has no zone: every HTTP-date is GMT
        moment = moment.replace(tzinfo=UTC)
    return max(0.0, moment.timestamp() - now_s)


class BackoffPolicy(Protocol):
    """The back-off figures a client is configured with (fleet.sources.HttpPolicyConfig has these fields)."""

    @property
    def backoff_initial_s(self) -> float: ...

    @property
    def backoff_multiplier(self) -> float: ...

    @property
    def backoff_max_s(self) -> float: ...

    @property
    def jitter_fraction(self) -> float: ...


@dataclass(frozen=True)
class Backoff:
    """A BackoffPolicy for clients whose config states it another way (openadr/client.py)."""

    backoff_initial_s: float
    backoff_multiplier: float = 2.0
    backoff_max_s: float = 30.0
    jitter_fraction: float = 0.5


def backoff_delay_s(retry_index: int, policy: BackoffPolicy, draw: float) -> float:
    """Wait before retry number `retry_index` (0 = the first retry); `draw` in [0, 1) picks the jitter.

    The ceiling grows by `backoff_multiplier` per retry up to `backoff_max_s`; the wait is drawn uniformly from
    [(1 - jitter_fraction) x ceiling, ceiling], so clients that failed together do not retry in step."""
    try:
        grown = policy.backoff_initial_s * policy.backoff_multiplier**retry_index
    except OverflowError:  # a retry index no real config reaches; the cap applies all the same
        grown = math.inf
    ceiling = min(policy.backoff_max_s, grown)
    return ceiling * (1.0 - policy.jitter_fraction * draw)


def retry_delay_s(retry_index: int, policy: BackoffPolicy, draw: float, retry_after_s: float | None) -> float:
    """Wait before retry `retry_index`: the back-off, or longer when the server asked for longer (Retry-After is
    the least it wants; the back-off keeps many clients that were all told "now" from returning in step).
    A client that will not wait past some limit checks `retry_after_s` against it before asking to retry."""
    delay = backoff_delay_s(retry_index, policy, draw)
    return delay if retry_after_s is None else max(delay, retry_after_s)


def retryable_status(status: int, *, idempotent: bool) -> bool:
    """Whether an HTTP error status may be retried: 429 always (the server refused before acting on the request),
    a 5xx only when repeating the request is safe (the server may have acted on it before failing)."""
    if status == 429:
        return True
    return idempotent and 500 <= status <= 599


def retryable_transport(*, sent: bool, idempotent: bool) -> bool:
    """Whether a request that got no answer (timeout, reset, refused connection) may be retried: always when it
    never left (no connection was made), else only when repeating it is safe."""
    return idempotent or not sent


class AttemptFailed(Exception):
    """Raised by one attempt of a `retry` loop: the request failed with `error`; `retryable` says whether another
    try may help, `retry_after_s` what the server asked to wait (seconds, already parsed)."""

    def __init__(self, error: Exception, *, retryable: bool, retry_after_s: float | None = None) -> None:
        super().__init__(str(error))
        self.error = error
        self.retryable = retryable
        self.retry_after_s = retry_after_s


async def retry(
    attempt: Callable[[], Awaitable[T]],
    *,
    attempts: int,
    policy: BackoffPolicy,
    draw: Callable[[], float],
    sleep: Sleep,
    on_retry: Callable[[int, float, Exception], None] | None = None,
    on_give_up: Callable[[Exception], None] | None = None,
) -> T:
    """`await attempt()` up to `attempts` times, waiting `retry_delay_s` between tries, and return its result.

    An attempt raises AttemptFailed for a failed request: when it is not retryable, or no try is left, its
    `error` is raised (after `on_give_up(error)`). Anything else an attempt raises passes through at once.
    `on_retry(retry_number, delay_s, error)` (retry_number from 1) runs before each wait, to log or count it.
    """
    if attempts < 1:
        raise ValueError(f"attempts must be at least 1, got {attempts}")
    failed: AttemptFailed | None = None
    for index in range(attempts):
        if failed is not None:
            delay = retry_delay_s(index - 1, policy, draw(), failed.retry_after_s)
            if on_retry is not None:
                on_retry(index, delay, failed.error)
            await sleep(delay)
        try:
            return await attempt()
        except AttemptFailed as caught:
            failed = caught
            if not caught.retryable:
                break
    if failed is None:  # pragma: no cover - attempts >= 1, so the loop ran and either returned or failed
        raise AssertionError("retry: no attempt made")
    if on_give_up is not None:
        on_give_up(failed.error)
    raise failed.error
