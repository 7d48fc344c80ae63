"""A regional replica's admission limit: how many requests run its model at once, real-time work first."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator


class ConcurrencyLimit:
    """An async admission limit whose size can change while requests wait (asyncio.Semaphore cannot), and which
    admits urgent (real-time) requests first: a freed slot goes to a waiting urgent request before any other, so
    when the policy lowers the concurrency knob under stress, real-time work does not queue behind tolerant
    backlog. Among urgent requests, and among the others, the order is the order of arrival."""

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._active = 0
        self._waiting = 0
        self._urgent_waiting = 0
        self._changed = asyncio.Condition()

    @property
    def active(self) -> int:
        return self._active

    @property
    def waiting(self) -> int:
        return self._waiting

    async def set_limit(self, limit: int) -> None:
        async with self._changed:
            self._limit = limit
            self._changed.notify_all()

    @contextlib.asynccontextmanager
    async def slot(self, *, urgent: bool) -> AsyncIterator[None]:
        """Hold one admission slot for the block; an urgent request is admitted ahead of every other waiting one."""
        async with self._changed:
            self._waiting += 1
            self._urgent_waiting += urgent
            try:
                await self._changed.wait_for(
                    lambda: self._active < self._limit and (urgent or self._urgent_waiting == 0)
                )
            finally:
                self._waiting -= 1
                if urgent:
                    # Other requests may have been held only because this one waited (a free slot, or one it
                    # gave up on being cancelled): let them look again.
                    self._urgent_waiting -= 1
                    self._changed.notify_all()
            self._active += 1
        try:
            yield
        finally:
            async with self._changed:
                self._active -= 1
                self._changed.notify_all()
