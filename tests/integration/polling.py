"""Polling for integration tests: wait until a condition holds on real processes, with a bound and a message."""

from __future__ import annotations

import time
from collections.abc import Callable


def wait_for(condition: Callable[[], bool], timeout_s: float, what: str, poll_s: float = 0.1) -> float:
    """Poll `condition` until it holds; return the seconds it took. AssertionError naming `what` past `timeout_s`."""
    started = time.monotonic()
    while not condition():
        if time.monotonic() - started > timeout_s:
            raise AssertionError(f"{what}: not within {timeout_s:g} s")
        time.sleep(poll_s)
    return time.monotonic() - started
