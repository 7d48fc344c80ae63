"""Python client for application developers: embeddings through gridshift, with the routing answer exposed.

Sync (`GridshiftClient`) and async (`AsyncGridshiftClient`) over one HTTP stack (httpx), each with one pooled
connection per host kept across calls, and retries with jittered back-off when the gateway says to come back
(503 while it starts or every region is full, 429), honouring its Retry-After (fleet/retry.py).
"""

from __future__ import annotations

import asyncio
import json
import random
import time
import urllib.parse
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import httpx

from fleet.retry import Backoff, parse_retry_after, retry_delay_s, retryable_status, retryable_transport

DEFAULT_URL = "http://127.0.0.1:8000"
RETRY_BACKOFF = Backoff(backoff_initial_s=0.25, backoff_multiplier=2.0, backoff_max_s=4.0, jitter_fraction=0.5)


class GridshiftClientError(Exception):
    """The gateway answered with an error, or could not be reached (status 0); carries the server's message."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"HTTP {status}: {message}" if status else message)
        self.status = status
        self.message = message


@dataclass(frozen=True)
class Routing:
    """Where a request was served and why (the X-Gridshift-* answer headers)."""

    region: str
    reason: str
    headroom: float
    precision: str
    state_version: int

    @classmethod
    def from_headers(cls, headers: Mapping[str, str]) -> Routing:
        lower = {key.lower(): value for key, value in headers.items()}
        return cls(
            region=lower.get("x-gridshift-region", ""),
            reason=lower.get("x-gridshift-reason", ""),
            headroom=float(lower.get("x-gridshift-headroom", "nan")),
            precision=lower.get("x-gridshift-precision", ""),
            state_version=int(lower.get("x-gridshift-state-version", "-1")),
        )


@dataclass(frozen=True)
class EmbeddingResult:
    embeddings: list[list[float]]
    model: str
    prompt_tokens: int
    routing: Routing


@dataclass(frozen=True)
class _Call:
    """One API call, independent of the HTTP stack that sends it."""

    method: str
    path: str
    body: Any = None
    headers: Mapping[str, str] | None = None
    idempotent: bool = True  # safe to send twice: reads and embeddings; not job submissions


def _embed_call(
    texts: str | Sequence[str], model: str, workload_class: str | None, budget_ms: float | None, origin: str | None
) -> _Call:
    headers: dict[str, str] = {}
    if workload_class is not None:
        headers["X-Gridshift-Class"] = workload_class
    if budget_ms is not None:
        headers["X-Gridshift-Latency-Budget-Ms"] = f"{budget_ms:g}"
    if origin is not None:
        headers["X-Gridshift-Origin"] = origin
    body = {"input": texts if isinstance(texts, str) else list(texts), "model": model}
    return _Call("POST", "/v1/embeddings", body, headers)


def _admin(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _job_path(job_id: str, action: str = "") -> str:
    return f"/v1/batch/jobs/{urllib.parse.quote(job_id, safe='')}" + (f"/{action}" if action else "")


_TRAINING_PATH = "/v1/training/jobs"


def _training_path(job_id: str, action: str = "") -> str:
    return f"{_TRAINING_PATH}/{urllib.parse.quote(job_id, safe='')}" + (f"/{action}" if action else "")


def _result(response: httpx.Response) -> EmbeddingResult:
    body = response.json()
    rows = sorted(body["data"], key=lambda row: row["index"])
    return EmbeddingResult(
        embeddings=[list(row["embedding"]) for row in rows],
        model=str(body.get("model", "")),
        prompt_tokens=int(body.get("usage", {}).get("prompt_tokens", 0)),
        routing=Routing.from_headers(response.headers),
    )


def _error(response: httpx.Response) -> GridshiftClientError:
    try:
        message = str(json.loads(response.content)["error"]["message"])
    except (ValueError, KeyError, TypeError):
        message = response.content[:500].decode(errors="replace")
    return GridshiftClientError(response.status_code, message)


class _Retries:
    """When to try a call again, and after how long: the one rule both clients follow."""

    def __init__(self, attempts: int, rng: random.Random | None) -> None:
        if attempts < 1:
            raise ValueError(f"attempts must be at least 1, got {attempts}")
        self.attempts = attempts
        self._rng = rng or random.Random()

    def next_delay(self, index: int, call: _Call, outcome: httpx.Response | httpx.TransportError) -> float | None:
        """Seconds to wait before trying again, or None: the outcome stands (success, or a final error)."""
        if index + 1 >= self.attempts:
            return None
        if isinstance(outcome, httpx.TransportError):
            sent = not isinstance(outcome, httpx.ConnectError)
            if not retryable_transport(sent=sent, idempotent=call.idempotent):
                return None
            return retry_delay_s(index, RETRY_BACKOFF, self._rng.random(), None)
        # Only "come back later" answers are retried: any other error would only repeat.
        if outcome.status_code not in (429, 503) or not retryable_status(
            outcome.status_code, idempotent=call.idempotent
        ):
            return None
        retry_after = parse_retry_after(outcome.headers.get("Retry-After"), time.time())
        return retry_delay_s(index, RETRY_BACKOFF, self._rng.random(), retry_after)

    @staticmethod
    def result(outcome: httpx.Response | httpx.TransportError, base_url: str) -> httpx.Response:
        """The final outcome as the caller sees it: the response, or GridshiftClientError."""
        if isinstance(outcome, httpx.TransportError):
            raise GridshiftClientError(0, f"cannot reach {base_url}: {outcome}") from outcome
        if outcome.status_code >= 400:
            raise _error(outcome)
        return outcome


class GridshiftClient:
    """Blocking client; one pooled connection per host, reused across calls. Close it, or use `with`."""

    def __init__(
        self,
        base_url: str = DEFAULT_URL,
        timeout_s: float = 30.0,
        *,
        attempts: int = 4,
        rng: random.Random | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._http = httpx.Client(base_url=self.base_url, timeout=timeout_s, transport=transport)
        self._retries = _Retries(attempts, rng)

    def __enter__(self) -> GridshiftClient:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def _send(self, call: _Call) -> httpx.Response:
        outcome: httpx.Response | httpx.TransportError
        for index in range(self._retries.attempts):
            try:
                outcome = self._http.request(call.method, call.path, json=call.body, headers=call.headers)
            except httpx.TransportError as error:
                outcome = error
            delay = self._retries.next_delay(index, call, outcome)
            if delay is None:
                break
            time.sleep(delay)
        return self._retries.result(outcome, self.base_url)

    def _json(self, call: _Call) -> dict[str, Any]:
        body: dict[str, Any] = self._send(call).json()
        return body

    def embed(
        self,
        texts: str | Sequence[str],
        *,
        workload_class: str | None = None,
        budget_ms: float | None = None,
        origin: str | None = None,
        model: str = "all-MiniLM-L6-v2",
    ) -> EmbeddingResult:
        return _result(self._send(_embed_call(texts, model, workload_class, budget_ms, origin)))

    def regions(self) -> dict[str, Any]:
        return self._json(_Call("GET", "/v1/regions"))

    def ready(self) -> bool:
        """Whether the gateway is ready to serve (GET /readyz), asked once, without retrying."""
        try:
            return self._http.get("/readyz").status_code == 200
        except httpx.TransportError:
            return False

    # Batch jobs (admin calls need the token) ------------------------------------------------------------

    def submit_job(self, spec: Mapping[str, Any], admin_token: str) -> dict[str, Any]:
        return self._json(_Call("POST", "/v1/batch/jobs", dict(spec), _admin(admin_token), idempotent=False))

    def jobs(self) -> list[dict[str, Any]]:
        jobs: list[dict[str, Any]] = self._json(_Call("GET", "/v1/batch/jobs"))["jobs"]
        return jobs

    def job(self, job_id: str) -> dict[str, Any]:
        return self._json(_Call("GET", _job_path(job_id)))

    def pause_job(self, job_id: str, admin_token: str) -> dict[str, Any]:
        return self._json(_Call("POST", _job_path(job_id, "pause"), None, _admin(admin_token)))

    def resume_job(self, job_id: str, admin_token: str) -> dict[str, Any]:
        return self._json(_Call("POST", _job_path(job_id, "resume"), None, _admin(admin_token)))

    # Training jobs (admin calls need the token) ---------------------------------------------------------

    def submit_training(self, spec: Mapping[str, Any], admin_token: str) -> dict[str, Any]:
        return self._json(_Call("POST", _TRAINING_PATH, dict(spec), _admin(admin_token), idempotent=False))

    def training_jobs(self) -> list[dict[str, Any]]:
        jobs: list[dict[str, Any]] = self._json(_Call("GET", _TRAINING_PATH))["jobs"]
        return jobs

    def training_job(self, job_id: str) -> dict[str, Any]:
        return self._json(_Call("GET", _training_path(job_id)))

    def control_training(self, job_id: str, action: str, admin_token: str) -> dict[str, Any]:
        """`action`: pause or resume."""
        return self._json(_Call("POST", _training_path(job_id, action), None, _admin(admin_token)))


class AsyncGridshiftClient:
    """asyncio client over one pooled httpx.AsyncClient; use `async with`, or close it."""

    def __init__(
        self,
        base_url: str = DEFAULT_URL,
        timeout_s: float = 30.0,
        *,
        attempts: int = 4,
        rng: random.Random | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._http = httpx.AsyncClient(base_url=self.base_url, timeout=timeout_s, transport=transport)
        self._retries = _Retries(attempts, rng)

    async def __aenter__(self) -> AsyncGridshiftClient:
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        await self._http.aclose()

    async def _send(self, call: _Call) -> httpx.Response:
        outcome: httpx.Response | httpx.TransportError
        for index in range(self._retries.attempts):
            try:
                outcome = await self._http.request(call.method, call.path, json=call.body, headers=call.headers)
            except httpx.TransportError as error:
                outcome = error
            delay = self._retries.next_delay(index, call, outcome)
            if delay is None:
                break
            await asyncio.sleep(delay)
        return self._retries.result(outcome, self.base_url)

    async def embed(
        self,
        texts: str | Sequence[str],
        *,
        workload_class: str | None = None,
        budget_ms: float | None = None,
        origin: str | None = None,
        model: str = "all-MiniLM-L6-v2",
    ) -> EmbeddingResult:
        return _result(await self._send(_embed_call(texts, model, workload_class, budget_ms, origin)))

    async def regions(self) -> dict[str, Any]:
        body: dict[str, Any] = (await self._send(_Call("GET", "/v1/regions"))).json()
        return body
