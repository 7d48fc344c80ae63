"""Pure mapping of OpenADR 3 events to fleet instructions: DR events, import limits and price/GHG signals.

Input is an event the schema layer has accepted; output is a value. No clock reads and no I/O: the caller
passes `now_s` (what has ended is dropped) and the time it first saw the event (what "now" meant for an
event without a start), so mapping the same event again gives the same instructions.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from fleet.events import DREvent, GridSignal, SignalKind
from fleet.openadr import SpecVersion
from openadr.fleet import Instruction, instruction_id
from openadr.timing import IntervalWindow, interval_windows

SIMPLE = "SIMPLE"
PRICE = "PRICE"
GHG = "GHG"
IMPORT_CAPACITY_LIMIT = "IMPORT_CAPACITY_LIMIT"
ALERT_GRID_EMERGENCY = "ALERT_GRID_EMERGENCY"
MAPPED_PAYLOAD_TYPES = frozenset({SIMPLE, PRICE, GHG, IMPORT_CAPACITY_LIMIT, ALERT_GRID_EMERGENCY})
EMERGENCY_LEVEL = 3

POWER_UNITS_TO_KW: Mapping[str, float] = {"KW": 1.0, "W": 0.001, "MW": 1000.0}
"""KW is the spec's unit of power; W and MW are private strings some VTNs use. Anything else is refused."""
DEFAULT_POWER_UNITS = "KW"
PRICE_UNITS_TO_PER_MWH: Mapping[str, float] = {"KWH": 1000.0, "MWH": 1.0}
DEFAULT_PRICE_UNITS = "KWH"  # the spec's PRICE example: 0.17 USD per KWH
DEFAULT_CURRENCY = "USD"
GHG_UNITS = frozenset({"GHG"})  # the spec's GHG unit is g/kWh


@dataclass(frozen=True)
class MappingContext:
    """What the mapping needs to know about the fleet and the configuration."""

    ven_name: str
    spec_version: SpecVersion
    resources: Mapping[str, str]  # region -> resourceName
    capacity_kw: Mapping[str, float]  # region -> full-load power, kW (splits a VEN-wide import limit)
    price_levels_usd_per_mwh: tuple[float, float, float]
    ghg_levels_g_per_kwh: tuple[float, float, float]
    signal_levels_as_events: bool = False


@dataclass(frozen=True)
class EventMapping:
    """One OpenADR event as fleet instructions, and what could not be used (for the status)."""

    event_id: str
    program_id: str
    event_name: str | None
    regions: tuple[str, ...]
    windows: tuple[IntervalWindow, ...]
    instructions: Mapping[str, Instruction]
    notes: tuple[str, ...] = field(default=())


def level_for(value: float, thresholds: tuple[float, float, float]) -> int:
    """0..3: how many of the ascending thresholds `value` reaches."""
    return sum(1 for threshold in thresholds if value >= threshold)


def target_labels(targets: object, version: SpecVersion) -> tuple[frozenset[str], frozenset[str]]:
    """(resource names, other labels) an event's targets name. 3.1.0 targets are plain strings; 3.0.1 targets
    are valuesMaps, of which only RESOURCE_NAME values name resources."""
    if not isinstance(targets, list):
        return frozenset(), frozenset()
    if version == "3.1.0":
        labels = frozenset(item for item in targets if isinstance(item, str))
        return labels, labels
    resource_names: set[str] = set()
    others: set[str] = set()
    for item in targets:
        if not isinstance(item, Mapping):
            continue
        values = {value for value in item.get("values") or [] if isinstance(value, str)}
        (resource_names if item.get("type") == "RESOURCE_NAME" else others).update(values)
    return frozenset(resource_names), frozenset(others)


def targeted_regions(targets: object, context: MappingContext) -> tuple[tuple[str, ...], bool]:
    """The regions an event applies to, and whether it named them (rather than applying VEN-wide).

    An event naming any of our resources applies to exactly those regions. An event with no targets, or whose
    targets name none of our resources (the VEN's name, a group), applies to the whole fleet: the VTN decides
    who sees a targeted event (Definition, Object Privacy), so an event we were shown is meant for us."""
    resource_names, _ = target_labels(targets, context.spec_version)
    named = tuple(region for region, name in context.resources.items() if name in resource_names)
    if named:
        return named, True
    return tuple(context.resources), False


def _descriptors(*sources: object) -> dict[str, Mapping[str, Any]]:
    """payloadType -> its eventPayloadDescriptor; earlier sources (the event) win over later (its program)."""
    found: dict[str, Mapping[str, Any]] = {}
    for source in reversed(sources):
        for item in source if isinstance(source, list) else []:
            if isinstance(item, Mapping) and isinstance(item.get("payloadType"), str):
                found[item["payloadType"]] = item
    return found


def _utc(at_s: float) -> datetime:
    return datetime.fromtimestamp(at_s, tz=UTC)


def _first_number(values: object) -> float | None:
    if isinstance(values, list) and values and isinstance(values[0], int | float) and not isinstance(values[0], bool):
        return float(values[0])
    return None


@dataclass
class _Builder:
    context: MappingContext
    event_id: str
    instructions: dict[str, Instruction] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def add(self, instruction: Instruction) -> None:
        self.instructions[instruction_id(instruction)] = instruction

    def note(self, text: str) -> None:
        if text not in self.notes:
            self.notes.append(text)

    def key(self, index: int, kind: str, region: str) -> str:
        return f"oadr-{self.event_id}-{index}-{kind}-{region}"

    def dr_event(self, key: str, region: str, level: int, window: IntervalWindow) -> None:
        if level <= 0:
            return  # level 0 is normal operation: nothing to ask of the fleet
        self.add(_dr_event(key, region, window, level=min(level, EMERGENCY_LEVEL)))

    def import_limit(self, key: str, region: str, limit_kw: float, window: IntervalWindow) -> None:
        if limit_kw <= 0:
            # "Import nothing": no positive limit says it, the emergency level does (shed all that can go).
            self.note("IMPORT_CAPACITY_LIMIT of 0 kW: asked of the fleet as level 3")
            self.add(_dr_event(key, region, window, level=EMERGENCY_LEVEL))
        else:
            self.add(_dr_event(key, region, window, power_limit_kw=limit_kw))


def _dr_event(
    key: str, region: str, window: IntervalWindow, *, level: int | None = None, power_limit_kw: float | None = None
) -> DREvent:
    return DREvent(
        region=region,
        level=level,
        power_limit_kw=power_limit_kw,
        start=_utc(window.start_s),
        end=None if window.end_s is None else _utc(window.end_s),
        source="utility",
        event_id=key,
    )


def _map_payload(
    builder: _Builder,
    payload: Mapping[str, Any],
    index: int,
    window: IntervalWindow,
    regions: Sequence[str],
    named: bool,
    descriptors: Mapping[str, Mapping[str, Any]],
) -> None:
    context = builder.context
    kind = payload.get("type")
    values = payload.get("values")
    if kind not in MAPPED_PAYLOAD_TYPES:
        builder.note(f"payload type {kind!r} is not acted on")
        return
    descriptor = descriptors.get(str(kind), {})
    if kind == ALERT_GRID_EMERGENCY:
        for region in regions:
            builder.dr_event(builder.key(index, str(kind), region), region, EMERGENCY_LEVEL, window)
        return
    number = _first_number(values)
    if number is None:
        builder.note(f"{kind} payload without a number: {values!r}")
        return
    if kind == SIMPLE:
        for region in regions:
            builder.dr_event(builder.key(index, kind, region), region, int(number), window)
    elif kind == IMPORT_CAPACITY_LIMIT:
        units = str(descriptor.get("units") or DEFAULT_POWER_UNITS).upper()
        factor = POWER_UNITS_TO_KW.get(units)
        if factor is None:
            builder.note(f"IMPORT_CAPACITY_LIMIT in units {units!r} is not a power gridshift knows; ignored")
            return
        limit_kw = number * factor
        # One VEN-wide limit is shared by capacity; a limit on a named resource is that region's own.
        total_kw = sum(context.capacity_kw.get(region, 0.0) for region in regions)
        for region in regions:
            share = 1.0 if named or total_kw <= 0 else context.capacity_kw.get(region, 0.0) / total_kw
            builder.import_limit(builder.key(index, kind, region), region, limit_kw * share, window)
    else:
        _map_signal(builder, str(kind), number, index, window, regions, descriptor)


def _map_signal(
    builder: _Builder,
    kind: str,
    number: float,
    index: int,
    window: IntervalWindow,
    regions: Sequence[str],
    descriptor: Mapping[str, Any],
) -> None:
    context = builder.context
    level: int | None
    if kind == PRICE:
        units = str(descriptor.get("units") or DEFAULT_PRICE_UNITS).upper()
        currency = str(descriptor.get("currency") or DEFAULT_CURRENCY).upper()
        factor = PRICE_UNITS_TO_PER_MWH.get(units)
        if factor is None:
            builder.note(f"PRICE per {units!r} cannot be compared with USD/MWh thresholds")
            value, unit, level = number, f"{currency}/{units}", None
        else:
            value, unit = number * factor, f"{currency}/MWh"
            usd = currency == DEFAULT_CURRENCY
            level = level_for(value, context.price_levels_usd_per_mwh) if usd else None
        signal_kind: SignalKind = "price"
    else:
        units = str(descriptor.get("units") or "GHG").upper()
        if units not in GHG_UNITS:
            builder.note(f"GHG in units {units!r} (expected g/kWh, 'GHG'); ignored")
            return
        value, unit, level = number, "gCO2/kWh", level_for(number, context.ghg_levels_g_per_kwh)
        signal_kind = "ghg"
    for region in regions:
        key = builder.key(index, kind, region)
        start_s, end_s = window.start_s, window.end_s
        builder.add(GridSignal(key, region, signal_kind, value, unit, level, start_s, end_s, builder.event_id))
        if context.signal_levels_as_events and level:
            builder.dr_event(f"{key}-level", region, level, window)


def map_event(
    event: Mapping[str, Any],
    context: MappingContext,
    *,
    first_seen_s: float,
    now_s: float,
    program: Mapping[str, Any] | None = None,
) -> EventMapping:
    """The fleet instructions one event asks for, from `now_s` on (intervals that have ended are left out)."""
    event_id = str(event.get("id") or "")
    builder = _Builder(context, event_id)
    regions, named = targeted_regions(event.get("targets"), context)
    try:
        windows = interval_windows(event, first_seen_s)
    except (ValueError, KeyError, TypeError) as error:
        builder.note(f"interval timing not understood ({error}); event ignored")
        windows = []
    descriptors = _descriptors(event.get("payloadDescriptors"), (program or {}).get("payloadDescriptors"))
    intervals = event.get("intervals") or []
    for index, window in enumerate(windows):
        if window.end_s is not None and window.end_s <= now_s:
            continue  # over: nothing left to ask
        for payload in intervals[index].get("payloads") or []:
            _map_payload(builder, payload, index, window, regions, named, descriptors)
    if event.get("duration") not in (None, "PT0S"):
        builder.note("event.duration (looping intervals) is not supported; intervals are used once")
    return EventMapping(
        event_id=event_id,
        program_id=str(event.get("programID") or ""),
        event_name=event.get("eventName") if isinstance(event.get("eventName"), str) else None,
        regions=regions,
        windows=tuple(windows),
        instructions=dict(builder.instructions),
        notes=tuple(builder.notes),
    )


def desired_instructions(mappings: Sequence[EventMapping]) -> dict[str, Instruction]:
    """All instructions the current events ask for, by id."""
    desired: dict[str, Instruction] = {}
    for mapping in mappings:
        desired.update(mapping.instructions)
    return desired
