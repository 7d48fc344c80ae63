"""HTTP for signal sources: one pooled aiohttp session per source, timeouts, retries with jittered exponential
back-off, rate-limit awareness (a minimum interval between calls, 429 and Retry-After) and a TTL response cache.

The policy (rate gate, cache here; back-off, Retry-After and what to retry in fleet/retry.py, shared with the
OpenADR client) is plain code with the clock and randomness injected, so its tests need no sockets and no waiting;
`HttpClient` is the thin async shell that applies it to real calls.
Credentials never reach a message: every error text is built here from the URL's path (never its query) and
then scrubbed of every secret the source registered.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import math
import os
import random
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from urllib.parse import quote, urlsplit

import aiohttp

from fleet.errors import SignalSourceError
from fleet.retry import AttemptFailed, Sleep, parse_retry_after, retry, retryable_status, retryable_transport
from fleet.sources import HttpPolicyConfig

logger = logging.getLogger("gridshift.signals")

Params = Sequence[tuple[str, str]]

USER_AGENT = "gridshift-signals/0.1"
MASKED_SECRET = "**********"  # how pydantic writes a SecretStr when a config is dumped
_MIN_SECRET_CHARS = 4  # shorter "secrets" would scrub ordinary words out of messages


@dataclass
class RateGate:
    """When the next call to one provider may go: at least `min_interval_s` after the last, and not before a
    429's Retry-After has passed. Times are monotonic seconds."""

    min_interval_s: float
    last_call_s: float | None = None
    blocked_until_s: float = -math.inf

    def wait_s(self, now_s: float) -> float:
        spacing = 0.0 if self.last_call_s is None else self.last_call_s + self.min_interval_s - now_s
        return max(0.0, spacing, self.blocked_until_s - now_s)

    def called(self, now_s: float) -> None:
        self.last_call_s = now_s

    def block_for(self, now_s: float, seconds: float) -> None:
        self.blocked_until_s = max(self.blocked_until_s, now_s + seconds)


@dataclass(frozen=True)
class HttpAnswer:
    """A 2xx answer: its status, content type and body."""

    status: int
    content_type: str
    body: bytes


@dataclass
class TtlCache:
    """Answers by request key, each kept `ttl_s` monotonic seconds; 0 keeps nothing."""

    ttl_s: float
    entries: dict[tuple[object, ...], tuple[float, HttpAnswer]] = field(default_factory=dict)

    def get(self, key: tuple[object, ...], now_s: float) -> HttpAnswer | None:
        entry = self.entries.get(key)
        if entry is None:
            return None
        if entry[0] <= now_s:
            del self.entries[key]
            return None
        return entry[1]

    def put(self, key: tuple[object, ...], answer: HttpAnswer, now_s: float) -> None:
        if self.ttl_s <= 0:
            return
        # Drop expired entries on write so a long-running poller's cache stays as small as its live requests.
        for stale in [k for k, (expires, _) in self.entries.items() if expires <= now_s]:
            del self.entries[stale]
        self.entries[key] = (now_s + self.ttl_s, answer)


class Redactor:
    """Scrubs registered secrets (as written, URL-encoded and as a basic-auth pair) out of any text."""

    def __init__(self) -> None:
        self._secrets: set[str] = set()

    def add(self, *secrets: str) -> None:
        for secret in secrets:
            if len(secret) >= _MIN_SECRET_CHARS:
                self._secrets.update({secret, quote(secret, safe=""), quote(secret)})

    def add_basic_auth(self, user: str, password: str) -> None:
        self.add(user, password, basic_auth_header(user, password).removeprefix("Basic "))

    def __call__(self, text: str) -> str:
        # Longest first, so a secret that contains another is replaced whole.
        for secret in sorted(self._secrets, key=len, reverse=True):
            text = text.replace(secret, "***")
        return text


@dataclass(frozen=True)
class HttpRuntime:
    """What an HTTP source reads from its surroundings, injectable so tests neither wait nor draw at random."""

    sleep: Sleep = asyncio.sleep
    monotonic_s: Callable[[], float] = time.monotonic
    wall_s: Callable[[], float] = time.time
    rng: random.Random = field(default_factory=random.Random)


def _where(url: str) -> str:
    # Host and path only: a query string may carry an api_key.
    parts = urlsplit(url)
    return f"{parts.netloc}{parts.path}"


class HttpClient:
    """GETs for one source, through one pooled session, under the source's HttpPolicyConfig."""

    def __init__(
        self,
        source: str,
        policy: HttpPolicyConfig,
        runtime: HttpRuntime | None = None,
        redactor: Redactor | None = None,
    ) -> None:
        self.source = source
        self.policy = policy
        self.runtime = runtime or HttpRuntime()
        self.redact = redactor or Redactor()
        self.gate = RateGate(policy.min_interval_s)
        self.cache = TtlCache(policy.cache_ttl_s)
        self._session: aiohttp.ClientSession | None = None

    def _error(self, kind: str, detail: str) -> SignalSourceError:
        return SignalSourceError(self.source, kind, self.redact(detail))

    def _open(self) -> aiohttp.ClientSession:
        # Created on first use, inside the event loop that will use it (aiohttp binds a session to its loop).
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(limit=4, ttl_dns_cache=300)
            self._session = aiohttp.ClientSession(
                connector=connector, headers={"User-Agent": USER_AGENT}, raise_for_status=False, trust_env=False
            )
        return self._session

    async def close(self) -> None:
        if self._session is not None and not self._session.closed:
            await self._session.close()
        self._session = None

    async def _wait_for_gate(self) -> None:
        wait = self.gate.wait_s(self.runtime.monotonic_s())
        if wait > self.policy.max_retry_after_s:
            raise self._error("rate_limited", f"provider asked for no calls for another {wait:.0f} s")
        if wait > 0:
            await self.runtime.sleep(wait)

    async def get(
        self,
        url: str,
        params: Params = (),
        headers: Mapping[str, str] | None = None,
        use_cache: bool = True,
    ) -> HttpAnswer:
        """The 2xx answer to GET url?params, retried per the policy; raises SignalSourceError otherwise.

        401 and 403 raise kind `auth` at once (the caller may log in again); other 4xx raise `http_status`.
        """
        key: tuple[object, ...] = (url, tuple(params))
        if use_cache:
            cached = self.cache.get(key, self.runtime.monotonic_s())
            if cached is not None:
                return cached
        where = _where(url)

        async def attempt() -> HttpAnswer:
            await self._wait_for_gate()
            return await self._send(url, params, headers, where)

        def log_retry(retry_number: int, delay_s: float, error: Exception) -> None:
            logger.info("%s: retry %d of GET %s in %.2f s (%s)", self.source, retry_number, where, delay_s, error)

        answer = await retry(
            attempt,
            attempts=self.policy.max_attempts,
            policy=self.policy,
            draw=self.runtime.rng.random,
            sleep=self.runtime.sleep,
            on_retry=log_retry,
        )
        if use_cache:
            self.cache.put(key, answer, self.runtime.monotonic_s())
        return answer

    async def _send(self, url: str, params: Params, headers: Mapping[str, str] | None, where: str) -> HttpAnswer:
        session = self._open()
        self.gate.called(self.runtime.monotonic_s())
        timeout = aiohttp.ClientTimeout(total=self.policy.timeout_s)
        try:
            async with session.get(
                url, params=list(params), headers=headers, timeout=timeout, allow_redirects=False
            ) as response:
                status = response.status
                if status == 429:
                    wait = parse_retry_after(response.headers.get("Retry-After"), self.runtime.wall_s())
                    self.gate.block_for(self.runtime.monotonic_s(), wait if wait is not None else 0.0)
                    error = self._error(
                        "rate_limited",
                        f"GET {where}: HTTP 429" + (f", retry after {wait:g} s" if wait is not None else ""),
                    )
                    if wait is not None and wait > self.policy.max_retry_after_s:
                        raise error  # waiting that long would stall every other source's poll
                    raise AttemptFailed(error, retryable=True, retry_after_s=wait)
                if status in (401, 403):
                    raise self._error("auth", f"GET {where}: HTTP {status} (credentials refused or expired)")
                if not 200 <= status < 300:
                    error = self._error("http_status", f"GET {where}: HTTP {status}")
                    raise AttemptFailed(error, retryable=retryable_status(status, idempotent=True))
                body = await response.read()
                return HttpAnswer(status, response.headers.get("Content-Type", ""), body)
        except TimeoutError:
            error = self._error("timeout", f"GET {where}: no answer within {self.policy.timeout_s:g} s")
            raise AttemptFailed(error, retryable=retryable_transport(sent=True, idempotent=True)) from None
        except aiohttp.ClientConnectionError as failure:
            error = self._error("connection", f"GET {where}: {type(failure).__name__}")
            sent = not isinstance(failure, aiohttp.ClientConnectorError)
            raise AttemptFailed(error, retryable=retryable_transport(sent=sent, idempotent=True)) from None
        except aiohttp.ClientError as failure:  # payload and protocol errors: a broken answer, worth one more try
            error = self._error("connection", f"GET {where}: {type(failure).__name__}")
            raise AttemptFailed(error, retryable=retryable_transport(sent=True, idempotent=True)) from None


def env_secret(env_name: str, inline: str | None, source: str, what: str) -> str:
    """A credential from the config (inline) or else the named environment variable, read now; a missing one
    fails the call with kind `credentials`, naming the variable (never a value)."""
    # A fleet shipped to a Ray actor is dumped with its secrets masked: such a value is no credential, so the
    # environment (which the actor shares with the process that started it) must supply it.
    value = inline if inline and inline != MASKED_SECRET else os.environ.get(env_name, "")
    if not value:
        raise SignalSourceError(source, "credentials", f"{what}: set the environment variable {env_name}")
    return value


def basic_auth_header(user: str, password: str) -> str:
    """The `Authorization` value of HTTP basic auth (RFC 7617, UTF-8)."""
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def query(*pairs: tuple[str, str], repeated: Iterable[tuple[str, Iterable[str]]] = ()) -> list[tuple[str, str]]:
    """Query parameters in order, with repeated keys (EIA's `facets[respondent][]=A&...=B`)."""
    items = list(pairs)
    for key, values in repeated:
        items.extend((key, value) for value in values)
    return items
