"""OpenADR 3 schema layer: spec loading, OpenAPI 3.0 -> JSON Schema, errata, error messages, time formats."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from fleet.errors import ConfigError, OpenADRValidationError
from fleet.openadr import SPEC_VERSIONS, SpecVersion
from openadr.client import loads_strict
from openadr.schema import load_schemas, openapi_to_draft4, packaged_spec_dir
from openadr.timing import Duration, interval_windows, parse_duration, parse_instant

VERSIONS = SPEC_VERSIONS
T0 = "2024-07-01T18:00:00Z"
T0_S = parse_instant(T0, 0.0)


def server_event(**extra: object) -> dict[str, object]:
    event: dict[str, object] = {
        "id": "event-1",
        "createdDateTime": T0,
        "modificationDateTime": T0,
        "objectType": "EVENT",
        "programID": "program-1",
        "eventName": None,
        "intervalPeriod": {"start": T0, "duration": "PT1H"},
        "intervals": [{"id": 0, "payloads": [{"type": "SIMPLE", "values": [2]}]}],
    }
    event.update(extra)
    return event


@pytest.mark.parametrize("version", VERSIONS)
def test_both_versions_load_with_their_objects(version: SpecVersion) -> None:
    schemas = load_schemas(version)
    assert {"program", "event", "report", "subscription", "ven", "resource", "notification"} <= schemas.names
    assert {"SIMPLE", "PRICE", "GHG", "IMPORT_CAPACITY_LIMIT", "ALERT_GRID_EMERGENCY"} <= set(schemas.event_payloads)
    assert schemas.problems("event", server_event()) == []


def test_nullable_becomes_a_union_with_null() -> None:
    assert openapi_to_draft4({"type": "string", "nullable": True}) == {"type": ["string", "null"]}
    assert openapi_to_draft4({"type": "string", "enum": ["A"], "nullable": True}) == {
        "type": ["string", "null"],
        "enum": ["A", None],
    }
    assert openapi_to_draft4({"$ref": "#/x", "nullable": True}) == {"anyOf": [{"type": "null"}, {"$ref": "#/x"}]}
    assert openapi_to_draft4({"type": "string", "example": "x", "discriminator": {}}) == {"type": "string"}


@pytest.mark.parametrize("version", VERSIONS)
def test_errors_name_the_object_the_field_and_the_reason(version: SpecVersion) -> None:
    schemas = load_schemas(version)
    bad = server_event(programID="no spaces allowed", priority=-1)
    with pytest.raises(OpenADRValidationError) as caught:
        schemas.validate("event", bad, "GET /events [0]")
    message = str(caught.value)
    assert message.startswith(f"GET /events [0] (OpenADR {version}):")
    assert "programID: 'no spaces allowed' does not match" in message
    assert "priority: -1 is less than the minimum of 0" in message
    assert caught.value.object_name.startswith("GET /events [0]")


@pytest.mark.parametrize("version", VERSIONS)
def test_interval_payloads_follow_the_payload_enumeration(version: SpecVersion) -> None:
    schemas = load_schemas(version)
    cases = {
        ("SIMPLE", (5,)): "values(SIMPLE)[0]: 5 is greater than the maximum of 3",
        ("GHG", (-1.0,)): "values(GHG)[0]: -1.0 is less than the minimum of 0",
        ("ALERT_GRID_EMERGENCY", (3,)): "values(ALERT_GRID_EMERGENCY)[0]: 3 is not of type 'string'",
        ("IMPORT_CAPACITY_LIMIT", (1.0, 2.0)): "is too long",
    }
    for (kind, values), expected in cases.items():
        event = server_event(intervals=[{"id": 0, "payloads": [{"type": kind, "values": list(values)}]}])
        problems = schemas.problems("event", event)
        assert any(expected in problem for problem in problems), (kind, problems)
        assert all(problem.startswith("intervals[0].payloads[0].values") for problem in problems)
    # CONTROL_SETPOINT may carry a point: the enumeration's '#/components/schemas/point' resolves to the spec's.
    point = server_event(intervals=[{"id": 0, "payloads": [{"type": "CONTROL_SETPOINT", "values": [{"x": 1}]}]}])
    assert any("'y' is a required property" in p for p in schemas.problems("event", point))
    private = server_event(intervals=[{"id": 0, "payloads": [{"type": "MY_OWN", "values": ["x", 1]}]}])
    assert schemas.problems("event", private) == []


def test_now_sentinel_is_a_date_time_in_3_1_0_only() -> None:
    event = {"programID": "p", "intervalPeriod": {"start": "0001-01-01"}, "intervals": []}
    assert load_schemas("3.1.0").problems("eventRequest", event) == []
    problems = load_schemas("3.0.1").problems("event", event)
    assert problems == ["intervalPeriod.start: '0001-01-01' is not a 'date-time'"]
    assert load_schemas("3.1.0").problems("eventRequest", {**event, "intervalPeriod": {"start": "tomorrow"}})


@pytest.mark.parametrize(("object_type", "ok"), [("VEN", True), ("BL_VEN_REQUEST", False), ("NOT_A_TYPE", False)])
def test_3_1_0_ven_erratum_checks_the_servers_object_type(object_type: str, ok: bool) -> None:
    # As published, `ven` is allOf objectMetadata (objectType VEN...) and BlVenRequest (BL_VEN_REQUEST):
    # nothing could pass. The erratum keeps the server's objectType, which must still be a real object type.
    ven = {
        "id": "ven-1",
        "createdDateTime": T0,
        "modificationDateTime": T0,
        "objectType": object_type,
        "venName": "gridshift",
        "clientID": "client-1",
    }
    problems = load_schemas("3.1.0").problems("ven", ven)
    assert (problems == []) is ok


def test_3_1_0_request_bodies_differ_from_3_0_1() -> None:
    new, old = load_schemas("3.1.0"), load_schemas("3.0.1")
    ven_request = {"objectType": "VEN_VEN_REQUEST", "venName": "gridshift"}
    assert new.problems(new.request_schema("ven"), ven_request) == []
    assert new.problems(new.request_schema("ven"), {"venName": "gridshift"})  # objectType is required in 3.1.0
    report = {"eventID": "e", "clientName": "c", "resources": []}
    assert new.problems(new.request_schema("report"), report) == []
    assert old.problems(old.request_schema("report"), report) == ["(whole object): 'programID' is a required property"]


@pytest.mark.parametrize(("version", "good", "bad"), [("3.0.1", "POST", "CREATE"), ("3.1.0", "CREATE", "POST")])
def test_notification_operations_and_object_by_object_type(version: SpecVersion, good: str, bad: str) -> None:
    schemas = load_schemas(version)
    notification = {"objectType": "EVENT", "operation": good, "object": server_event()}
    assert schemas.problems("notification", notification) == []
    assert any("operation" in p for p in schemas.problems("notification", {**notification, "operation": bad}))
    broken = {**notification, "object": {**server_event(), "programID": 7}}
    assert schemas.problems("notification", broken) == ["object.programID: 7 is not of type 'string'"]


def test_openapi_formats_int32_and_token_type() -> None:
    schemas = load_schemas("3.1.0")
    event = server_event(intervals=[{"id": 2**31, "payloads": []}])
    assert any("int32" in p for p in schemas.problems("event", event))
    token = {"access_token": "x", "token_type": "Bearer", "expires_in": 60}
    assert schemas.problems("clientCredentialResponse", token) == []
    assert schemas.problems("clientCredentialResponse", {**token, "token_type": "MAC"})


def test_spec_folder_is_configurable(tmp_path: Path) -> None:
    for item in packaged_spec_dir().glob("*.yaml"):
        shutil.copy(item, tmp_path / item.name)
    assert load_schemas("3.0.1", tmp_path).problems("event", server_event()) == []
    with pytest.raises(ConfigError, match="cannot read the OpenADR spec"):
        load_schemas("3.0.1", tmp_path / "missing")
    with pytest.raises(ConfigError, match="not supported"):
        load_schemas("2.0b")  # type: ignore[arg-type]


def test_strict_json_refuses_nan() -> None:
    assert loads_strict('{"a": 1.5}') == {"a": 1.5}
    for text in ('{"a": NaN}', "[Infinity]", "<html>"):
        with pytest.raises(ValueError, match=r"valid JSON|Expecting value"):
            loads_strict(text)


def test_durations() -> None:
    assert parse_duration("PT1H") == Duration(seconds=3600)
    assert parse_duration("P1DT0.5S") == Duration(seconds=86_400.5)
    assert parse_duration("P2W") == Duration(seconds=14 * 86_400)
    assert parse_duration("P9999Y").infinite
    assert parse_duration("PT0S").is_zero
    jan_31 = parse_instant("2024-01-31T00:00:00Z", 0)
    assert parse_duration("P1M").after(jan_31) == parse_instant("2024-02-29T00:00:00Z", 0)
    for bad in ("-PT1H", "1H", "P", "PT"):
        with pytest.raises(ValueError, match="duration"):
            parse_duration(bad)


def test_interval_windows_follow_one_another_and_may_override() -> None:
    event = {
        "intervalPeriod": {"start": T0, "duration": "PT1H"},
        "intervals": [
            {"id": 7, "payloads": []},
            {"id": 3, "payloads": []},
            {"id": 9, "intervalPeriod": {"start": "2024-07-02T00:00:00Z", "duration": "PT30M"}, "payloads": []},
            {"id": 4, "payloads": []},
        ],
    }
    windows = interval_windows(event, now_s=0.0)
    assert [(w.interval_id, w.start_s - T0_S, None if w.end_s is None else w.end_s - T0_S) for w in windows] == [
        (7, 0, 3600),
        (3, 3600, 7200),
        (9, 6 * 3600, 6 * 3600 + 1800),
        (4, 6 * 3600 + 1800, 6 * 3600 + 5400),
    ]


def test_interval_windows_without_start_or_duration() -> None:
    open_ended = interval_windows({"intervals": [{"id": 0, "payloads": []}, {"id": 1, "payloads": []}]}, now_s=50.0)
    # No start: the time first seen; PT0S: until cleared; an interval after one that never ends never starts.
    assert [(w.start_s, w.end_s) for w in open_ended] == [(50.0, None)]
    sentinel = {
        "intervalPeriod": {"start": "0001-01-01", "duration": "P9999Y"},
        "intervals": [{"id": 0, "payloads": []}],
    }
    assert [(w.start_s, w.end_s) for w in interval_windows(sentinel, now_s=99.0)] == [(99.0, None)]
