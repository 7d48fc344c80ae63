"""A gateway replica's view of its regions' health: failure counting, the probes that bring a region back (and watch
remote ones), and readiness (every region answering, warmed up at every precision the policy may use)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from serve_apps.backends import BackendError, RegionBackend

logger = logging.getLogger("gridshift.gateway")


@dataclass(frozen=True)
class RegionReadiness:
    ready: bool
    warmed: tuple[str, ...]  # precisions the region's replicas have warmed up
    detail: str | None  # why not ready


@dataclass(frozen=True)
class Readiness:
    """Whether the gateway can serve: a control state, and every region answering, warmed at every precision."""

    ready: bool
    state_version: int | None
    regions: dict[str, RegionReadiness]


@dataclass
class RegionHealth:
    """Failure counting per region: consecutive failures mark it down until a probe succeeds."""

    threshold: int
    failures: dict[str, int] = field(default_factory=dict)
    down: set[str] = field(default_factory=set)

    def failed(self, region: str) -> None:
        self.failures[region] = self.failures.get(region, 0) + 1
        if self.failures[region] >= self.threshold:
            self.down.add(region)

    def succeeded(self, region: str) -> None:
        self.failures[region] = 0
        self.down.discard(region)


async def probe_regions(
    backends: Mapping[str, RegionBackend], health: RegionHealth, regions: Iterable[str], timeout_s: float
) -> None:
    """Probe `regions` concurrently with one tiny request each: a success marks a region healthy, a failure counts
    as one (so a remote cluster that stops answering is marked down before requests fail there)."""
    await asyncio.gather(*(_probe(backends[region], region, health, timeout_s) for region in regions))


async def _probe(backend: RegionBackend, region: str, health: RegionHealth, timeout_s: float) -> None:
    was_down = region in health.down
    try:
        await backend.embed(["probe"], timeout_s)
    except BackendError as error:
        health.failed(region)
        if not was_down and region in health.down:
            logger.warning("region %s failed its health probes (%s): marked down", region, error)
        return
    health.succeeded(region)
    if was_down:
        logger.info("region %s answered a probe: healthy again", region)


async def region_readiness(
    backend: RegionBackend, warm_precisions: tuple[str, ...], timeout_s: float
) -> RegionReadiness:
    """Whether one region answers, warmed up at every precision in `warm_precisions`."""
    try:
        warmed = await backend.ready(timeout_s)
    except BackendError as error:
        return RegionReadiness(False, (), str(error))
    missing = [precision for precision in warm_precisions if precision not in warmed]
    return RegionReadiness(not missing, tuple(warmed), f"not warmed up at {missing}" if missing else None)
