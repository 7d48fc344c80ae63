"""Test doubles shared by unit tests: a region backend that answers at once (the control plane runs in-process
behind `policies.actors.client.LocalClient`)."""

from __future__ import annotations

import asyncio

import numpy as np

from serve_apps.backends import BackendError, RegionalResult


class FakeRegion:
    """A region backend answering deterministic vectors; can be told to fail."""

    def __init__(self, region: str) -> None:
        self.region = region
        self.failing = False
        self.calls = 0
        self.classes: list[str] = []
        self.warmed: tuple[str, ...] = ("fp32",)
        self.hold: asyncio.Event | None = None

    async def embed(self, texts: list[str], timeout_s: float, workload_class: str = "tolerant") -> RegionalResult:  # noqa: ARG002 - answers at once
        self.calls += 1
        self.classes.append(workload_class)
        if self.hold is not None:  # a slow region: the request stays in flight until the test releases it
            await self.hold.wait()
        if self.failing:
            raise BackendError(f"{self.region}: down")
        vectors = np.array([[len(text), 1.0, 0.0] for text in texts], dtype=np.float32)
        return RegionalResult(self.region, vectors, "fp32", sum(len(t.split()) for t in texts), "fake-model")

    async def ready(self, timeout_s: float) -> list[str]:  # noqa: ARG002 - answers at once
        if self.failing:
            raise BackendError(f"{self.region}: down")
        return list(self.warmed)

    async def close(self) -> None:
        return None
