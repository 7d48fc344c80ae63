"""Shared test helpers: where the real data lives."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent


def shared_data_dir() -> Path:
    """The real data folder: $GRIDSHIFT_SHARED_DATA, else ../shared/data beside the repo."""
    return Path(os.environ.get("GRIDSHIFT_SHARED_DATA", REPO_ROOT.parent / "shared" / "data"))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    path = shared_data_dir()
    if not path.is_dir():
        pytest.skip(f"real data folder {path} is absent (set GRIDSHIFT_SHARED_DATA)")
    return path
