"""The shared retry helper (fleet/retry.py) as plain code: Retry-After, jittered back-off, what is retried, the loop.

Time, draws and sleeps are injected: nothing here waits or reads a clock.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from email.utils import format_datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fleet.retry import (
    AttemptFailed,
    Backoff,
    backoff_delay_s,
    parse_retry_after,
    retry,
    retry_delay_s,
    retryable_status,
    retryable_transport,
)

NOW_S = 1_719_856_800.0  # 2024-07-01T18:00:00Z


def _at(offset_s: float) -> datetime:
    return datetime.fromtimestamp(NOW_S + offset_s, tz=UTC)


def test_retry_after_reads_delay_seconds() -> None:
    assert parse_retry_after("30", NOW_S) == 30.0
    assert parse_retry_after(" 7 ", NOW_S) == 7.0
    assert parse_retry_after("0", NOW_S) == 0.0


def test_retry_after_reads_each_http_date_form_relative_to_the_injected_now() -> None:
    later = _at(90)
    imf_fixdate = format_datetime(later, usegmt=True)  # Mon, 01 Jul 2024 18:01:30 GMT
    rfc850 = later.strftime("%A, %d-%b-%y %H:%M:%S GMT")  # obsolete, still to be accepted (RFC 9110 5.6.7)
    asctime = later.strftime("%a %b %d %H:%M:%S %Y")  # no zone written: GMT all the same
    for text in (imf_fixdate, rfc850, asctime):
        assert parse_retry_after(text, NOW_S) == pytest.approx(90.0), text
    assert parse_retry_after(imf_fixdate, NOW_S + 30) == pytest.approx(60.0)


def test_retry_after_with_a_date_in_the_past_is_zero() -> None:
    assert parse_retry_after(format_datetime(_at(-90), usegmt=True), NOW_S) == 0.0


@pytest.mark.parametrize(
    "garbage",
    [None, "", "   ", "soon", "-5", "1.5", "1.5e3", "nan", "inf", "²", "Sun, 32 Nov 1994 08:49:37 GMT"],
)
def test_retry_after_garbage_is_none(garbage: str | None) -> None:
    assert parse_retry_after(garbage, NOW_S) is None


@given(st.text(max_size=40))
def test_retry_after_never_raises_and_never_asks_for_a_negative_wait(text: str) -> None:
    seconds = parse_retry_after(text, NOW_S)
    assert seconds is None or seconds >= 0.0


@given(
    retry_index=st.integers(min_value=0, max_value=2000),
    draw=st.floats(min_value=0.0, max_value=1.0, exclude_max=True),
    jitter=st.floats(min_value=0.0, max_value=1.0),
)
def test_backoff_stays_within_its_jitter_band_under_the_cap(retry_index: int, draw: float, jitter: float) -> None:
    policy = Backoff(backoff_initial_s=0.5, backoff_multiplier=3.0, backoff_max_s=20.0, jitter_fraction=jitter)
    ceiling = 20.0 if retry_index > 10 else min(20.0, 0.5 * 3.0**retry_index)
    delay = backoff_delay_s(retry_index, policy, draw)
    assert (1.0 - jitter) * ceiling - 1e-9 <= delay <= ceiling + 1e-9


def test_backoff_grows_by_the_multiplier_up_to_the_max_delay() -> None:
    policy = Backoff(backoff_initial_s=1.0, backoff_multiplier=2.0, backoff_max_s=5.0, jitter_fraction=0.5)
    assert [backoff_delay_s(i, policy, 0.0) for i in range(5)] == [1.0, 2.0, 4.0, 5.0, 5.0]
    assert [backoff_delay_s(i, policy, 0.5) for i in range(5)] == [0.75, 1.5, 3.0, 3.75, 3.75]
    assert backoff_delay_s(10_000, policy, 0.0) == 5.0  # far past any float: still the cap, no OverflowError


def test_retry_after_is_a_floor_on_the_backoff() -> None:
    policy = Backoff(backoff_initial_s=2.0, jitter_fraction=0.0)
    assert retry_delay_s(0, policy, 0.3, None) == 2.0
    assert retry_delay_s(0, policy, 0.3, 12.0) == 12.0
    assert retry_delay_s(0, policy, 0.3, 0.0) == 2.0  # "now" from the server still waits our back-off


def test_which_statuses_and_transport_failures_are_retried() -> None:
    for status in (429, 500, 502, 503, 504):
        assert retryable_status(status, idempotent=True), status
    assert retryable_status(429, idempotent=False)  # refused before the server acted on it
    for status in (500, 503):
        assert not retryable_status(status, idempotent=False), status  # a POST may have created something
    for status in (200, 304, 400, 401, 403, 404, 409, 422):
        assert not retryable_status(status, idempotent=True), status
    assert retryable_transport(sent=False, idempotent=False)  # the connection never opened
    assert not retryable_transport(sent=True, idempotent=False)
    assert retryable_transport(sent=True, idempotent=True)


class Script:
    """An attempt that fails as told, try by try, then answers; records sleeps, retries and the give-up."""

    def __init__(self, *failures: AttemptFailed | Exception) -> None:
        self.failures = list(failures)
        self.tries = 0
        self.sleeps: list[float] = []
        self.retries: list[tuple[int, float, str]] = []
        self.given_up: list[Exception] = []

    async def attempt(self) -> str:
        self.tries += 1
        if self.failures:
            raise self.failures.pop(0)
        return "answer"

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)

    def run(self, attempts: int) -> str:
        policy = Backoff(backoff_initial_s=1.0, backoff_multiplier=2.0, backoff_max_s=30.0, jitter_fraction=0.5)
        return asyncio.run(
            retry(
                self.attempt,
                attempts=attempts,
                policy=policy,
                draw=lambda: 0.5,
                sleep=self.sleep,
                on_retry=lambda n, delay, error: self.retries.append((n, delay, str(error))),
                on_give_up=self.given_up.append,
            )
        )


def _failed(text: str, *, retryable: bool = True, retry_after_s: float | None = None) -> AttemptFailed:
    return AttemptFailed(RuntimeError(text), retryable=retryable, retry_after_s=retry_after_s)


def test_retry_loop_backs_off_between_tries_and_returns_the_answer() -> None:
    script = Script(_failed("first"), _failed("second", retry_after_s=9.0))
    assert script.run(attempts=3) == "answer"
    assert script.tries == 3
    assert script.sleeps == [0.75, 9.0]  # back-off 0.75 s, then the server's 9 s over our 1.5 s
    assert script.retries == [(1, 0.75, "first"), (2, 9.0, "second")]
    assert script.given_up == []


def test_retry_loop_raises_the_last_error_when_no_try_is_left() -> None:
    script = Script(_failed("one"), _failed("two"), _failed("three"))
    with pytest.raises(RuntimeError, match="three"):
        script.run(attempts=3)
    assert script.tries == 3
    assert len(script.sleeps) == 2
    assert [str(e) for e in script.given_up] == ["three"]


def test_retry_loop_stops_at_once_on_a_failure_that_is_not_retryable() -> None:
    script = Script(_failed("forbidden", retryable=False))
    with pytest.raises(RuntimeError, match="forbidden"):
        script.run(attempts=5)
    assert (script.tries, script.sleeps) == (1, [])
    assert [str(e) for e in script.given_up] == ["forbidden"]


def test_retry_loop_passes_other_exceptions_through_untouched() -> None:
    script = Script(ValueError("a bug, not a failed request"))
    with pytest.raises(ValueError, match="a bug"):
        script.run(attempts=5)
    assert (script.tries, script.sleeps, script.given_up) == (1, [], [])


def test_retry_loop_needs_at_least_one_attempt() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        Script().run(attempts=0)
