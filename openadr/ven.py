"""The OpenADR 3 VEN: registers the fleet with a VTN, follows programs and events by polling and by webhook,
turns them into fleet instructions through a FleetPort, and reports capacity and usage back.

The VEN composes its parts, one per role: `registration` (ven_registration.py), `following` (ven_events.py) and
`reporting` (ven_reporting.py), around one VTN client and one callback server. Each step (`register`,
`subscribe`, `poll_once`, `sample_once`, `report_once`, `handle_notification`) can be driven on its own (tests
do); `run` loops them. No step lets a VTN or fleet failure escape: it is logged, counted in the status, and the
last good state is kept.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any

from fleet.clock import Clock
from fleet.config import FleetConfig
from fleet.errors import OpenADRError
from fleet.events import GridSignal
from fleet.openadr import OpenADRConfig
from openadr.client import STAT_KINDS, VTNClient, read_credentials
from openadr.fleet import FleetPort, Instruction
from openadr.mapping import MappingContext
from openadr.schema import SpecSchemas, load_schemas
from openadr.status import (
    EventStatus,
    IntervalStatus,
    ResourceStatus,
    VenStatus,
    default_status_file,
    write_status,
)
from openadr.timing import format_instant
from openadr.ven_events import EventFollower, EventRecord
from openadr.ven_registration import Registration
from openadr.ven_reporting import Reporter
from openadr.webhook import NOTIFY_PATH, CallbackServer, callback_app

log = logging.getLogger(__name__)


def _describe(instruction: Instruction) -> str:
    """One status line: what the fleet was asked, where, and when."""
    if isinstance(instruction, GridSignal):
        level = "-" if instruction.level is None else str(instruction.level)
        what = f"{instruction.kind} {instruction.value:g} {instruction.unit} (level {level})"
        start_s, end_s = instruction.start_s, instruction.end_s
    else:
        parts = [] if instruction.level is None else [f"DR level {instruction.level}"]
        if instruction.power_limit_kw is not None:
            parts.append(f"import limit {instruction.power_limit_kw:.1f} kW")
        what = " and ".join(parts)
        start_s = instruction.start.timestamp()
        end_s = None if instruction.end is None else instruction.end.timestamp()
    until = "until cleared" if end_s is None else f"to {format_instant(end_s)}"
    return f"{what} on {instruction.region} from {format_instant(start_s)} {until}"


class VEN:
    """One VEN for one fleet. Use `async with VEN(...) as ven:` (or start/stop), then `await ven.run(stop)`."""

    def __init__(
        self,
        config: OpenADRConfig,
        capacity_kw: Mapping[str, float],
        port: FleetPort,
        clock: Clock,
        *,
        credentials: tuple[str, str] | None = None,
        schemas: SpecSchemas | None = None,
        status_file: Path | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.config = config
        self.port = port
        self.clock = clock
        self.regions = tuple(capacity_kw)
        self.resource_names = config.resource_names(self.regions)
        self.schemas = schemas or load_schemas(config.spec_version)
        self.client = VTNClient(config, self.schemas, credentials or read_credentials(config), clock, sleep=sleep)
        self.context = MappingContext(
            ven_name=config.ven_name,
            spec_version=config.spec_version,
            resources=self.resource_names,
            capacity_kw=dict(capacity_kw),
            price_levels_usd_per_mwh=config.price_levels_usd_per_mwh,
            ghg_levels_g_per_kwh=config.ghg_levels_g_per_kwh,
            signal_levels_as_events=config.signal_levels_as_events,
        )
        path = config.status_file
        self.status_file = status_file or (Path(path) if path else default_status_file())
        self._webhook_token = secrets.token_urlsafe(32)
        self._server: CallbackServer | None = None
        self.registration = Registration(
            config, self.client, self.regions, self.resource_names, self._webhook_token, self._fail
        )
        self.following = EventFollower(config, self.client, clock, port, self.context, self._fail)
        self.reporting = Reporter(config, self.client, clock, port, self.regions, self.resource_names, self._fail)

    @classmethod
    def for_fleet(cls, fleet: FleetConfig, port: FleetPort, clock: Clock, **kwargs: Any) -> VEN:
        """The VEN a fleet config describes; raises OpenADRError if it has no `openadr` section."""
        if fleet.openadr is None:
            raise OpenADRError(f"fleet {fleet.name!r} has no openadr section")
        return cls(fleet.openadr, {r.name: r.capacity_kw for r in fleet.regions}, port, clock, **kwargs)

    # What tests and the status read most, kept on the VEN itself -------------------------------------------

    @property
    def events(self) -> dict[str, EventRecord]:
        return self.following.events

    @property
    def subscriptions(self) -> dict[str, str]:
        return self.registration.subscriptions

    @property
    def polls(self) -> int:
        return self.following.polls

    @property
    def notifications(self) -> int:
        return self.following.notifications

    # Life cycle -------------------------------------------------------------------------------------------

    async def __aenter__(self) -> VEN:
        await self.start()
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.stop()

    async def start(self) -> None:
        """Open the HTTP session and the callback server (VTN calls come later, in `run` or by hand)."""
        await self.client.__aenter__()
        webhook = self.config.webhook
        if webhook is not None:
            app = callback_app(self._webhook_token, self.schemas, self.handle_notification, self.status, self._count)
            self._server = CallbackServer(app, webhook.host, webhook.port)
            await self._server.start()

    async def stop(self) -> None:
        """Delete our subscriptions (best effort), close the server and the session, write a last status."""
        await self.registration.unsubscribe()
        if self._server is not None:
            await self._server.stop()
            self._server = None
        await self.client.close()
        self.write_status()

    @property
    def webhook_url(self) -> str | None:
        webhook = self.config.webhook
        if webhook is None or self._server is None:
            return None
        base = webhook.public_url or f"http://{webhook.host}:{self._server.port}"
        return base.rstrip("/") + NOTIFY_PATH

    def _count(self, kind: str) -> None:
        self.client.counters[kind] += 1

    def _fail(self, kind: str, error: BaseException) -> None:
        self.client.counters[kind] += 1
        self.client.last_error = f"{type(error).__name__}: {error}"
        log.warning("openadr: %s: %s", kind, error)

    # Steps ------------------------------------------------------------------------------------------------

    async def register(self) -> bool:
        """Find or create this VEN and one resource per region; True once all are registered."""
        try:
            return await self.registration.register()
        finally:
            self.write_status()

    async def subscribe(self) -> None:
        """Make sure the VTN notifies our webhook of event and program changes (see Registration.subscribe)."""
        await self.registration.subscribe(self.webhook_url, self.following.programs)

    async def poll_once(self) -> bool:
        """Read programs and events and bring the fleet in line (see EventFollower.poll_once); True when the VTN
        answered."""
        ok = await self.following.poll_once()
        if self.schemas.version == "3.0.1":
            await self.subscribe()  # a new program needs its own subscription
        self.write_status()
        return ok

    async def handle_notification(self, notification: dict[str, Any]) -> None:
        """React at once to a (validated) webhook notification of an event or program change."""
        await self.following.handle_notification(notification)
        self.write_status()

    async def sample_once(self) -> None:
        """Record each region's power now (stamped with the VEN's clock, the time base of event windows)."""
        await self.reporting.sample_once()

    async def report_once(self) -> None:
        """Send what is due: capacity for newly seen events, usage for report intervals that have closed."""
        async with self.following.lock:
            await self.reporting.report_once(self.following.events)
        self.write_status()

    # Status and loop --------------------------------------------------------------------------------------

    def status(self) -> VenStatus:
        following, registration = self.following, self.registration
        events = []
        for record in following.events.values():
            mapping = record.mapping
            if record.deleted_at_s is not None or mapping is None:
                continue
            events.append(
                EventStatus(
                    event_id=mapping.event_id,
                    program_id=mapping.program_id,
                    event_name=mapping.event_name,
                    modified=record.event.get("modificationDateTime"),
                    regions=list(mapping.regions),
                    intervals=[
                        IntervalStatus(
                            id=w.interval_id,
                            start=format_instant(w.start_s),
                            end=None if w.end_s is None else format_instant(w.end_s),
                        )
                        for w in mapping.windows
                    ],
                    instructions=[
                        _describe(i) for key, i in sorted(following.applied.items()) if key in mapping.instructions
                    ],
                    notes=list(mapping.notes),
                )
            )
        return VenStatus(
            updated_at=format_instant(self.clock.now_s()),
            vtn_url=self.config.vtn_url,
            spec_version=self.schemas.version,
            ven_name=self.config.ven_name,
            ven_id=registration.ven_id,
            registered=registration.registered,
            resources={
                region: ResourceStatus(
                    resource_name=self.resource_names[region], resource_id=registration.resource_ids.get(region)
                )
                for region in self.regions
            },
            webhook_url=self.webhook_url,
            subscriptions=sorted(registration.subscriptions.values()),
            last_poll_at=following.last_poll_at,
            last_poll_ok=following.last_poll_ok,
            polls=following.polls,
            notifications=following.notifications,
            events=events,
            reports=list(self.reporting.reports),
            errors={k: n for k, n in sorted(self.client.counters.items()) if n and k not in STAT_KINDS},
            stats={k: n for k, n in sorted(self.client.counters.items()) if n and k in STAT_KINDS},
            last_error=self.client.last_error,
        )

    def write_status(self) -> None:
        try:
            write_status(self.status(), self.status_file)
        except OSError as error:
            self._fail("status_file", error)

    async def run(self, stop: asyncio.Event) -> None:
        """Register, subscribe and poll until `stop` is set; sample power and send reports alongside."""
        await asyncio.gather(self._poll_loop(stop), self._sample_loop(stop))

    async def _poll_loop(self, stop: asyncio.Event) -> None:
        poll_now = self.following.poll_now
        while not stop.is_set():
            await self._guarded(self._poll_step)
            poll_now.clear()
            waits = [asyncio.ensure_future(stop.wait()), asyncio.ensure_future(poll_now.wait())]
            try:
                await asyncio.wait(waits, timeout=self.config.poll_interval_s, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for waiter in waits:
                    waiter.cancel()

    async def _poll_step(self) -> None:
        if not self.registration.registered:
            await self.register()
        await self.poll_once()
        await self.subscribe()

    async def _sample_loop(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            await self._guarded(self.sample_once)
            await self._guarded(self.report_once)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=self.config.sample_period_s)

    async def _guarded(self, step: Callable[[], Awaitable[object]]) -> None:
        try:
            await step()
        except Exception as error:  # a bug or a surprise must not end the VEN: count it and go on
            log.exception("openadr: %s failed", getattr(step, "__name__", step))
            self._fail("internal", error)
