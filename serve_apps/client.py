"""Python client for application developers: embeddings through gridshift, with the routing answer exposed.

Sync (`GridshiftClient`, standard library only) and async (`AsyncGridshiftClient`, aiohttp) over the same
HTTP API, so an app can ask for a class and budget and see where its request ran and why.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import aiohttp


class GridshiftClientError(Exception):
    """The gateway answered with an error; carries the status and the server's message."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"HTTP {status}: {message}")
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


def _headers(workload_class: str | None, budget_ms: float | None, origin: str | None) -> dict[str, str]:
    headers = {"Content-Type": "application/json"}
    if workload_class is not None:
        headers["X-Gridshift-Class"] = workload_class
    if budget_ms is not None:
        headers["X-Gridshift-Latency-Budget-Ms"] = f"{budget_ms:g}"
    if origin is not None:
        headers["X-Gridshift-Origin"] = origin
    return headers


def _payload(texts: str | Sequence[str], model: str) -> dict[str, Any]:
    return {"input": texts if isinstance(texts, str) else list(texts), "model": model}


def _result(body: Mapping[str, Any], headers: Mapping[str, str]) -> EmbeddingResult:
    rows = sorted(body["data"], key=lambda row: row["index"])
    return EmbeddingResult(
        embeddings=[list(row["embedding"]) for row in rows],
        model=str(body.get("model", "")),
        prompt_tokens=int(body.get("usage", {}).get("prompt_tokens", 0)),
        routing=Routing.from_headers(headers),
    )


def _error_message(raw: bytes) -> str:
    try:
        return str(json.loads(raw)["error"]["message"])
    except (ValueError, KeyError, TypeError):
        return raw[:500].decode(errors="replace")


class GridshiftClient:
    """Blocking client (standard library only)."""

    def __init__(self, base_url: str = "http://127.0.0.1:8000", timeout_s: float = 30.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout_s = timeout_s

    def embed(
        self,
        texts: str | Sequence[str],
        *,
        workload_class: str | None = None,
        budget_ms: float | None = None,
        origin: str | None = None,
        model: str = "all-MiniLM-L6-v2",
    ) -> EmbeddingResult:
        request = urllib.request.Request(
            f"{self.base_url}/v1/embeddings",
            data=json.dumps(_payload(texts, model)).encode(),
            headers=_headers(workload_class, budget_ms, origin),
            method="POST",
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
                return _result(json.loads(response.read()), dict(response.headers))
        except urllib.error.HTTPError as error:
            raise GridshiftClientError(error.code, _error_message(error.read())) from None

    def regions(self) -> dict[str, Any]:
        return self._call("GET", "/v1/regions")

    # Batch jobs (admin calls need the token) ------------------------------------------------------------

    def submit_job(self, spec: Mapping[str, Any], admin_token: str) -> dict[str, Any]:
        return self._call("POST", "/v1/batch/jobs", spec, admin_token)

    def jobs(self) -> list[dict[str, Any]]:
        jobs: list[dict[str, Any]] = self._call("GET", "/v1/batch/jobs")["jobs"]
        return jobs

    def job(self, job_id: str) -> dict[str, Any]:
        return self._call("GET", f"/v1/batch/jobs/{urllib.parse.quote(job_id)}")

    def pause_job(self, job_id: str, admin_token: str) -> dict[str, Any]:
        return self._call("POST", f"/v1/batch/jobs/{urllib.parse.quote(job_id)}/pause", None, admin_token)

    def resume_job(self, job_id: str, admin_token: str) -> dict[str, Any]:
        return self._call("POST", f"/v1/batch/jobs/{urllib.parse.quote(job_id)}/resume", None, admin_token)

    def _call(
        self, method: str, path: str, body: Mapping[str, Any] | None = None, admin_token: str | None = None
    ) -> dict[str, Any]:
        headers = {"Content-Type": "application/json"}
        if admin_token is not None:
            headers["Authorization"] = f"Bearer {admin_token}"
        request = urllib.request.Request(
            f"{self.base_url}{path}",
            data=None if body is None else json.dumps(body).encode(),
            headers=headers,
            method=method,
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
                answer: dict[str, Any] = json.loads(response.read())
                return answer
        except urllib.error.HTTPError as error:
            raise GridshiftClientError(error.code, _error_message(error.read())) from None


class AsyncGridshiftClient:
    """asyncio client over one pooled aiohttp session; use `async with`."""

    def __init__(self, base_url: str = "http://127.0.0.1:8000", timeout_s: float = 30.0) -> None:
        self.base_url = base_url.rstrip("/")
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> AsyncGridshiftClient:
        self._session = aiohttp.ClientSession(timeout=self._timeout)
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=self._timeout)
        return self._session

    async def embed(
        self,
        texts: str | Sequence[str],
        *,
        workload_class: str | None = None,
        budget_ms: float | None = None,
        origin: str | None = None,
        model: str = "all-MiniLM-L6-v2",
    ) -> EmbeddingResult:
        async with self._client().post(
            f"{self.base_url}/v1/embeddings",
            json=_payload(texts, model),
            headers=_headers(workload_class, budget_ms, origin),
        ) as response:
            raw = await response.read()
            if response.status != 200:
                raise GridshiftClientError(response.status, _error_message(raw))
            return _result(json.loads(raw), dict(response.headers))

    async def regions(self) -> dict[str, Any]:
        async with self._client().get(f"{self.base_url}/v1/regions") as response:
            body: dict[str, Any] = json.loads(await response.read())
            return body
