"""The VEN's event following: programs and events read by polling and by webhook, mapped to fleet instructions.

Every event is kept as a record (what the VTN last said, when it was first seen, when it went away), and every
change, from a poll or a notification, ends in one reconcile: map the live events, apply the difference to the
fleet. A VTN or fleet failure is counted (through `fail`) and the last good state stays in force.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from fleet.clock import Clock
from fleet.errors import OpenADRError
from fleet.openadr import OpenADRConfig
from openadr.client import VTNClient
from openadr.fleet import FleetPort, Instruction, apply_instruction, clear_instruction, instruction_id, plan_changes
from openadr.mapping import EventMapping, MappingContext, desired_instructions, map_event
from openadr.timing import format_instant, parse_instant

DELETE_OPERATIONS = frozenset({"DELETE"})
UPSERT_OPERATIONS = frozenset({"CREATE", "UPDATE", "POST", "PUT"})  # 3.1.0 names, then 3.0.1's

Fail = Callable[[str, BaseException], None]
"""How a VEN part records a failure it survives: the counter kind and the error."""


@dataclass
class EventRecord:
    """One event as this VEN knows it, and what it has reported about it so far."""

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

    def over(self, now_s: float) -> bool:
        """Deleted, or every one of its windows has ended by `now_s`."""
        if self.deleted_at_s is not None:
            return True
        windows = self.mapping.windows if self.mapping else ()
        return bool(windows) and all(w.end_s is not None and w.end_s <= now_s for w in windows)


class EventFollower:
    """The programs and events one VEN follows and the instructions it applied for them. Callers that read or
    change `events` while this follower may run hold `lock` (a poll and a notification must not interleave)."""

    def __init__(
        self,
        config: OpenADRConfig,
        client: VTNClient,
        clock: Clock,
        port: FleetPort,
        context: MappingContext,
        fail: Fail,
    ) -> None:
        self.config = config
        self.client = client
        self.clock = clock
        self.port = port
        self.context = context
        self.fail = fail
        self.programs: dict[str, dict[str, Any]] = {}
        self.events: dict[str, EventRecord] = {}
        self.applied: dict[str, Instruction] = {}
        self.polls = 0
        self.notifications = 0
        self.last_poll_at: str | None = None
        self.last_poll_ok = False
        self.lock = asyncio.Lock()
        self.poll_now = asyncio.Event()  # set when a change calls for a full poll before the next period
        self._seq = 0

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
            self.fail("poll", error)
            programs = None
            ok = False
        async with self.lock:
            if programs is not None:
                self.programs = {
                    str(p["id"]): p for p in programs.objects if self._follows(p) and isinstance(p.get("id"), str)
                }
            for program_id in sorted(self.programs):
                try:
                    found = await self.client.list_objects("/events", "event", [("programID", program_id)])
                except OpenADRError as error:
                    self.fail("poll", error)
                    ok = False
                    continue
                self._merge_events(program_id, found.objects, found.rejected, started_seq)
                ok = ok and not found.rejected  # a poll that had to drop objects is not a clean one
            await self.reconcile()
        if ok:
            self.polls += 1
            self.last_poll_at = format_instant(self.clock.now_s())
        self.last_poll_ok = ok
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
            self.events[event["id"]] = EventRecord(event, now_s, self._next_seq())
            return
        if record.deleted_seq is not None and started_seq is not None and record.deleted_seq > started_seq:
            return  # deleted (by webhook) while this older poll was in flight
        candidate = EventRecord(event, record.first_seen_s, record.seen_seq)
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
        async with self.lock:
            now_s = self.clock.now_s()
            if kind == "EVENT" and isinstance(obj.get("id"), str):
                followed = obj.get("programID") in self.programs or not self.config.program_names
                record = self.events.get(obj["id"])
                if operation in DELETE_OPERATIONS and record is not None and record.deleted_at_s is None:
                    record.deleted_at_s, record.deleted_seq = now_s, self._next_seq()
                elif operation in UPSERT_OPERATIONS and followed:
                    self._upsert_event(obj, now_s)
                await self.reconcile()
            elif kind == "PROGRAM":
                self.poll_now.set()  # programs change rarely: re-read everything on the next loop turn

    async def reconcile(self) -> None:
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
                self.fail("fleet", error)
        for instruction in changes.apply:
            try:
                await apply_instruction(self.port, instruction)
                self.applied[instruction_id(instruction)] = instruction
            except Exception as error:
                self.fail("fleet", error)
