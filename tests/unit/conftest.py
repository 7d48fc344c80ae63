"""Unit tests run without Ray: starting it here is a bug, so ray.init raises."""

from __future__ import annotations

from collections.abc import Iterator

import pytest


@pytest.fixture(autouse=True)
def _forbid_ray_init(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    try:
        import ray
    except ImportError:  # pragma: no cover - ray is a hard dependency, but unit tests must not need it
        yield
        return

    def _refuse(*_args: object, **_kwargs: object) -> None:
        raise RuntimeError("unit tests must not start Ray; move this test to tests/integration")

    monkeypatch.setattr(ray, "init", _refuse)
    yield
