"""Pure builders of OpenADR 3 reports: flexible capacity before an event, measured power against baseline
during and after it. Figures come from FleetPort readings; units are named in each payload descriptor.

Report payload types are those of the Definition's Report Enumerations (Table 2): DEMAND (power over an
interval), BASELINE (what the load would be with no control), USAGE and DELTA_USAGE (energy, on request),
LOAD_SHED_DELTA_AVAILABLE (load the resource could still shed). Flexibility per lever has no standard type,
so it goes out as private GRIDSHIFT_<LEVER>_AVAILABLE payloads (the spec allows private strings).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from fleet.openadr import SpecVersion
from openadr.fleet import PowerReading
from openadr.timing import IntervalWindow, format_duration, format_instant

DEMAND = "DEMAND"
BASELINE = "BASELINE"
USAGE = "USAGE"
DELTA_USAGE = "DELTA_USAGE"
LOAD_SHED_DELTA_AVAILABLE = "LOAD_SHED_DELTA_AVAILABLE"
AGGREGATED_REPORT = "AGGREGATED_REPORT"
USAGE_PAYLOADS: tuple[str, ...] = (DEMAND, BASELINE, USAGE, DELTA_USAGE)
DEFAULT_USAGE_PAYLOADS: tuple[str, ...] = (DEMAND, BASELINE)

# (units, readingType) of each payload type gridshift reports. Power figures are means of the power model's
# estimates over the interval; available capacity is an estimate at one moment.
_DESCRIPTORS: Mapping[str, tuple[str, str]] = {
    DEMAND: ("KW", "MEAN"),
    BASELINE: ("KW", "MEAN"),
    USAGE: ("KWH", "ESTIMATED"),
    DELTA_USAGE: ("KWH", "ESTIMATED"),
    LOAD_SHED_DELTA_AVAILABLE: ("KW", "ESTIMATED"),
}
_LEVER_UNITS = ("KW", "ESTIMATED")


def lever_payload_type(lever: str) -> str:
    """The private payload type of one lever's flexible kW, e.g. GRIDSHIFT_BATTERY_AVAILABLE."""
    return f"GRIDSHIFT_{lever.upper()}_AVAILABLE"


def payload_descriptor(payload_type: str) -> dict[str, Any]:
    units, reading = _DESCRIPTORS.get(payload_type, _LEVER_UNITS)
    return {
        "objectType": "REPORT_PAYLOAD_DESCRIPTOR",
        "payloadType": payload_type,
        "readingType": reading,
        "units": units,
    }


@dataclass(frozen=True)
class ReportRequest:
    """What an event's reportDescriptors ask for, reduced to what gridshift can give."""

    payload_types: tuple[str, ...]
    aggregate: bool
    unsupported: tuple[str, ...]


def requested_usage(event: Mapping[str, Any]) -> ReportRequest:
    """The usage payloads an event asks for (DEMAND and BASELINE when it asks for none gridshift has)."""
    descriptors = [d for d in event.get("reportDescriptors") or [] if isinstance(d, Mapping)]
    wanted = [str(d.get("payloadType")) for d in descriptors]
    supported = tuple(dict.fromkeys(kind for kind in wanted if kind in USAGE_PAYLOADS))
    unsupported = tuple(dict.fromkeys(k for k in wanted if k not in USAGE_PAYLOADS and k != LOAD_SHED_DELTA_AVAILABLE))
    aggregate = any(d.get("aggregate") is True for d in descriptors)
    return ReportRequest(supported or DEFAULT_USAGE_PAYLOADS, aggregate, unsupported)


@dataclass(frozen=True)
class ReportWindow:
    """One report interval: [start_s, end_s), closed (it has ended)."""

    interval_id: int
    start_s: float
    end_s: float


def report_windows(
    windows: Sequence[IntervalWindow], now_s: float, bucket_s: float, ended_at_s: float | None = None
) -> list[ReportWindow]:
    """The report intervals that have closed by `now_s`: each finished event interval as it is, and an
    open-ended one cut into `bucket_s` pieces. `ended_at_s` (the event was deleted then) closes everything
    still open, the last piece possibly short."""
    horizon = now_s if ended_at_s is None else min(now_s, ended_at_s)
    closed: list[ReportWindow] = []
    for window in windows:
        end = window.end_s if window.end_s is not None else math.inf
        if ended_at_s is not None:
            end = min(end, ended_at_s)
        if window.end_s is not None and end == window.end_s:
            if end <= horizon and end > window.start_s:
                closed.append(ReportWindow(len(closed), window.start_s, end))
            continue
        start = window.start_s
        while start < end:
            piece_end = min(start + bucket_s, end)
            if piece_end > horizon:
                break
            closed.append(ReportWindow(len(closed), start, piece_end))
            start = piece_end
    return closed


@dataclass(frozen=True)
class MeanPower:
    grid_kw: float
    baseline_kw: float
    samples: int


def mean_power(readings: Iterable[PowerReading], start_s: float, end_s: float) -> MeanPower | None:
    """The mean of the finite readings taken in [start_s, end_s); None when there are none."""
    inside = [
        r for r in readings if start_s <= r.at_s < end_s and math.isfinite(r.grid_kw) and math.isfinite(r.baseline_kw)
    ]
    if not inside:
        return None
    n = len(inside)
    return MeanPower(sum(r.grid_kw for r in inside) / n, sum(r.baseline_kw for r in inside) / n, n)


def _usage_values(kind: str, power: MeanPower, hours: float) -> float:
    if kind == DEMAND:
        return power.grid_kw
    if kind == BASELINE:
        return power.baseline_kw
    if kind == USAGE:
        return power.grid_kw * hours
    return (power.grid_kw - power.baseline_kw) * hours  # DELTA_USAGE: negative when load was shed


def _round(value: float) -> float:
    return round(value, 3)


def usage_intervals(
    readings: Sequence[PowerReading], windows: Sequence[ReportWindow], payload_types: Sequence[str]
) -> list[dict[str, Any]]:
    """Report intervals with the mean power of each closed window; a window without readings is left out
    (nothing was measured, and the spec has no number for 'unknown')."""
    intervals = []
    for window in windows:
        power = mean_power(readings, window.start_s, window.end_s)
        if power is None:
            continue
        hours = (window.end_s - window.start_s) / 3600.0
        intervals.append(
            {
                "id": window.interval_id,
                "intervalPeriod": {
                    "start": format_instant(window.start_s),
                    "duration": format_duration(window.end_s - window.start_s),
                },
                "payloads": [
                    {"type": kind, "values": [_round(_usage_values(kind, power, hours))]} for kind in payload_types
                ],
            }
        )
    return intervals


def aggregate_readings(by_resource: Mapping[str, Sequence[PowerReading]]) -> list[PowerReading]:
    """Readings summed across resources at each sampling moment (for aggregate reports)."""
    moments: dict[float, list[PowerReading]] = {}
    for readings in by_resource.values():
        for reading in readings:
            moments.setdefault(reading.at_s, []).append(reading)
    count = len(by_resource)
    return [
        PowerReading(
            AGGREGATED_REPORT,
            at_s,
            sum(r.grid_kw for r in group),
            sum(r.baseline_kw for r in group),
        )
        for at_s, group in sorted(moments.items())
        if len(group) == count  # a moment some resource missed would under-count
    ]


def capacity_payloads(reading: PowerReading, lever_breakdown: bool) -> list[dict[str, Any]] | None:
    """Payloads of one resource's capacity report; None when a figure is not a finite number."""
    figures: dict[str, float] = {
        LOAD_SHED_DELTA_AVAILABLE: reading.flexible_total_kw,
        DEMAND: reading.grid_kw,
        BASELINE: reading.baseline_kw,
    }
    if lever_breakdown:
        figures.update({lever_payload_type(lever): kw for lever, kw in sorted(reading.flexible_kw.items())})
    if not all(math.isfinite(value) for value in figures.values()):
        return None
    return [{"type": kind, "values": [_round(value)]} for kind, value in figures.items()]


def report_body(
    version: SpecVersion,
    *,
    program_id: str,
    event_id: str,
    client_name: str,
    report_name: str,
    payload_types: Iterable[str],
    resources: Sequence[Mapping[str, Any]],
) -> dict[str, Any]:
    """A report as the VEN sends it (3.0.1 `report` needs programID; 3.1.0 `reportRequest` has none)."""
    body: dict[str, Any] = {
        "eventID": event_id,
        "clientName": client_name,
        "reportName": report_name,
        "payloadDescriptors": [payload_descriptor(kind) for kind in dict.fromkeys(payload_types)],
        "resources": [dict(resource) for resource in resources],
    }
    if version == "3.0.1":
        body["programID"] = program_id
    return body


def capacity_resources(
    readings: Mapping[str, PowerReading], resource_names: Mapping[str, str], at_s: float, lever_breakdown: bool
) -> tuple[list[dict[str, Any]], list[str], list[str]]:
    """(report resources, payload types used, regions left out for non-finite figures) of a capacity report."""
    resources: list[dict[str, Any]] = []
    kinds: list[str] = []
    skipped: list[str] = []
    for region, reading in readings.items():
        payloads = capacity_payloads(reading, lever_breakdown)
        if payloads is None:
            skipped.append(region)
            continue
        kinds += [payload["type"] for payload in payloads]
        resources.append(
            {
                "resourceName": resource_names[region],
                "intervals": [
                    {
                        "id": 0,
                        "intervalPeriod": {"start": format_instant(at_s), "duration": "PT0S"},
                        "payloads": payloads,
                    }
                ],
            }
        )
    return resources, kinds, skipped
