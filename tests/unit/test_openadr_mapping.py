"""Pure mapping of OpenADR event payloads to fleet instructions, and the changes that bring the fleet in line."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fleet.events import DREvent, GridSignal
from openadr.fleet import plan_changes
from openadr.mapping import MappingContext, desired_instructions, level_for, map_event
from openadr.timing import parse_instant

T0 = "2024-07-01T18:00:00Z"
T0_S = parse_instant(T0, 0.0)
REGIONS = {"us-east-1": "dc-virginia", "us-west-2": "dc-oregon"}
CAPACITY = {"us-east-1": 3000.0, "us-west-2": 1000.0}


def context(version: str = "3.1.0", **extra: Any) -> MappingContext:
    values: dict[str, Any] = {
        "ven_name": "gridshift-ven",
        "spec_version": version,
        "resources": REGIONS,
        "capacity_kw": CAPACITY,
        "price_levels_usd_per_mwh": (150.0, 300.0, 1000.0),
        "ghg_levels_g_per_kwh": (450.0, 650.0, 850.0),
    }
    values.update(extra)
    return MappingContext(**values)


def event(payloads: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": "ev1",
        "programID": "prog1",
        "intervalPeriod": {"start": T0, "duration": "PT1H"},
        "intervals": [{"id": 0, "payloads": payloads}],
    }
    body.update(extra)
    return body


def mapped(body: dict[str, Any], ctx: MappingContext | None = None, now_s: float = T0_S - 60, **kw: Any) -> Any:
    return map_event(body, ctx or context(), first_seen_s=T0_S - 600, now_s=now_s, **kw)


def test_simple_level_becomes_a_dr_event_per_region_with_the_interval_times() -> None:
    result = mapped(event([{"type": "SIMPLE", "values": [2]}]))
    events = sorted(result.instructions.values(), key=lambda i: i.region)
    assert [(e.region, e.level, e.source) for e in events] == [("us-east-1", 2, "utility"), ("us-west-2", 2, "utility")]
    assert all(isinstance(e, DREvent) for e in events)
    assert events[0].start.timestamp() == T0_S
    assert events[0].end is not None
    assert events[0].end.timestamp() == T0_S + 3600
    assert events[0].event_id == "oadr-ev1-0-SIMPLE-us-east-1"
    assert mapped(event([{"type": "SIMPLE", "values": [0]}])).instructions == {}  # normal operation


def test_grid_emergency_alert_is_level_3_until_cleared() -> None:
    body = event([{"type": "ALERT_GRID_EMERGENCY", "values": ["Stage 3 emergency"]}], intervalPeriod={"start": T0})
    result = mapped(body)
    assert {(i.region, i.level, i.end) for i in result.instructions.values()} == {
        ("us-east-1", 3, None),
        ("us-west-2", 3, None),
    }


@pytest.mark.parametrize(
    ("version", "targets", "regions"),
    [
        ("3.1.0", ["dc-oregon"], ("us-west-2",)),
        ("3.1.0", ["gridshift-ven"], ("us-east-1", "us-west-2")),
        ("3.1.0", None, ("us-east-1", "us-west-2")),
        ("3.0.1", [{"type": "RESOURCE_NAME", "values": ["dc-virginia"]}], ("us-east-1",)),
        ("3.0.1", [{"type": "GROUP", "values": ["dc-virginia"]}], ("us-east-1", "us-west-2")),
        ("3.0.1", [{"type": "VEN_NAME", "values": ["gridshift-ven"]}], ("us-east-1", "us-west-2")),
    ],
)
def test_targets_pick_regions(version: str, targets: Any, regions: tuple[str, ...]) -> None:
    result = mapped(event([{"type": "SIMPLE", "values": [3]}], targets=targets), context(version))
    assert result.regions == regions
    assert sorted({i.region for i in result.instructions.values()}) == list(regions)


@pytest.mark.parametrize(("units", "value", "kw"), [("KW", 800.0, 800.0), ("W", 800_000.0, 800.0), ("MW", 0.8, 800.0)])
def test_import_capacity_limit_in_kw_on_a_named_resource(units: str, value: float, kw: float) -> None:
    descriptors = [{"objectType": "EVENT_PAYLOAD_DESCRIPTOR", "payloadType": "IMPORT_CAPACITY_LIMIT", "units": units}]
    body = event(
        [{"type": "IMPORT_CAPACITY_LIMIT", "values": [value]}], targets=["dc-oregon"], payloadDescriptors=descriptors
    )
    (limit,) = mapped(body).instructions.values()
    assert isinstance(limit, DREvent)
    assert (limit.region, limit.level, limit.source) == ("us-west-2", None, "utility")
    assert limit.power_limit_kw == pytest.approx(kw)
    assert limit.start.timestamp() == T0_S
    assert limit.end is not None
    assert limit.end.timestamp() == T0_S + 3600


def test_an_import_limit_of_zero_is_the_emergency_level() -> None:
    result = mapped(event([{"type": "IMPORT_CAPACITY_LIMIT", "values": [0.0]}], targets=["dc-oregon"]))
    assert [(i.level, i.power_limit_kw) for i in result.instructions.values()] == [(3, None)]
    assert result.notes == ("IMPORT_CAPACITY_LIMIT of 0 kW: asked of the fleet as level 3",)


def test_a_ven_wide_limit_is_shared_by_capacity_and_units_come_from_the_program_too() -> None:
    program = {"payloadDescriptors": [{"payloadType": "IMPORT_CAPACITY_LIMIT", "units": "MW"}]}
    result = mapped(event([{"type": "IMPORT_CAPACITY_LIMIT", "values": [2.0]}]), program=program)
    shares = {i.region: i.power_limit_kw for i in result.instructions.values() if isinstance(i, DREvent)}
    assert shares == {"us-east-1": pytest.approx(1500.0), "us-west-2": pytest.approx(500.0)}


def test_a_limit_in_units_that_are_not_power_is_refused_with_a_note() -> None:
    descriptors = [{"payloadType": "IMPORT_CAPACITY_LIMIT", "units": "KWH"}]
    result = mapped(event([{"type": "IMPORT_CAPACITY_LIMIT", "values": [5.0]}], payloadDescriptors=descriptors))
    assert result.instructions == {}
    assert result.notes == ("IMPORT_CAPACITY_LIMIT in units 'KWH' is not a power gridshift knows; ignored",)


def test_price_is_carried_in_usd_per_mwh_with_a_derived_level() -> None:
    descriptors = [{"payloadType": "PRICE", "units": "KWH", "currency": "USD"}]
    body = event([{"type": "PRICE", "values": [0.35]}], payloadDescriptors=descriptors, targets=["dc-oregon"])
    (signal,) = mapped(body).instructions.values()
    assert isinstance(signal, GridSignal)
    assert (signal.kind, signal.unit, signal.level) == ("price", "USD/MWh", 2)
    assert signal.value == pytest.approx(350.0)
    euro = event(
        [{"type": "PRICE", "values": [400.0]}],
        payloadDescriptors=[{"payloadType": "PRICE", "units": "MWH", "currency": "EUR"}],
    )
    assert {(s.unit, s.level) for s in mapped(euro).instructions.values()} == {("EUR/MWh", None)}


def test_ghg_level_and_optional_dr_event_from_signal_levels() -> None:
    body = event([{"type": "GHG", "values": [700.0]}], targets=["dc-virginia"])
    (signal,) = mapped(body).instructions.values()
    assert (signal.kind, signal.value, signal.unit, signal.level) == ("ghg", 700.0, "gCO2/kWh", 2)
    both = mapped(body, context(signal_levels_as_events=True)).instructions
    assert sorted(type(i).__name__ for i in both.values()) == ["DREvent", "GridSignal"]
    assert [i.level for i in both.values() if isinstance(i, DREvent)] == [2]


def test_ended_intervals_are_left_out_and_unknown_payloads_noted() -> None:
    body = event(
        [{"type": "SIMPLE", "values": [1]}, {"type": "CTA2045_REBOOT", "values": [0]}],
        intervals=[
            {"id": 0, "payloads": [{"type": "SIMPLE", "values": [1]}]},
            {"id": 1, "payloads": [{"type": "SIMPLE", "values": [3]}, {"type": "CTA2045_REBOOT", "values": [0]}]},
        ],
    )
    result = mapped(body, now_s=T0_S + 3600)  # the first hour is over
    assert {i.level for i in result.instructions.values()} == {3}
    assert result.notes == ("payload type 'CTA2045_REBOOT' is not acted on",)
    assert mapped(body, now_s=T0_S + 7200).instructions == {}


def test_same_event_twice_changes_nothing_and_modify_or_delete_changes_only_what_it_must() -> None:
    body = event([{"type": "SIMPLE", "values": [2]}])
    applied = desired_instructions([mapped(body)])
    assert not plan_changes(applied, desired_instructions([mapped(body)]))
    raised = event([{"type": "SIMPLE", "values": [3]}])
    changes = plan_changes(applied, desired_instructions([mapped(raised)]))
    assert changes.clear == ()
    assert {i.level for i in changes.apply if isinstance(i, DREvent)} == {3}
    narrowed = event([{"type": "SIMPLE", "values": [2]}], targets=["dc-oregon"])
    changes = plan_changes(applied, desired_instructions([mapped(narrowed)]))
    assert [i.region for i in changes.clear] == ["us-east-1"]
    assert changes.apply == ()
    deleted = plan_changes(applied, desired_instructions([]))
    assert sorted(i.region for i in deleted.clear) == ["us-east-1", "us-west-2"]


def test_event_with_unreadable_timing_asks_for_nothing() -> None:
    result = mapped(event([{"type": "SIMPLE", "values": [3]}], intervalPeriod={"start": T0, "duration": "-PT1H"}))
    assert result.instructions == {}
    assert "interval timing not understood" in result.notes[0]


def test_level_for_thresholds() -> None:
    assert [level_for(v, (1.0, 2.0, 3.0)) for v in (0.5, 1.0, 2.5, 3.0, 99.0)] == [0, 1, 2, 3, 3]


@given(
    st.dictionaries(st.sampled_from("abcdef"), st.integers(1, 3), max_size=6),
    st.dictionaries(st.sampled_from("abcdef"), st.integers(1, 3), max_size=6),
)
def test_applying_the_planned_changes_reaches_the_desired_set(before: dict[str, int], after: dict[str, int]) -> None:
    def instructions(levels: dict[str, int]) -> dict[str, DREvent]:
        start = "2024-07-01T18:00:00Z"
        return {k: DREvent(region="r", level=v, start=start, event_id=k) for k, v in levels.items()}

    applied: dict[str, Any] = instructions(before)
    changes = plan_changes(applied, instructions(after))
    for item in changes.clear:
        del applied[item.event_id]  # type: ignore[union-attr]
    for item in changes.apply:
        applied[item.event_id] = item  # type: ignore[union-attr]
    assert applied == instructions(after)
    assert not plan_changes(applied, instructions(after))
