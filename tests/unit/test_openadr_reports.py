"""Pure report builders: which intervals have closed, mean power against baseline, capacity, valid bodies."""

from __future__ import annotations

import math

import pytest

from openadr.fleet import PowerReading
from openadr.reports import (
    aggregate_readings,
    capacity_resources,
    mean_power,
    report_body,
    report_windows,
    requested_usage,
    usage_intervals,
)
from openadr.schema import load_schemas
from openadr.timing import IntervalWindow


def reading(at_s: float, grid: float, base: float = 1000.0, region: str = "r") -> PowerReading:
    return PowerReading(region, at_s, grid, base, {"shift": 300.0, "battery": 100.0})


def test_finished_intervals_close_at_their_end_and_open_ones_in_buckets() -> None:
    windows = [IntervalWindow(5, 0.0, 100.0), IntervalWindow(6, 100.0, None)]
    assert report_windows(windows, now_s=99.0, bucket_s=60) == []
    assert [(w.start_s, w.end_s) for w in report_windows(windows, now_s=230.0, bucket_s=60)] == [
        (0.0, 100.0),
        (100.0, 160.0),
        (160.0, 220.0),
    ]
    # Deleted at 250: the open interval closes there, the last piece short.
    closed = report_windows(windows, now_s=400.0, bucket_s=60, ended_at_s=250.0)
    assert [(w.interval_id, w.start_s, w.end_s) for w in closed] == [
        (0, 0.0, 100.0),
        (1, 100.0, 160.0),
        (2, 160.0, 220.0),
        (3, 220.0, 250.0),
    ]


def test_mean_power_uses_finite_readings_inside_the_window() -> None:
    readings = [reading(0, 900), reading(30, 700), reading(60, 100), reading(45, math.nan)]
    power = mean_power(readings, 0, 60)
    assert power is not None
    assert (power.grid_kw, power.baseline_kw, power.samples) == (800.0, 1000.0, 2)
    assert mean_power(readings, 100, 200) is None


def test_usage_interval_values_and_units() -> None:
    windows = report_windows([IntervalWindow(0, 0.0, 1800.0)], now_s=1800.0, bucket_s=900)
    (interval,) = usage_intervals([reading(10, 600.0)], windows, ("DEMAND", "BASELINE", "USAGE", "DELTA_USAGE"))
    assert interval["intervalPeriod"] == {"start": "1970-01-01T00:00:00.000Z", "duration": "PT1800S"}
    assert {p["type"]: p["values"][0] for p in interval["payloads"]} == {
        "DEMAND": 600.0,
        "BASELINE": 1000.0,
        "USAGE": 300.0,  # kWh over half an hour
        "DELTA_USAGE": -200.0,
    }


def test_report_requests_are_reduced_to_what_gridshift_can_give() -> None:
    assert requested_usage({}).payload_types == ("DEMAND", "BASELINE")
    request = requested_usage(
        {"reportDescriptors": [{"payloadType": "USAGE", "aggregate": True}, {"payloadType": "STORAGE_CHARGE_LEVEL"}]}
    )
    assert (request.payload_types, request.aggregate, request.unsupported) == (
        ("USAGE",),
        True,
        ("STORAGE_CHARGE_LEVEL",),
    )


def test_aggregate_sums_moments_every_resource_saw() -> None:
    summed = aggregate_readings({"a": [reading(0, 10), reading(10, 20)], "b": [reading(0, 1)]})
    assert [(r.at_s, r.grid_kw, r.baseline_kw) for r in summed] == [(0, 11, 2000)]


@pytest.mark.parametrize("version", ["3.0.1", "3.1.0"])
def test_capacity_report_is_valid_and_carries_levers(version: str) -> None:
    readings = {"us-west-2": reading(0, 800.0), "us-east-1": reading(0, math.inf)}
    resources, kinds, skipped = capacity_resources(readings, {"us-west-2": "dc-or", "us-east-1": "dc-va"}, 0.0, True)
    assert skipped == ["us-east-1"]
    payloads = {p["type"]: p["values"][0] for p in resources[0]["intervals"][0]["payloads"]}
    assert payloads == {
        "LOAD_SHED_DELTA_AVAILABLE": 400.0,
        "DEMAND": 800.0,
        "BASELINE": 1000.0,
        "GRIDSHIFT_BATTERY_AVAILABLE": 100.0,
        "GRIDSHIFT_SHIFT_AVAILABLE": 300.0,
    }
    body = report_body(
        version,  # type: ignore[arg-type]
        program_id="p1",
        event_id="e1",
        client_name="ven",
        report_name="capacity",
        payload_types=kinds,
        resources=resources,
    )
    schemas = load_schemas(version)  # type: ignore[arg-type]
    assert schemas.problems(schemas.request_schema("report"), body) == []
    units = {d["payloadType"]: d["units"] for d in body["payloadDescriptors"]}
    assert set(units.values()) == {"KW"}
    assert len(units) == 5
