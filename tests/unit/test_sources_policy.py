"""The HTTP policy of signal sources as plain code: Retry-After, the rate gate, the TTL cache, secret scrubbing."""

from __future__ import annotations

from datetime import UTC, datetime
from email.utils import format_datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fleet.errors import SignalSourceError
from fleet.retry import backoff_delay_s, parse_retry_after
from fleet.sources import HttpPolicyConfig
from grid.sources.http import (
    MASKED_SECRET,
    HttpAnswer,
    RateGate,
    Redactor,
    TtlCache,
    basic_auth_header,
    env_secret,
)

NOW_S = 1_662_513_000.0


def test_retry_after_reads_seconds_and_http_dates_and_ignores_garbage() -> None:
    assert parse_retry_after("30", NOW_S) == 30.0
    later = datetime.fromtimestamp(NOW_S + 90, tz=UTC)
    assert parse_retry_after(format_datetime(later, usegmt=True), NOW_S) == pytest.approx(90.0)
    earlier = datetime.fromtimestamp(NOW_S - 90, tz=UTC)
    assert parse_retry_after(format_datetime(earlier, usegmt=True), NOW_S) == 0.0
    for garbage in (None, "", "soon", "-5", "1.5e3"):
        assert parse_retry_after(garbage, NOW_S) is None


@given(
    retry=st.integers(min_value=0, max_value=30),
    draw=st.floats(min_value=0.0, max_value=1.0, exclude_max=True),
    jitter=st.floats(min_value=0.0, max_value=1.0),
)
def test_backoff_stays_within_its_jitter_band_and_never_exceeds_the_cap(retry: int, draw: float, jitter: float) -> None:
    policy = HttpPolicyConfig(backoff_initial_s=0.5, backoff_multiplier=3.0, backoff_max_s=20.0, jitter_fraction=jitter)
    ceiling = min(20.0, 0.5 * 3.0**retry)
    delay = backoff_delay_s(retry, policy, draw)
    assert (1.0 - jitter) * ceiling - 1e-9 <= delay <= ceiling + 1e-9


def test_rate_gate_spaces_calls_and_honours_a_block() -> None:
    gate = RateGate(min_interval_s=2.0)
    assert gate.wait_s(100.0) == 0.0
    gate.called(100.0)
    assert gate.wait_s(100.5) == pytest.approx(1.5)
    assert gate.wait_s(103.0) == 0.0
    gate.block_for(103.0, 60.0)
    assert gate.wait_s(103.0) == 60.0
    assert gate.wait_s(170.0) == 0.0


def test_ttl_cache_expires_and_keeps_nothing_at_zero_ttl() -> None:
    answer = HttpAnswer(200, "application/json", b"{}")
    cache = TtlCache(ttl_s=10.0)
    cache.put(("u", ()), answer, now_s=0.0)
    assert cache.get(("u", ()), now_s=9.9) is answer
    assert cache.get(("u", ()), now_s=10.0) is None
    off = TtlCache(ttl_s=0.0)
    off.put(("u", ()), answer, now_s=0.0)
    assert off.get(("u", ()), now_s=0.0) is None


def test_redactor_scrubs_plain_url_encoded_and_basic_auth_forms() -> None:
    redact = Redactor()
    redact.add_basic_auth("operator", "p@ss word/+1")
    redact.add("k3y-0123456789")
    redact.add("ab")  # too short to scrub safely: ordinary words would vanish
    header = basic_auth_header("operator", "p@ss word/+1")
    text = f"GET /x?api_key=k3y-0123456789&p=p%40ss%20word%2F%2B1 Authorization: {header} about"
    scrubbed = redact(text)
    for secret in ("k3y-0123456789", "p%40ss%20word%2F%2B1", header.removeprefix("Basic "), "operator"):
        assert secret not in scrubbed
    assert "about" in scrubbed


def test_env_secret_prefers_inline_but_never_a_masked_dump(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GRIDSHIFT_TEST_SECRET", "from-the-environment")
    assert env_secret("GRIDSHIFT_TEST_SECRET", "inline-value", "s", "key") == "inline-value"
    assert env_secret("GRIDSHIFT_TEST_SECRET", MASKED_SECRET, "s", "key") == "from-the-environment"
    monkeypatch.delenv("GRIDSHIFT_TEST_SECRET")
    with pytest.raises(SignalSourceError, match="GRIDSHIFT_TEST_SECRET") as caught:
        env_secret("GRIDSHIFT_TEST_SECRET", None, "s", "key")
    assert caught.value.kind == "credentials"
