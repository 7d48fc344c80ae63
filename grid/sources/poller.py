"""The poller: builds each configured source, asks every one for its latest values each poll period and hands
the answers (or the failures) to the SignalStore. Nothing a source does can stop it.

`BackgroundPoller` runs it in a daemon thread with its own event loop, for the (synchronous) control actor.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import Callable, Sequence

from fleet.clock import Clock, FixedClock, WallClock
from fleet.config import FleetConfig
from fleet.errors import SignalSourceError
from fleet.signals import SIGNAL_COLUMNS
from fleet.sources import (
    EiaSourceConfig,
    ElectricityMapsSourceConfig,
    GenericHttpSourceConfig,
    LiveSourceConfig,
    SourceConfig,
    WattTimeSourceConfig,
)
from grid.sources.base import SignalSource
from grid.sources.eia import EiaSource
from grid.sources.electricitymaps import ElectricityMapsSource
from grid.sources.generic import GenericHttpSource
from grid.sources.http import HttpRuntime
from grid.sources.store import SignalStore
from grid.sources.watttime import WattTimeSource

logger = logging.getLogger("gridshift.signals")


def fleet_reads(fleet: FleetConfig) -> tuple[tuple[str, str], ...]:
    """Every (zone, trace column) some region reads, sorted."""
    return tuple(sorted({(region.zone_for(column), column) for region in fleet.regions for column in SIGNAL_COLUMNS}))


def fleet_zones(fleet: FleetConfig) -> tuple[str, ...]:
    """Every zone some region reads some column from, sorted."""
    return tuple(sorted({zone for zone, _ in fleet_reads(fleet)}))


def build_source(config: SourceConfig, zones: tuple[str, ...], runtime: HttpRuntime | None = None) -> SignalSource:
    """The adapter for one source config (`zones`: the fleet's, for sources that default to them)."""
    if isinstance(config, WattTimeSourceConfig):
        return WattTimeSource(config, runtime)
    if isinstance(config, ElectricityMapsSourceConfig):
        return ElectricityMapsSource(config, runtime)
    if isinstance(config, EiaSourceConfig):
        return EiaSource(config, zones, runtime)
    if isinstance(config, GenericHttpSourceConfig):
        return GenericHttpSource(config, runtime)
    raise TypeError(f"no adapter for {type(config).__name__}")  # pragma: no cover - the union is exhaustive


def build_sources(
    live: LiveSourceConfig, zones: tuple[str, ...], runtime: HttpRuntime | None = None
) -> list[SignalSource]:
    return [build_source(config, zones, runtime) for config in live.sources]


class SignalPoller:
    """Polls every source once per `poll_interval_s` on `clock` and feeds `store`."""

    def __init__(self, sources: Sequence[SignalSource], store: SignalStore, clock: Clock, poll_interval_s: float):
        self.sources = list(sources)
        self.store = store
        self.clock = clock
        self.poll_interval_s = poll_interval_s
        for source in self.sources:
            store.register(source.name, source.provider, source.required)

    async def poll_once(self) -> None:
        """Ask every source at once (each keeps to its own rate limit); returns when all have answered or failed."""
        now_s = self.clock.now_s()
        await asyncio.gather(*(self._poll(source, now_s) for source in self.sources))

    async def _poll(self, source: SignalSource, now_s: float) -> None:
        try:
            batch = await source.fetch(now_s)
        except SignalSourceError as error:
            logger.warning("signal source %s failed (%s); keeping its last good values", source.name, error)
            self.store.fail(source.name, error, now_s)
            return
        except Exception as error:
            # An adapter bug must not stop the other sources or the next poll. Its message could quote a request
            # (and so a credential): log the type only.
            logger.error("signal source %s raised %s; keeping its last good values", source.name, type(error).__name__)
            self.store.fail(source.name, SignalSourceError(source.name, "internal", type(error).__name__), now_s)
            return
        accepted = self.store.offer(source.name, batch, now_s)
        if batch.failures or batch.rejections:
            logger.info(
                "signal source %s: %d value(s) accepted, %d rejected, %d call(s) failed",
                source.name,
                accepted,
                len(batch.rejections),
                len(batch.failures),
            )

    async def run(self, stop: asyncio.Event) -> None:
        """Poll until `stop` is set, then close every source."""
        try:
            while not stop.is_set():
                await self.poll_once()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), timeout=self.poll_interval_s)
        finally:
            await self.close()

    async def close(self) -> None:
        for source in self.sources:
            with contextlib.suppress(Exception):
                await source.close()


class BackgroundPoller:
    """A SignalPoller in a daemon thread with its own event loop; `stop` ends it and closes its sessions."""

    def __init__(self, poller: SignalPoller, thread_name: str = "gridshift-signals") -> None:
        self.poller = poller
        self._loop = asyncio.new_event_loop()
        self._stop: asyncio.Event | None = None
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._main, name=thread_name, daemon=True)

    def _main(self) -> None:
        asyncio.set_event_loop(self._loop)

        async def body() -> None:
            self._stop = asyncio.Event()
            self._ready.set()
            await self.poller.run(self._stop)

        try:
            self._loop.run_until_complete(body())
        finally:
            self._loop.close()

    def start(self) -> BackgroundPoller:
        self._thread.start()
        self._ready.wait(timeout=5.0)
        return self

    def stop(self, timeout_s: float = 10.0) -> None:
        stop = self._stop
        if stop is not None and self._thread.is_alive():
            self._loop.call_soon_threadsafe(stop.set)
        self._thread.join(timeout=timeout_s)

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()


def start_background_polling(
    fleet: FleetConfig,
    store: SignalStore | None,
    clock: Clock | None = None,
    runtime: HttpRuntime | None = None,
    build: Callable[[LiveSourceConfig, tuple[str, ...], HttpRuntime | None], list[SignalSource]] = build_sources,
) -> BackgroundPoller | None:
    """For a live fleet, start polling its sources into `store` in the background; None for a trace fleet."""
    live = fleet.signal_source
    if not isinstance(live, LiveSourceConfig) or store is None:
        return None
    sources = build(live, fleet_zones(fleet), runtime)
    poller = SignalPoller(sources, store, clock or WallClock(), live.poll_interval_s)
    return BackgroundPoller(poller).start()


async def probe_once(sources: Sequence[SignalSource], store: SignalStore, now_s: float) -> None:
    """One poll of every source into `store`, then close them (for `gridshift signals check`)."""
    poller = SignalPoller(sources, store, FixedClock(now_s), poll_interval_s=1.0)
    try:
        await poller.poll_once()
    finally:
        await poller.close()
