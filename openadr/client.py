"""The VEN's HTTP client of a VTN: pooled aiohttp session, OAuth2 client credentials, retries with back-off
(fleet/retry.py, the helper every outbound client shares), ETags, and schema validation of every body it sends and
every object it accepts."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import random
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from fleet.clock import Clock
from fleet.errors import ConfigError, OpenADRError, OpenADRValidationError
from fleet.openadr import OpenADRConfig
from fleet.retry import AttemptFailed, Backoff, parse_retry_after, retry, retryable_status, retryable_transport
from openadr.schema import SpecSchemas

log = logging.getLogger(__name__)

PAGE_LIMIT = 50  # the spec's maximum `limit`
MAX_PAGES = 200  # 10,000 objects: past that the VTN is paginating wrongly, not serving a real fleet
MAX_BACKOFF_S = 30.0  # also the longest Retry-After waited: a longer one is cut to this, not refused
TOKEN_REFRESH_MARGIN = 0.8  # refresh when this fraction of the token's lifetime has passed
# `retry_backoff_s` is the mean first wait, drawn from [0.5, 1.5] x it and doubled each retry: in the shared
# helper's terms, a ceiling of 1.5 x it with a jitter of two thirds of the ceiling.
_JITTER_SPAN = 1.5
_JITTER_FRACTION = 2.0 / 3.0
STAT_KINDS = frozenset({"tokens", "not_modified", "retries"})
"""Counters that record normal traffic; every other counter kind is a failure."""


class VTNHTTPError(OpenADRError):
    """The VTN answered with an HTTP error status."""

    def __init__(self, method: str, url: str, status: int, detail: str) -> None:
        self.status = status
        super().__init__(f"{method} {url}: HTTP {status} {detail}".rstrip())


class VTNBadResponse(OpenADRError):
    """The VTN answered 2xx with a body that is not the JSON the spec promises."""


def _refuse_constant(name: str) -> float:
    raise ValueError(f"{name} is not valid JSON")


def loads_strict(text: str) -> Any:
    """JSON as RFC 8259 has it: NaN and Infinity (which Python's json accepts) are refused."""
    return json.loads(text, parse_constant=_refuse_constant)


def _problem_detail(text: str) -> str:
    try:
        body = loads_strict(text)
    except ValueError:
        return text[:200]
    if isinstance(body, Mapping):
        return str(body.get("detail") or body.get("title") or body.get("error_description") or body.get("error") or "")
    return text[:200]


@dataclass
class _Token:
    value: str
    expires_at_s: float | None


@dataclass
class ListResult:
    """Objects of a list endpoint that passed validation, what was rejected, and whether nothing changed."""

    objects: list[dict[str, Any]]
    rejected: list[str] = field(default_factory=list)
    not_modified: bool = False


class VTNClient:
    """One VEN's connection to one VTN. Use as `async with VTNClient(...) as client:`."""

    def __init__(
        self,
        config: OpenADRConfig,
        schemas: SpecSchemas,
        credentials: tuple[str, str],
        clock: Clock,
        *,
        rng: random.Random | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        wall_s: Callable[[], float] = time.time,
    ) -> None:
        self.config = config
        self.schemas = schemas
        self._client_id, self._client_secret = credentials
        self.clock = clock
        self.base_url = config.vtn_url.rstrip("/")
        self.counters: Counter[str] = Counter()
        self.last_error: str | None = None
        self._rng = rng or random.Random()
        self._sleep = sleep
        # Real time, not `clock` (trace time under replay): a Retry-After HTTP-date is a real moment.
        self._wall_s = wall_s
        self._backoff = Backoff(
            backoff_initial_s=_JITTER_SPAN * config.retry_backoff_s,
            backoff_multiplier=2.0,
            backoff_max_s=MAX_BACKOFF_S,
            jitter_fraction=_JITTER_FRACTION,
        )
        self._session: aiohttp.ClientSession | None = None
        self._token: _Token | None = None
        self._token_lock = asyncio.Lock()
        self._etags: dict[str, tuple[str, Any]] = {}

    def __repr__(self) -> str:  # never show the secret or the token
        return f"VTNClient({self.base_url!r}, OpenADR {self.schemas.version}, client_id={self._client_id!r})"

    async def __aenter__(self) -> VTNClient:
        self._session = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=self.config.request_timeout_s),
            connector=aiohttp.TCPConnector(limit=8),
            headers={"Accept": "application/json"},
        )
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None:
            raise OpenADRError("VTNClient used outside `async with`")
        return self._session

    def _fail(self, kind: str, message: str) -> None:
        self.counters[kind] += 1
        self.last_error = message
        log.warning("openadr: %s", message)

    # Auth ---------------------------------------------------------------------------------------------------

    async def _token_url(self) -> str:
        if self.config.token_url:
            return self.config.token_url
        if self.schemas.version == "3.1.0":
            # 3.1.0 names the token endpoint at GET /auth/server; a VTN without it still has /auth/token.
            try:
                info = await self._send("GET", "/auth/server", auth=False, retries=0)
                self.schemas.validate("authServerInfo", info, "GET /auth/server")
                return str(info["tokenURL"])
            except OpenADRError as error:
                log.info("openadr: no usable GET /auth/server (%s); using /auth/token", error)
        return f"{self.base_url}/auth/token"

    async def authenticate(self) -> None:
        """Exchange the client credentials for a bearer token (client credentials grant)."""
        form = {"grant_type": "client_credentials", "client_id": self._client_id, "client_secret": self._client_secret}
        self.schemas.validate("clientCredentialRequest", form, "token request")
        url = await self._token_url()
        answer = await self._send("POST", url, form=form, auth=False)
        try:
            self.schemas.validate("clientCredentialResponse", answer, "token response")
        except OpenADRValidationError as error:
            self._fail("invalid_token_response", str(error))
            raise
        expires_in = answer.get("expires_in")
        expires_at = self.clock.now_s() + expires_in * TOKEN_REFRESH_MARGIN if isinstance(expires_in, int) else None
        self._token = _Token(str(answer["access_token"]), expires_at)
        self.counters["tokens"] += 1
        log.info("openadr: token obtained from %s (expires in %s s)", url, expires_in)

    async def _bearer(self) -> str:
        async with self._token_lock:
            token = self._token
            if token is None or (token.expires_at_s is not None and self.clock.now_s() >= token.expires_at_s):
                await self.authenticate()
            if self._token is None:  # pragma: no cover - authenticate() sets it or raises
                raise OpenADRError("no token")
            return self._token.value

    # Transport ---------------------------------------------------------------------------------------------

    def _url(self, path: str) -> str:
        return path if path.startswith(("http://", "https://")) else f"{self.base_url}{path}"

    async def _send(
        self,
        method: str,
        path: str,
        *,
        params: Sequence[tuple[str, str]] = (),
        body: Any = None,
        form: Mapping[str, str] | None = None,
        auth: bool = True,
        retries: int | None = None,
        etag_key: str | None = None,
    ) -> Any:
        """One request with retries; the parsed JSON answer (None for an empty body)."""
        url = self._url(path)
        # A POST that reached the server may have created something: only retry it when it surely did not.
        idempotent = method != "POST"
        refreshed = False

        async def attempt() -> Any:
            nonlocal refreshed
            while True:
                try:
                    return await self._request(method, url, params, body, form, auth, etag_key, idempotent)
                except AttemptFailed as failed:
                    status = failed.error.status if isinstance(failed.error, VTNHTTPError) else None
                    if status not in (401, 403) or not auth or refreshed:
                        raise
                # The token may have been revoked or expired early: get a new one once, without counting a try.
                refreshed = True
                self._token = None

        def count_retry(retry_number: int, delay_s: float, error: Exception) -> None:
            self.counters["retries"] += 1
            log.info("openadr: %s; retry %d in %.2f s", error, retry_number, delay_s)

        def give_up(error: Exception) -> None:
            self._fail("http" if isinstance(error, VTNHTTPError) else "transport", str(error))

        return await retry(
            attempt,
            attempts=1 + (self.config.max_retries if retries is None else retries),
            policy=self._backoff,
            draw=self._rng.random,
            sleep=self._sleep,
            on_retry=count_retry,
            on_give_up=give_up,
        )

    async def _request(
        self,
        method: str,
        url: str,
        params: Sequence[tuple[str, str]],
        body: Any,
        form: Mapping[str, str] | None,
        auth: bool,
        etag_key: str | None,
        idempotent: bool,
    ) -> Any:
        """One try: the parsed answer, or AttemptFailed for an HTTP error status or a transport failure."""
        headers = {}
        if auth:
            headers["Authorization"] = f"Bearer {await self._bearer()}"
        cached = self._etags.get(etag_key) if etag_key else None
        if cached is not None:
            headers["If-None-Match"] = cached[0]
        try:
            async with self.session.request(
                method, url, params=list(params), json=body, data=form, headers=headers
            ) as response:
                text = await response.text()
                status = response.status
                if status == 304 and cached is not None:
                    self.counters["not_modified"] += 1
                    return cached[1]
                if status < 300:
                    answer = self._parse(method, url, text)
                    etag = response.headers.get("ETag")
                    if etag_key and etag:
                        self._etags[etag_key] = (etag, answer)
                    return answer
                retry_after = parse_retry_after(response.headers.get("Retry-After"), self._wall_s())
                raise AttemptFailed(
                    VTNHTTPError(method, url, status, _problem_detail(text)),
                    retryable=retryable_status(status, idempotent=idempotent),
                    retry_after_s=None if retry_after is None else min(retry_after, MAX_BACKOFF_S),
                )
        except aiohttp.ClientConnectorError as exc:
            error = OpenADRError(f"{method} {url}: cannot connect ({exc})")
            raise AttemptFailed(error, retryable=retryable_transport(sent=False, idempotent=idempotent)) from None
        except (aiohttp.ClientError, TimeoutError) as exc:
            kind = "timed out" if isinstance(exc, TimeoutError) else f"failed ({exc})"
            error = OpenADRError(f"{method} {url}: {kind}")
            raise AttemptFailed(error, retryable=retryable_transport(sent=True, idempotent=idempotent)) from None

    def _parse(self, method: str, url: str, text: str) -> Any:
        if not text.strip():
            return None
        try:
            return loads_strict(text)
        except ValueError as exc:
            self._fail("invalid_json", f"{method} {url}: answer is not valid JSON ({exc})")
            raise VTNBadResponse(f"{method} {url}: answer is not valid JSON ({exc})") from None

    # Objects ----------------------------------------------------------------------------------------------

    def accept(self, schema: str, value: Any, what: str) -> dict[str, Any]:
        """`value` as a `schema` object, or OpenADRValidationError (counted)."""
        try:
            self.schemas.validate(schema, value, what)
        except OpenADRValidationError as error:
            self._fail("invalid_object", str(error))
            raise
        if not isinstance(value, dict):  # pragma: no cover - every object schema requires an object
            raise VTNBadResponse(f"{what}: not an object")
        return value

    async def list_objects(self, path: str, schema: str, params: Sequence[tuple[str, str]] = ()) -> ListResult:
        """Every object of a list endpoint, page by page (skip/limit), each page with its own ETag. An object
        that fails validation is left out and reported; a page that is not a list fails the whole call."""
        result = ListResult(objects=[], not_modified=True)
        for page in range(MAX_PAGES):
            page_params = [*params, ("skip", str(page * PAGE_LIMIT)), ("limit", str(PAGE_LIMIT))]
            key = f"{path}?{page_params}"
            before = self.counters["not_modified"]
            items = await self._send("GET", path, params=page_params, etag_key=key)
            result.not_modified &= self.counters["not_modified"] > before
            if not isinstance(items, list):
                self._fail("invalid_object", f"GET {path}: expected a list, got {type(items).__name__}")
                raise VTNBadResponse(f"GET {path}: expected a JSON list")
            for index, item in enumerate(items):
                try:
                    result.objects.append(self.accept(schema, item, f"GET {path} [{page * PAGE_LIMIT + index}]"))
                except OpenADRValidationError as error:
                    result.rejected.append(str(error))
            if len(items) < PAGE_LIMIT:
                return result
        self._fail("invalid_object", f"GET {path}: more than {MAX_PAGES} pages; stopped")
        return result

    async def create(self, path: str, kind: str, body: Mapping[str, Any], answer_schema: str) -> dict[str, Any]:
        """POST a new object of `kind` (validated as the spec's request body) and return the VTN's copy."""
        self.schemas.validate(self.schemas.request_schema(kind), body, f"POST {path} body")
        answer = await self._send("POST", path, body=body)
        return self.accept(answer_schema, answer, f"POST {path} answer")

    async def update(self, path: str, kind: str, body: Mapping[str, Any], answer_schema: str) -> dict[str, Any]:
        self.schemas.validate(self.schemas.request_schema(kind), body, f"PUT {path} body")
        answer = await self._send("PUT", path, body=body)
        return self.accept(answer_schema, answer, f"PUT {path} answer")

    async def delete(self, path: str) -> None:
        await self._send("DELETE", path)


def read_credentials(config: OpenADRConfig) -> tuple[str, str]:
    """The client ID and secret from the environment (read when called, never at import)."""
    client_id = os.environ.get(config.client_id_env, "")
    secret = os.environ.get(config.client_secret_env, "")
    pairs = ((config.client_id_env, client_id), (config.client_secret_env, secret))
    missing = [name for name, value in pairs if not value]
    if missing:
        raise ConfigError(f"openadr: set the environment variable(s) {missing} to the VEN's OAuth2 credentials")
    return client_id, secret
