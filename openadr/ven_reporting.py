"""The VEN's reporting: power samples per region, capacity for newly seen events, usage as report intervals close.

Samples are stamped with the VEN's clock, the time base of event windows. A report the VTN did not take is tried
again on a later turn (capacity up to CAPACITY_ATTEMPTS times); failures are counted through `fail`.
"""

from __future__ import annotations

import dataclasses
import math
from collections import deque
from collections.abc import Mapping, Sequence
from typing import Any

from fleet.clock import Clock
from fleet.errors import OpenADRError
from fleet.openadr import OpenADRConfig
from openadr.client import VTNClient
from openadr.fleet import FleetPort, PowerReading
from openadr.mapping import EventMapping
from openadr.reports import (
    AGGREGATED_REPORT,
    aggregate_readings,
    capacity_resources,
    report_body,
    report_windows,
    requested_usage,
    usage_intervals,
)
from openadr.status import ReportStatus
from openadr.timing import format_instant
from openadr.ven_events import EventRecord, Fail

MAX_SAMPLES = 20_000  # per region: about two days at one sample every 10 s
MAX_REPORTS_SHOWN = 20
CAPACITY_ATTEMPTS = 3


class Reporter:
    """One VEN's power samples and the reports it sent (the latest shown in its status)."""

    def __init__(
        self,
        config: OpenADRConfig,
        client: VTNClient,
        clock: Clock,
        port: FleetPort,
        regions: Sequence[str],
        resource_names: Mapping[str, str],
        fail: Fail,
    ) -> None:
        self.config = config
        self.client = client
        self.clock = clock
        self.port = port
        self.regions = tuple(regions)
        self.resource_names = resource_names
        self.fail = fail
        self.samples: dict[str, deque[PowerReading]] = {r: deque(maxlen=MAX_SAMPLES) for r in self.regions}
        self.reports: deque[ReportStatus] = deque(maxlen=MAX_REPORTS_SHOWN)

    async def sample_once(self) -> None:
        """Record each region's power now (stamped with the VEN's clock, the time base of event windows)."""
        now_s = self.clock.now_s()
        for region in self.regions:
            try:
                reading = await self.port.power(region)
            except Exception as error:  # the fleet is someone else's code (a Ray actor): never let it stop us
                self.fail("fleet", error)
                continue
            if not (math.isfinite(reading.grid_kw) and math.isfinite(reading.baseline_kw)):
                self.client.counters["fleet_non_finite"] += 1
                continue
            self.samples[region].append(dataclasses.replace(reading, region=region, at_s=now_s))

    async def report_once(self, events: dict[str, EventRecord]) -> None:
        """Send what is due for `events`: capacity for newly seen ones, usage for report intervals that have
        closed; an event with everything said is removed from `events` (the caller holds its lock)."""
        now_s = self.clock.now_s()
        for event_id in list(events):
            record = events[event_id]
            if record.mapping is None:
                continue
            if self.config.capacity_reports:
                await self._capacity_report(record, now_s)
            finished = True
            if self.config.usage_reports:
                finished = await self._usage_report(record, now_s)
            if finished and record.over(now_s):
                del events[event_id]  # everything said: forget it

    async def _capacity_report(self, record: EventRecord, now_s: float) -> None:
        mapping = record.mapping
        if record.capacity_sent or record.capacity_attempts >= CAPACITY_ATTEMPTS or mapping is None:
            return
        if record.over(now_s):
            return  # too late to offer capacity
        record.capacity_attempts += 1
        readings: dict[str, PowerReading] = {}
        for region in mapping.regions:
            latest = self.samples[region][-1] if self.samples[region] else None
            try:
                readings[region] = latest or await self.port.power(region)
            except Exception as error:
                self.fail("fleet", error)
        resources, kinds, skipped = capacity_resources(
            readings, self.resource_names, now_s, self.config.lever_breakdown
        )
        if skipped:
            self.client.counters["fleet_non_finite"] += 1
        if not resources:
            return
        body = self._report_body(mapping, "capacity", kinds, resources)
        answer = await self._send_report(body, None)
        if answer is not None:
            record.capacity_sent = True
            self._remember(answer, body, "capacity", now_s)

    async def _usage_report(self, record: EventRecord, now_s: float) -> bool:
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
            self.client.schemas.version,
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
            self.fail("report", error)
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
