"""The one interface every signal source implements, and what every HTTP adapter shares: its pooled client, its
zone mapping, and one call per provider code."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Protocol

from fleet.errors import SignalSourceError
from fleet.sources import HttpPolicyConfig
from grid.readings import SourceBatch
from grid.sources.http import HttpClient, HttpRuntime
from grid.sources.parse import PayloadError


class SignalSource(Protocol):
    """A feed of grid signals. `fetch` raises `SignalSourceError` when it got nothing usable at all."""

    @property
    def name(self) -> str: ...

    @property
    def provider(self) -> str: ...

    @property
    def required(self) -> bool: ...

    async def fetch(self, now_s: float) -> SourceBatch:
        """The source's latest values as of `now_s` (epoch s on the control clock)."""
        ...

    async def close(self) -> None:
        """Release connections; the source may not be used afterwards."""
        ...


class HttpSource:
    """Base of the HTTP adapters. Subclasses implement `fetch` (see `SignalSource`)."""

    def __init__(
        self,
        name: str,
        provider: str,
        required: bool,
        zones: Mapping[str, str],
        policy: HttpPolicyConfig,
        runtime: HttpRuntime | None = None,
    ) -> None:
        self._name = name
        self._provider = provider
        self._required = required
        self.zones = dict(zones)
        self.http = HttpClient(name, policy, runtime)

    @property
    def name(self) -> str:
        return self._name

    @property
    def provider(self) -> str:
        return self._provider

    @property
    def required(self) -> bool:
        return self._required

    async def close(self) -> None:
        await self.http.close()

    def codes(self) -> dict[str, tuple[str, ...]]:
        """Provider code -> the gridshift zones it feeds: zones that share a code cost one call, not several."""
        grouped: dict[str, list[str]] = {}
        for zone, code in sorted(self.zones.items()):
            grouped.setdefault(code, []).append(zone)
        return {code: tuple(zones) for code, zones in grouped.items()}

    def bad_payload(self, error: PayloadError, where: str) -> SignalSourceError:
        return SignalSourceError(self._name, "bad_payload", self.http.redact(f"{where}: {error}"))

    async def per_code(self, fetch_one: Callable[[str, tuple[str, ...]], Awaitable[SourceBatch]]) -> SourceBatch:
        """One call per provider code, merged; calls that fail are listed as partial failures, and only when
        every call failed does the fetch fail (with the first error)."""
        parts: list[SourceBatch] = []
        failures: list[SignalSourceError] = []
        for code, zones in self.codes().items():
            try:
                parts.append(await fetch_one(code, zones))
            except SignalSourceError as error:
                failures.append(error)
        if failures and not parts:
            first = failures[0]
            more = f" (and {len(failures) - 1} more call(s) failed)" if len(failures) > 1 else ""
            raise SignalSourceError(self._name, first.kind, first.detail + more)
        return merge_batches(parts, tuple(str(error) for error in failures))


def merge_batches(parts: list[SourceBatch], failures: tuple[str, ...] = ()) -> SourceBatch:
    return SourceBatch(
        readings=tuple(r for part in parts for r in part.readings),
        rejections=tuple(r for part in parts for r in part.rejections),
        forecasts=tuple(f for part in parts for f in part.forecasts),
        failures=tuple(f for part in parts for f in part.failures) + failures,
    )
