"""Regional model app: one Ray Serve deployment per region serving embeddings with dynamic batching and live knobs."""

from __future__ import annotations

import asyncio
import os
import time
from typing import Any

import numpy as np
import numpy.typing as npt
from ray import serve

from router.config import Knobs, Precision
from serve_apps.backends import RegionalResult

# Serve's own cap on requests queued at one replica; the live concurrency knob admits fewer at once.
MAX_ONGOING_REQUESTS = 512


class ConcurrencyLimit:
    """An async admission limit whose size can change while requests wait (asyncio.Semaphore cannot)."""

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._active = 0
        self._changed = asyncio.Condition()

    @property
    def active(self) -> int:
        return self._active

    async def set_limit(self, limit: int) -> None:
        async with self._changed:
            self._limit = limit
            self._changed.notify_all()

    async def __aenter__(self) -> None:
        async with self._changed:
            await self._changed.wait_for(lambda: self._active < self._limit)
            self._active += 1

    async def __aexit__(self, *_exc: object) -> None:
        async with self._changed:
            self._active -= 1
            self._changed.notify_all()


class RegionalModel:
    """The model behind one region's deployment. Knobs change live through `reconfigure` (Serve's
    user_config, which reaches every replica without a restart) or `set_knobs` (one replica)."""

    def __init__(
        self,
        region: str,
        model_import_path: str,
        model_kwargs: dict[str, Any],
        model_name: str,
        batch_wait_timeout_s: float,
        torch_threads: int,
    ) -> None:
        # Imported here so that importing this module (e.g. to build the app) does not load torch.
        from serve_apps.embedding import load_embedder

        self.region = region
        self.model_name = model_name
        self._embedder = load_embedder(model_import_path, {**model_kwargs, "torch_threads": torch_threads})
        self._knobs = Knobs()
        self._limit = ConcurrencyLimit(self._knobs.max_concurrency)
        self._batch_wait_timeout_s = batch_wait_timeout_s
        self._served = 0
        self._batches = 0
        self._batched_requests = 0
        self._started_s = time.time()
        self._apply_batching()

    def _apply_batching(self) -> None:
        # serve.batch wraps the method in an object with these setters; its type stubs do not declare them.
        self._embed_batch.set_max_batch_size(self._knobs.max_batch_size)  # type: ignore[attr-defined]
        self._embed_batch.set_batch_wait_timeout_s(self._batch_wait_timeout_s)  # type: ignore[attr-defined]

    async def reconfigure(self, user_config: dict[str, Any]) -> None:
        await self.set_knobs(user_config)

    async def set_knobs(self, knobs: dict[str, Any]) -> dict[str, Any]:
        """Apply new knobs (validated); returns them. No restart: the next batch uses them."""
        self._knobs = Knobs.model_validate(knobs)
        self._apply_batching()
        await self._limit.set_limit(self._knobs.max_concurrency)
        return self._knobs.model_dump(mode="json")

    @serve.batch(max_batch_size=16, batch_wait_timeout_s=0.005)
    async def _embed_batch(self, requests: list[list[str]]) -> list[tuple[npt.NDArray[np.float32], str]]:
        precision = Precision(self._knobs.precision)
        texts = [text for request in requests for text in request]
        # The model runs in a worker thread so the replica's event loop keeps admitting requests.
        vectors = await asyncio.to_thread(self._embedder.embed, texts, precision)
        self._batches += 1
        self._batched_requests += len(requests)
        results = []
        offset = 0
        for request in requests:
            results.append((vectors[offset : offset + len(request)], precision.value))
            offset += len(request)
        return results

    async def embed(self, texts: list[str]) -> RegionalResult:
        async with self._limit:
            vectors, precision = await self._embed_batch(texts)
        self._served += 1
        return RegionalResult(
            region=self.region,
            embeddings=vectors,
            precision=precision,
            prompt_tokens=self._embedder.count_tokens(texts),
            model=self.model_name,
        )

    def stats(self) -> dict[str, Any]:
        """Load and knobs of this replica, for the control state and operators."""
        return {
            "region": self.region,
            "pid": os.getpid(),
            "knobs": self._knobs.model_dump(mode="json"),
            "in_flight": self._limit.active,
            "served": self._served,
            "batches": self._batches,
            "mean_batch_occupancy": (self._batched_requests / self._batches) if self._batches else 0.0,
            "uptime_s": time.time() - self._started_s,
        }


RegionalApp = serve.deployment(max_ongoing_requests=MAX_ONGOING_REQUESTS, health_check_period_s=2)(RegionalModel)
