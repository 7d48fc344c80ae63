"""Trace loader: the contract format, gzip or not, gaps and bad values, and malformed files with line and reason."""

from __future__ import annotations

import gzip
import math
from pathlib import Path

import numpy as np
import pytest

from fleet.errors import TraceFormatError
from grid.trace import load_trace, packaged_trace, parse_trace

HEADER = "time,zone,demand_mw,carbon_g_per_kwh"


def _lines(*rows: str, header: str = HEADER) -> list[str]:
    return [header, *rows]


def test_parses_rows_and_answers_latest_with_its_timestamp() -> None:
    trace = parse_trace(
        _lines(
            "2022-09-07T00:00:00Z,CISO,50609,250.5",
            "2022-09-07T01:00:00Z,CISO,51104,260.0",
            "2022-09-07T00:00:00Z,BPAT,7511,30.0",
        )
    )
    assert set(trace.zones) == {"CISO", "BPAT"}
    assert trace.columns == ("demand_mw", "carbon_g_per_kwh")
    at = 1662512400 + 1800  # 01:30
    observation = trace.latest("CISO", "demand_mw", at)
    assert observation is not None
    assert observation.value == 51104
    assert observation.observed_at_s == 1662512400
    assert trace.latest("CISO", "demand_mw", 1662508800 - 1) is None  # before the first row
    assert trace.latest("NYIS", "demand_mw", at) is None  # unknown zone
    assert trace.latest("CISO", "price_usd_per_mwh", at) is None  # absent column: no signal, not zero


def test_missing_values_are_gaps_never_zero() -> None:
    trace = parse_trace(
        _lines(
            "2022-09-07T00:00:00Z,CISO,50609,250",
            "2022-09-07T01:00:00Z,CISO,EMPTY,",
            "2022-09-07T02:00:00Z,CISO,MISSING,NaN",
        )
    )
    observation = trace.latest("CISO", "demand_mw", 1662519600)  # 02:00
    assert observation is not None
    # The latest *present* value, with its own (older) timestamp so staleness is visible downstream.
    assert observation.value == 50609
    assert observation.observed_at_s == 1662508800
    values = trace.zones["CISO"].columns["demand_mw"]
    assert np.isnan(values[1:]).all()
    assert trace.bad_value_count == 0  # known missing tokens are gaps, not bad values


def test_impossible_values_are_read_as_missing_and_reported() -> None:
    trace = parse_trace(
        _lines(
            "2022-09-07T00:00:00Z,CISO,-5,250",
            "2022-09-07T01:00:00Z,CISO,inf,-1",
        )
    )
    assert trace.latest("CISO", "demand_mw", 1662512400) is None
    assert trace.bad_value_count == 3
    assert [(bad.line, bad.column) for bad in trace.bad_values] == [
        (2, "demand_mw"),
        (3, "demand_mw"),
        (3, "carbon_g_per_kwh"),
    ]


def test_negative_prices_are_real() -> None:
    trace = parse_trace(["time,zone,price_usd_per_mwh", "2023-04-01T20:00:00Z,CISO,-12.5"])
    observation = trace.latest("CISO", "price_usd_per_mwh", 1680379200)
    assert observation is not None
    assert observation.value == -12.5


def test_comments_crlf_bom_and_unsorted_rows(tmp_path: Path) -> None:
    path = tmp_path / "trace.csv"
    path.write_bytes(
        "\ufeff# attribution: EIA-930\r\n"
        "time,zone,demand_mw\r\n"
        "2022-09-07T01:00:00Z,CISO,51104\r\n"
        "2022-09-07T00:00:00+00:00,CISO,50609\r\n"
        "\r\n".encode()
    )
    trace = load_trace(path)
    assert trace.zones["CISO"].times_s.tolist() == [1662508800, 1662512400]
    assert trace.zones["CISO"].columns["demand_mw"].tolist() == [50609, 51104]


def test_gzip_detected_by_content_not_name(tmp_path: Path) -> None:
    path = tmp_path / "trace.csv"  # gzip bytes under a plain name
    path.write_bytes(gzip.compress(b"time,zone,dr_level\n2022-09-07T00:00:00Z,CISO,3\n"))
    observation = load_trace(path).latest("CISO", "dr_level", 1662508800)
    assert observation is not None
    assert observation.value == 3


@pytest.mark.parametrize(
    ("lines", "line", "reason"),
    [
        ([], 0, "no header line"),
        (["# only a comment"], 0, "no header line"),
        (["zone,time,demand_mw"], 1, "header must start with 'time,zone'"),
        (["time,zone,demand"], 1, "unknown column 'demand'"),
        (["time,zone,demand_mw,demand_mw"], 1, "duplicate column"),
        (["time,zone,demand_mw"], 1, "no data rows"),
        (["time,zone,demand_mw", "2022-09-07T00:00:00Z,CISO"], 2, "expected 3 fields"),
        (["time,zone,demand_mw", "2022-09-07T00:00:00Z,CISO,1,2"], 2, "expected 3 fields"),
        (["time,zone,demand_mw", "07/09/2022 00:00,CISO,1"], 2, "time: not an ISO-8601 time"),
        (["time,zone,demand_mw", "2022-09-07T00:00:00,CISO,1"], 2, "has no UTC offset"),
        (["time,zone,demand_mw", "2022-09-07T00:00:00Z,,1"], 2, "zone: empty"),
        (["time,zone,demand_mw", "2022-09-07T00:00:00Z,CISO,lots"], 2, "demand_mw: not a number: 'lots'"),
        (["time,zone,dr_level", "2022-09-07T00:00:00Z,CISO,5"], 2, "dr_level: must be an integer 0..3"),
        (["time,zone,dr_level", "2022-09-07T00:00:00Z,CISO,1.5"], 2, "dr_level: must be an integer 0..3"),
        (
            [
                "time,zone,demand_mw",
                "2022-09-07T01:00:00Z,CISO,1",
                "2022-09-07T00:00:00Z,CISO,1",
                "2022-09-07T01:00:00+00:00,CISO,2",
            ],
            4,
            "duplicate row for zone 'CISO' at 2022-09-07T01:00:00Z (first at line 2)",
        ),
    ],
)
def test_malformed_files_fail_with_line_and_reason(lines: list[str], line: int, reason: str) -> None:
    with pytest.raises(TraceFormatError) as caught:
        parse_trace(lines, source="t.csv")
    assert caught.value.line == line
    assert reason in caught.value.reason
    assert str(caught.value).startswith(f"t.csv:{line}: ")


def test_unreadable_file(tmp_path: Path) -> None:
    with pytest.raises(TraceFormatError, match="cannot read"):
        load_trace(tmp_path / "absent.csv")
    binary = tmp_path / "binary.csv"
    binary.write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(TraceFormatError, match="not UTF-8"):
        load_trace(binary)


def test_trailing_quantile_uses_only_the_window_and_ignores_gaps() -> None:
    rows = [f"2022-01-01T{hour:02d}:00:00Z,X,{value}" for hour, value in enumerate([10, 20, "EMPTY", 40, 1000])]
    trace = parse_trace(["time,zone,demand_mw", *rows])
    start = 1640995200
    # Window of 3 h ending at 03:00 holds 01:00, 02:00 (gap), 03:00: max 40, the 1000 at 04:00 is the future.
    assert trace.trailing_quantile("X", "demand_mw", start + 3 * 3600, 3 * 3600, 1.0) == 40
    assert trace.trailing_quantile("X", "demand_mw", start + 2 * 3600, 3600, 1.0) is None  # only the gap
    assert trace.trailing_quantile("Y", "demand_mw", start, 3600, 1.0) is None


def test_packaged_default_trace_loads_with_the_heat_wave_peak() -> None:
    trace = load_trace(packaged_trace("grid_2022.csv.gz"))
    peak = trace.latest("CISO", "demand_mw", 1662512400)  # 2022-09-07T01:00Z
    assert peak is not None
    assert (peak.value, peak.observed_at_s) == (51104, 1662512400)
    assert {"CISO", "BPAT", "PJM", "PJM-DOM"} <= set(trace.zones)
    carbon = trace.latest("BPAT", "carbon_g_per_kwh", 1662512400)
    assert carbon is not None
    assert 0 < carbon.value < 200
    # Gaps in the raw data stay gaps: no hour of demand is zero.
    for series in trace.zones.values():
        demand = series.columns["demand_mw"]
        assert not (demand[~np.isnan(demand)] == 0).any()
    assert not math.isnan(trace.span_s()[0])
