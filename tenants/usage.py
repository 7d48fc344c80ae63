"""The usage recorder: buffers each replica's usage records and writes them in batches, idempotently.

Records are keyed by request id, so a batch written twice (a flush that failed after the commit) or a request
retried through another replica counts once. While the database is unreachable the records stay buffered, up to
a bound, and are written when it returns; `full` tells the gateway to stop serving tenants rather than lose any.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from typing import Protocol

from tenants.store import UsageRecord

logger = logging.getLogger("gridshift.usage")

BATCH_MAX = 500


class UsageSink(Protocol):
    def record_usage(self, records: Sequence[UsageRecord]) -> None: ...


class UsageRecorder:
    """Buffered, batched, idempotent usage writes for one gateway replica."""

    def __init__(self, sink: UsageSink, flush_s: float, max_buffered: int) -> None:
        self._sink = sink
        self._flush_s = flush_s
        self._max_buffered = max_buffered
        self._pending: dict[str, UsageRecord] = {}  # by request id, in arrival order
        self._task: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()
        self.failing = False  # the last write failed: the database is unreachable
        self.written = 0

    @property
    def buffered(self) -> int:
        return len(self._pending)

    @property
    def full(self) -> bool:
        return len(self._pending) >= self._max_buffered

    def add(self, record: UsageRecord) -> None:
        self._pending[record.request_id] = record

    async def flush(self) -> bool:
        """Write what is buffered, a batch at a time. False when the database refused (the records stay)."""
        async with self._lock:
            while self._pending:
                batch = list(self._pending.values())[:BATCH_MAX]
                try:
                    await asyncio.to_thread(self._sink.record_usage, batch)
                except Exception as error:  # any driver error: keep the records, try again next period
                    if not self.failing:
                        logger.warning(
                            "usage not written (%s: %s); %d record(s) buffered until the database returns",
                            type(error).__name__,
                            error,
                            len(self._pending),
                        )
                    self.failing = True
                    return False
                for record in batch:
                    self._pending.pop(record.request_id, None)
                self.written += len(batch)
                if self.failing:
                    logger.info("usage database back: buffered records written")
                self.failing = False
            return True

    async def _flush_forever(self) -> None:
        while True:
            await asyncio.sleep(self._flush_s)
            await self.flush()

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._flush_forever())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if not await self.flush():
            logger.error("stopping with %d usage record(s) the database did not take", len(self._pending))
