"""The OpenADR 3 VEN: registers the fleet with a VTN, follows programs and events by polling and by webhook,
turns them into fleet instructions through a FleetPort, and reports capacity and usage back.

Each step (`register`, `subscribe`, `poll_once`, `sample_once`, `report_once`, `handle_notification`) can be
driven on its own (tests do); `run` loops them. No step lets a VTN or fleet failure escape: it is logged,
counted in the status, and the last good state is kept.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import math
import secrets
from collections import deque
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fleet.clock import Clock
from fleet.config import FleetConfig
from fleet.errors import OpenADRError
from fleet.events import GridSignal
from fleet.openadr import OpenADRConfig
from openadr.client import STAT_KINDS, VTNClient, read_credentials
from openadr.fleet import (
    FleetPort,
    Instruction,
    PowerReading,
    apply_instruction,
    clear_instruction,
    instruction_id,
    plan_changes,
)
from openadr.mapping import EventMapping, MappingContext, desired_instructions, map_event
from openadr.reports import (
    AGGREGATED_REPORT,
    aggregate_readings,
    capacity_resources,
    report_body,
    report_windows,
    requested_usage,
    usage_intervals,
)
from openadr.schema import SpecSchemas, load_schemas
from openadr.status import (
    EventStatus,
    IntervalStatus,
    ReportStatus,
    ResourceStatus,
    VenStatus,
    default_status_file,
    write_status,
)
from openadr.timing import format_instant, parse_instant
from openadr.webhook import NOTIFY_PATH, CallbackServer, callback_app

log = logging.getLogger(__name__)

MAX_SAMPLES = 20_000  # per region: about two days at one sample every 10 s
MAX_REPORTS_SHOWN = 20
CAPACITY_ATTEMPTS = 3
DELETE_OPERATIONS = frozenset({"DELETE"})
UPSERT_OPERATIONS = frozenset({"CREATE", "UPDATE", "POST", "PUT"})  # 3.1.0 names, then 3.0.1's


@dataclass
class _EventRecord:
    event: dict[str, Any]
    first_seen_s: float
    seen_seq: int
    mapping: EventMapping | None = None
    deleted_at_s: float | None = None
    deleted_seq: int | None = None
    capacity_sent: bool = False
    capacity_attempts: int = 0
    usage_report_id: str | None = None
    usage_windows_sent: int = 0

    @property
    def program_id(self) -> str:
        return str(self.event.get("programID") or "")

    @property
    def modified_s(self) -> float:
        stamp = self.event.get("modificationDateTime")
        try:
            return parse_instant(stamp, 0.0) if isinstance(stamp, str) else 0.0
        except ValueError:
            return 0.0


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
        self.ven_id: str | None = None
        self.resource_ids: dict[str, str] = {}
        self.programs: dict[str, dict[str, Any]] = {}
        self.events: dict[str, _EventRecord] = {}
        self.applied: dict[str, Instruction] = {}
        self.samples: dict[str, deque[PowerReading]] = {r: deque(maxlen=MAX_SAMPLES) for r in self.regions}
        self.subscriptions: dict[str, str] = {}  # programID ("" for all programs, 3.1.0) -> subscription id
        self.reports: deque[ReportStatus] = deque(maxlen=MAX_REPORTS_SHOWN)
        self.polls = 0
        self.notifications = 0
        self.last_poll_at: str | None = None
        self.last_poll_ok = False
        self._seq = 0
        self._lock = asyncio.Lock()
        self._webhook_token = secrets.token_urlsafe(32)
        self._server: CallbackServer | None = None
        self._poll_now = asyncio.Event()

    @classmethod
    def for_fleet(cls, fleet: FleetConfig, port: FleetPort, clock: Clock, **kwargs: Any) -> VEN:
        """The VEN a fleet config describes; raises OpenADRError if it has no `openadr` section."""
        if fleet.openadr is None:
            raise OpenADRError(f"fleet {fleet.name!r} has no openadr section")
        return cls(fleet.openadr, {r.name: r.capacity_kw for r in fleet.regions}, port, clock, **kwargs)

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
        for program_id, subscription_id in list(self.subscriptions.items()):
            try:
                await self.client.delete(f"/subscriptions/{subscription_id}")
                del self.subscriptions[program_id]
            except OpenADRError as error:
                log.info("openadr: could not delete subscription %s: %s", subscription_id, error)
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

    # Registration and subscriptions ----------------------------------------------------------------------

    async def register(self) -> bool:
        """Find or create this VEN and one resource per region; True once all are registered."""
        try:
            if self.ven_id is None:
                self.ven_id = await self._find_or_create_ven()
            for region in self.regions:
                if region not in self.resource_ids:
                    self.resource_ids[region] = await self._find_or_create_resource(self.ven_id, region)
        except OpenADRError as error:
            self._fail("registration", error)
            return False
        finally:
            self.write_status()
        return True

    async def _find_or_create_ven(self) -> str:
        name = self.config.ven_name
        found = await self.client.list_objects("/vens", "ven", [("venName", name)])
        for ven in found.objects:
            if ven.get("venName") == name:
                return str(ven["id"])
        body: dict[str, Any] = {"venName": name}
        if self.schemas.version == "3.1.0":
            body = {"objectType": "VEN_VEN_REQUEST", **body}
        created = await self.client.create("/vens", "ven", body, "ven")
        log.info("openadr: registered VEN %s as %s", name, created["id"])
        return str(created["id"])

    async def _find_or_create_resource(self, ven_id: str, region: str) -> str:
        name = self.resource_names[region]
        if self.schemas.version == "3.1.0":
            path, params = "/resources", [("venID", ven_id), ("resourceName", name)]
            body: dict[str, Any] = {"objectType": "VEN_RESOURCE_REQUEST", "resourceName": name, "venID": ven_id}
        else:
            path, params = f"/vens/{ven_id}/resources", [("resourceName", name)]
            body = {"resourceName": name}
        found = await self.client.list_objects(path, "resource", params)
        for resource in found.objects:
            if resource.get("resourceName") == name and resource.get("venID") in (None, ven_id):
                return str(resource["id"])
        created = await self.client.create(path, "resource", body, "resource")
        log.info("openadr: registered resource %s (region %s) as %s", name, region, created["id"])
        return str(created["id"])

    def _subscription_body(self, program_id: str, url: str) -> dict[str, Any]:
        body: dict[str, Any] = {
            "clientName": self.config.ven_name,
            "objectOperations": [
                {
                    "objects": ["EVENT", "PROGRAM"],
                    "operations": ["CREATE", "UPDATE", "DELETE"],
                    "callbackUrl": url,
                    "bearerToken": self._webhook_token,
                }
            ],
        }
        if program_id:
            body["programID"] = program_id
        return body

    async def subscribe(self) -> None:
        """Make sure the VTN notifies our webhook of event and program changes: one subscription for all
        programs (3.1.0), or one per followed program (3.0.1 needs a programID). Reuses our old ones."""
        url = self.webhook_url
        if url is None:
            return
        wanted = [""] if self.schemas.version == "3.1.0" else sorted(self.programs)
        missing = [program_id for program_id in wanted if program_id not in self.subscriptions]
        if not missing:
            return
        try:
            existing = await self.client.list_objects(
                "/subscriptions", "subscription", [("clientName", self.config.ven_name)]
            )
            ours = {
                str(sub.get("programID") or ""): str(sub["id"])
                for sub in existing.objects
                if sub.get("clientName") == self.config.ven_name
                and any(op.get("callbackUrl") == url for op in sub.get("objectOperations") or [])
            }
            for program_id in missing:
                body = self._subscription_body(program_id, url)
                if program_id in ours:  # left by an earlier run: give it the new bearer token
                    path = f"/subscriptions/{ours[program_id]}"
                    answer = await self.client.update(path, "subscription", body, "subscription")
                else:
                    answer = await self.client.create("/subscriptions", "subscription", body, "subscription")
                self.subscriptions[program_id] = str(answer["id"])
        except OpenADRError as error:
            self._fail("subscription", error)

    # Programs and events ---------------------------------------------------------------------------------

    def _follows(self, program: Mapping[str, Any]) -> bool:
        names = self.config.program_names
        return not names or program.get("programName") in names

    def _next_seq(self) -> int:
        self._seq += 1
        return self._seq

    async def poll_once(self) -> bool:
        """Read programs and the events of followed programs, then bring the fleet in line. True when the VTN
        answered; on failure the last good programs and events stay in force."""
        started_seq = self._next_seq()
        ok = True
        try:
            programs = await self.client.list_objects("/programs", "program")
        except OpenADRError as error:
            self._fail("poll", error)
            programs = None
            ok = False
        async with self._lock:
            if programs is not None:
                self.programs = {
                    str(p["id"]): p for p in programs.objects if self._follows(p) and isinstance(p.get("id"), str)
                }
            for program_id in sorted(self.programs):
                try:
                    found = await self.client.list_objects("/events", "event", [("programID", program_id)])
                except OpenADRError as error:
                    self._fail("poll", error)
                    ok = False
                    continue
                self._merge_events(program_id, found.objects, found.rejected, started_seq)
                ok = ok and not found.rejected  # a poll that had to drop objects is not a clean one
            await self._reconcile()
        if ok:
            self.polls += 1
            self.last_poll_at = format_instant(self.clock.now_s())
        self.last_poll_ok = ok
        if self.schemas.version == "3.0.1":
            await self.subscribe()  # a new program needs its own subscription
        self.write_status()
        return ok

    def _merge_events(
        self, program_id: str, events: list[dict[str, Any]], rejected: list[str], started_seq: int
    ) -> None:
        now_s = self.clock.now_s()
        present = set()
        for event in events:
            if str(event.get("programID")) != program_id or not isinstance(event.get("id"), str):
                continue
            present.add(event["id"])
            self._upsert_event(event, now_s, started_seq)
        if rejected:
            return  # an event we could not read may be one we hold: do not take its absence as a delete
        for event_id, record in self.events.items():
            gone = event_id not in present and record.program_id == program_id and record.deleted_at_s is None
            # Seen (by webhook) after this poll began: the poll's list predates it.
            if gone and record.seen_seq < started_seq:
                record.deleted_at_s, record.deleted_seq = now_s, self._next_seq()

    def _upsert_event(self, event: dict[str, Any], now_s: float, started_seq: int | None = None) -> None:
        record = self.events.get(event["id"])
        if record is None:
            self.events[event["id"]] = _EventRecord(event, now_s, self._next_seq())
            return
        if record.deleted_seq is not None and started_seq is not None and record.deleted_seq > started_seq:
            return  # deleted (by webhook) while this older poll was in flight
        candidate = _EventRecord(event, record.first_seen_s, record.seen_seq)
        if candidate.modified_s < record.modified_s:
            return  # an older copy than the one we hold
        if event != record.event or record.deleted_at_s is not None:
            record.event = event
            record.deleted_at_s = record.deleted_seq = None
            record.seen_seq = self._next_seq()

    async def handle_notification(self, notification: dict[str, Any]) -> None:
        """React at once to a (validated) webhook notification of an event or program change."""
        self.notifications += 1
        kind, operation, obj = notification["objectType"], notification["operation"], notification["object"]
        async with self._lock:
            now_s = self.clock.now_s()
            if kind == "EVENT" and isinstance(obj.get("id"), str):
                followed = obj.get("programID") in self.programs or not self.config.program_names
                record = self.events.get(obj["id"])
                if operation in DELETE_OPERATIONS and record is not None and record.deleted_at_s is None:
                    record.deleted_at_s, record.deleted_seq = now_s, self._next_seq()
                elif operation in UPSERT_OPERATIONS and followed:
                    self._upsert_event(obj, now_s)
                await self._reconcile()
            elif kind == "PROGRAM":
                self._poll_now.set()  # programs change rarely: re-read everything on the next loop turn
        self.write_status()

    async def _reconcile(self) -> None:
        """Map every live event and apply the difference to the fleet (caller holds the lock)."""
        now_s = self.clock.now_s()
        mappings = []
        for record in self.events.values():
            record.mapping = map_event(
                record.event,
                self.context,
                first_seen_s=record.first_seen_s,
                now_s=now_s,
                program=self.programs.get(record.program_id),
            )
            if record.deleted_at_s is None:
                mappings.append(record.mapping)
        changes = plan_changes(self.applied, desired_instructions(mappings))
        for instruction in changes.clear:
            try:
                await clear_instruction(self.port, instruction)
                self.applied.pop(instruction_id(instruction), None)
            except Exception as error:  # the fleet is someone else's code (a Ray actor): never let it stop us
                self._fail("fleet", error)
        for instruction in changes.apply:
            try:
                await apply_instruction(self.port, instruction)
                self.applied[instruction_id(instruction)] = instruction
            except Exception as error:
                self._fail("fleet", error)

    # Power samples and reports ----------------------------------------------------------------------------

    async def sample_once(self) -> None:
        """Record each region's power now (stamped with the VEN's clock, the time base of event windows)."""
        now_s = self.clock.now_s()
        for region in self.regions:
            try:
                reading = await self.port.power(region)
            except Exception as error:
                self._fail("fleet", error)
                continue
            if not (math.isfinite(reading.grid_kw) and math.isfinite(reading.baseline_kw)):
                self._count("fleet_non_finite")
                continue
            self.samples[region].append(dataclasses.replace(reading, region=region, at_s=now_s))

    async def report_once(self) -> None:
        """Send what is due: capacity for newly seen events, usage for report intervals that have closed."""
        async with self._lock:
            now_s = self.clock.now_s()
            for event_id in list(self.events):
                record = self.events[event_id]
                if record.mapping is None:
                    continue
                if self.config.capacity_reports:
                    await self._capacity_report(record, now_s)
                finished = True
                if self.config.usage_reports:
                    finished = await self._usage_report(record, now_s)
                if finished and self._over(record, now_s):
                    del self.events[event_id]  # everything said: forget it
        self.write_status()

    def _over(self, record: _EventRecord, now_s: float) -> bool:
        if record.deleted_at_s is not None:
            return True
        windows = record.mapping.windows if record.mapping else ()
        return bool(windows) and all(w.end_s is not None and w.end_s <= now_s for w in windows)

    async def _capacity_report(self, record: _EventRecord, now_s: float) -> None:
        mapping = record.mapping
        if record.capacity_sent or record.capacity_attempts >= CAPACITY_ATTEMPTS or mapping is None:
            return
        if record.deleted_at_s is not None or self._over(record, now_s):
            return  # too late to offer capacity
        record.capacity_attempts += 1
        readings: dict[str, PowerReading] = {}
        for region in mapping.regions:
            latest = self.samples[region][-1] if self.samples[region] else None
            try:
                readings[region] = latest or await self.port.power(region)
            except Exception as error:
                self._fail("fleet", error)
        resources, kinds, skipped = capacity_resources(
            readings, self.resource_names, now_s, self.config.lever_breakdown
        )
        if skipped:
            self._count("fleet_non_finite")
        if not resources:
            return
        body = self._report_body(mapping, "capacity", kinds, resources)
        answer = await self._send_report(body, None)
        if answer is not None:
            record.capacity_sent = True
            self._remember(answer, body, "capacity", now_s)

    async def _usage_report(self, record: _EventRecord, now_s: float) -> bool:
        """Send or update the usage report; True when nothing more will ever be due."""
        mapping = record.mapping
        if mapping is None:
            return True
        windows = report_windows(mapping.windows, now_s, self.config.usage_bucket_s, record.deleted_at_s)
        if len(windows) <= record.usage_windows_sent:
            return True
        request = requested_usage(record.event)
        by_region = {region: list(self.samples[region]) for region in mapping.regions}
        if request.aggregate:
            sources = {AGGREGATED_REPORT: aggregate_readings(by_region)}
        else:
            sources = {self.resource_names[region]: readings for region, readings in by_region.items()}
        resources = [
            {"resourceName": name, "intervals": intervals}
            for name, readings in sources.items()
            if (intervals := usage_intervals(readings, windows, request.payload_types))
        ]
        if not resources:
            record.usage_windows_sent = len(windows)  # nothing was measured in them: nothing to say
            return True
        body = self._report_body(mapping, "usage", request.payload_types, resources)
        answer = await self._send_report(body, record.usage_report_id)
        if answer is None:
            return False
        record.usage_report_id = str(answer["id"])
        record.usage_windows_sent = len(windows)
        self._remember(answer, body, "usage", now_s)
        return True

    def _report_body(
        self, mapping: EventMapping, kind: str, payload_types: Sequence[str], resources: list[dict[str, Any]]
    ) -> dict[str, Any]:
        return report_body(
            self.schemas.version,
            program_id=mapping.program_id,
            event_id=mapping.event_id,
            client_name=self.config.ven_name,
            report_name=f"gridshift-{kind}-{mapping.event_id}",
            payload_types=payload_types,
            resources=resources,
        )

    async def _send_report(self, body: dict[str, Any], report_id: str | None) -> dict[str, Any] | None:
        try:
            if report_id is None:
                return await self.client.create("/reports", "report", body, "report")
            return await self.client.update(f"/reports/{report_id}", "report", body, "report")
        except OpenADRError as error:
            self._fail("report", error)
            return None

    def _remember(self, answer: Mapping[str, Any], body: Mapping[str, Any], kind: str, now_s: float) -> None:
        figures: dict[str, dict[str, float]] = {}
        intervals = 0
        for resource in body["resources"]:
            last = resource["intervals"][-1] if resource["intervals"] else {"payloads": []}
            figures[resource["resourceName"]] = {p["type"]: p["values"][0] for p in last["payloads"]}
            intervals = max(intervals, len(resource["intervals"]))
        report_id = str(answer.get("id")) if answer.get("id") is not None else None
        shown = [r for r in self.reports if not (r.report_id == report_id and r.kind == kind)]
        self.reports.clear()
        self.reports.extend(shown)
        self.reports.appendleft(
            ReportStatus(
                report_id=report_id,
                event_id=str(body["eventID"]),
                kind=kind,
                sent_at=format_instant(now_s),
                intervals=intervals,
                figures=figures,
            )
        )

    # Status and loop --------------------------------------------------------------------------------------

    def status(self) -> VenStatus:
        events = []
        for record in self.events.values():
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
                        _describe(i) for key, i in sorted(self.applied.items()) if key in mapping.instructions
                    ],
                    notes=list(mapping.notes),
                )
            )
        return VenStatus(
            updated_at=format_instant(self.clock.now_s()),
            vtn_url=self.config.vtn_url,
            spec_version=self.schemas.version,
            ven_name=self.config.ven_name,
            ven_id=self.ven_id,
            registered=self.ven_id is not None and len(self.resource_ids) == len(self.regions),
            resources={
                region: ResourceStatus(
                    resource_name=self.resource_names[region], resource_id=self.resource_ids.get(region)
                )
                for region in self.regions
            },
            webhook_url=self.webhook_url,
            subscriptions=sorted(self.subscriptions.values()),
            last_poll_at=self.last_poll_at,
            last_poll_ok=self.last_poll_ok,
            polls=self.polls,
            notifications=self.notifications,
            events=events,
            reports=list(self.reports),
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
        while not stop.is_set():
            await self._guarded(self._poll_step)
            self._poll_now.clear()
            waits = [asyncio.ensure_future(stop.wait()), asyncio.ensure_future(self._poll_now.wait())]
            try:
                await asyncio.wait(waits, timeout=self.config.poll_interval_s, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for waiter in waits:
                    waiter.cancel()

    async def _poll_step(self) -> None:
        if self.ven_id is None or len(self.resource_ids) < len(self.regions):
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
