"""Region backends: how the gateway reaches a region, in this cluster (deployment handle) or another (HTTP)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any, Protocol

import aiohttp
import numpy as np
import numpy.typing as npt


@dataclass(frozen=True)
class RegionalResult:
    """What a region answers for one request."""

    region: str
    embeddings: npt.NDArray[np.float32]
    precision: str
    prompt_tokens: int
    model: str


class BackendError(Exception):
    """A region failed to answer (error, timeout, bad response). The gateway fails over to the next region."""


class RegionBackend(Protocol):
    region: str

    async def embed(self, texts: list[str], timeout_s: float, workload_class: str = "tolerant") -> RegionalResult:
        """Embed `texts` for work of `workload_class` (the region's knobs may run classes at different precisions)."""
        ...

    async def ready(self, timeout_s: float) -> list[str]:
        """The precisions the region's replicas have warmed up; BackendError while it cannot serve yet."""
        ...

    async def close(self) -> None: ...


class HandleBackend:
    """A region served by a deployment in this Ray cluster."""

    def __init__(self, region: str, handle: Any) -> None:
        self.region = region
        self._handle = handle

    async def embed(self, texts: list[str], timeout_s: float, workload_class: str = "tolerant") -> RegionalResult:
        result: RegionalResult = await self._call(self._handle.embed.remote(texts, workload_class), timeout_s)
        return result

    async def ready(self, timeout_s: float) -> list[str]:
        # Serve routes only to replicas whose constructor (the warm-up) has finished, so any answer is a warm one.
        warmed: list[str] = await self._call(self._handle.readiness.remote(), timeout_s)
        return warmed

    async def _call(self, response: Any, timeout_s: float) -> Any:
        try:
            return await asyncio.wait_for(response, timeout_s)
        except TimeoutError:
            response.cancel()
            raise BackendError(f"{self.region}: no answer within {timeout_s:.2f} s") from None
        except asyncio.CancelledError:
            raise
        except Exception as error:  # a dead replica or actor surfaces as many Ray exception types
            raise BackendError(f"{self.region}: {type(error).__name__}: {error}") from error

    async def close(self) -> None:
        return None


class HttpBackend:
    """A region served by another cluster's OpenAI-compatible endpoint (a gridshift gateway or Serve app).

    It asks the remote side to serve in place (class realtime, origin = this region), so a remote gridshift
    does not route the request onward a second time.
    """

    def __init__(self, region: str, base_url: str) -> None:
        self.region = region
        self._url = base_url.rstrip("/") + "/v1/embeddings"
        self._ready_url = base_url.rstrip("/") + "/readyz"
        self._session: aiohttp.ClientSession | None = None

    def _client(self) -> aiohttp.ClientSession:
        # Created lazily inside the running loop; one pooled session per backend, reused for every request.
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=64))
        return self._session

    async def embed(self, texts: list[str], timeout_s: float, workload_class: str = "tolerant") -> RegionalResult:
        # Always asked as real-time work at its own origin, so it is served there; the remote's own knobs for
        # real-time work then decide its precision, whatever `workload_class` the request had here.
        del workload_class
        headers = {"X-Gridshift-Class": "realtime", "X-Gridshift-Origin": self.region}
        try:
            async with self._client().post(
                self._url,
                json={"input": texts, "model": "default"},
                headers=headers,
                timeout=aiohttp.ClientTimeout(total=timeout_s),
            ) as response:
                if response.status != 200:
                    raise BackendError(f"{self.region}: HTTP {response.status} from {self._url}")
                body = await response.json()
                precision = response.headers.get("X-Gridshift-Precision", "unknown")
        except (aiohttp.ClientError, TimeoutError, ValueError) as error:
            raise BackendError(f"{self.region}: {type(error).__name__}: {error}") from error
        try:
            rows = sorted(body["data"], key=lambda item: item["index"])
            vectors = np.asarray([row["embedding"] for row in rows], dtype=np.float32)
            tokens = int(body.get("usage", {}).get("prompt_tokens", 0))
            model = str(body.get("model", ""))
        except (KeyError, TypeError, ValueError) as error:
            raise BackendError(f"{self.region}: malformed response from {self._url}: {error}") from error
        if len(vectors) != len(texts):
            raise BackendError(f"{self.region}: {len(vectors)} embeddings for {len(texts)} inputs")
        return RegionalResult(self.region, vectors, precision, tokens, model)

    async def ready(self, timeout_s: float) -> list[str]:
        # The remote cluster's own gateway says when it is ready, and what its replicas of this region warmed.
        try:
            async with self._client().get(self._ready_url, timeout=aiohttp.ClientTimeout(total=timeout_s)) as response:
                if response.status != 200:
                    raise BackendError(f"{self.region}: {self._ready_url} answered HTTP {response.status}: not ready")
                body = await response.json()
        except (aiohttp.ClientError, TimeoutError, ValueError) as error:
            raise BackendError(f"{self.region}: {type(error).__name__}: {error}") from error
        try:
            return [str(precision) for precision in body["regions"][self.region]["warmed"]]
        except (KeyError, TypeError) as error:
            raise BackendError(f"{self.region}: {self._ready_url} does not list region {self.region}") from error

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
