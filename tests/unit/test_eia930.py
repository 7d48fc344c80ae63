"""Raw EIA-930, fuel-mix and price readers on the real files, on synthetic malformed files, and the built traces."""

from __future__ import annotations

import dataclasses
import gzip
import json
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest

from fleet.errors import TraceFormatError
from grid.eia930 import (
    MISSING_TOKENS,
    RawSeries,
    forecast_blanked_lines,
    read_demand,
    read_demand_with_forecast,
    read_fuelmix_carbon,
    read_price,
)

REPO_ROOT = Path(__file__).resolve().parents[2]
TRACES = REPO_ROOT / "grid" / "data" / "traces"
LATENCY = REPO_ROOT / "fleet" / "data" / "aws_interregion_p50_ms.json"
BUILD_SCRIPT = REPO_ROOT / "scripts" / "build_traces.py"

DEMAND = "eia930/demand_2020_2024"
FORECAST = "eia930/demand_forecast_2015_2019"
FUELMIX = "eia930/fuelmix_2022"
PRICES = "prices_2023"

RAW_HEADER = "date_time,demand (MW)"


def _epoch(stamp: str) -> int:
    return int(datetime.fromisoformat(stamp).replace(tzinfo=UTC).timestamp())


def _lines(path: Path) -> list[str]:
    """The file's lines as the reader numbers them: line n is index n - 1."""
    return gzip.decompress(path.read_bytes()).decode("utf-8").replace("\r", "").split("\n")


def _value_at(series: RawSeries, stamp: str) -> float:
    index = int(np.searchsorted(series.times, _epoch(stamp)))
    assert series.times[index] == _epoch(stamp)
    return float(series.values[index])


def _write(tmp_path: Path, text: str, *, compress: bool = False, name: str = "f.csv") -> Path:
    path = tmp_path / name
    data = text.encode("utf-8")
    path.write_bytes(gzip.compress(data, mtime=0) if compress else data)
    return path


# ---------------------------------------------------------------------------------------------
# real files


def test_ciso_crlf_empty_and_missing_rows_become_nan_with_their_line_numbers(shared_data: Path) -> None:
    path = shared_data / DEMAND / "CISO_raw_demand.csv.gz"
    assert b"\r\n" in gzip.decompress(path.read_bytes())[:100]  # the file really is CRLF
    series = read_demand(path)
    assert series.unit == "MW"
    assert series.source == str(path)
    assert len(series.times) == 43848  # 2020-01-01 .. 2024-12-31, hourly
    assert np.all(np.diff(series.times) == 3600)
    lines = _lines(path)
    known = {
        1062: "2020-02-14 04:00:00,EMPTY",
        1723: "2020-03-12 17:00:00,EMPTY",
        14552: "2021-08-29 06:00:00,EMPTY",
        16232: "2021-11-07 06:00:00,MISSING",
        33934: "2023-11-14 20:00:00,EMPTY",
    }
    for line, text in known.items():
        assert lines[line - 1] == text
        assert line in series.missing_lines
        assert np.isnan(_value_at(series, text.split(",")[0]))
    token_lines = [n for n, text in enumerate(lines[1:], start=2) if text.split(",")[-1] in ("EMPTY", "MISSING")]
    assert len(token_lines) == 14
    # Every missing-token row, plus the one single-hour dip (13,807 MW between ~26,000s), and nothing else.
    assert lines[6765 - 1] == "2020-10-08 19:00:00,13807"
    assert series.missing_lines == tuple(sorted([*token_lines, 6765]))
    assert np.count_nonzero(np.isnan(series.values)) == len(series.missing_lines)


def test_no_missing_value_is_ever_read_as_zero(shared_data: Path) -> None:
    for path in sorted((shared_data / DEMAND).glob("*.csv.gz")):
        series = read_demand(path)
        lines = _lines(path)
        assert not np.any(series.values == 0.0), path.name
        assert np.all(series.values[~np.isnan(series.values)] > 0.0), path.name
        missing = set(series.missing_lines)
        for n, text in enumerate(lines[1:], start=2):
            if text and text.split(",")[1] in MISSING_TOKENS:
                assert n in missing, (path.name, n)
    # NYIS reports 0 MW three times in 2024: a reporting failure, kept as a gap.
    nyis = read_demand(shared_data / DEMAND / "NYIS_raw_demand.csv.gz")
    for line, stamp in ((35474, "2024-01-18 00:00:00"), (41855, "2024-10-09 21:00:00")):
        assert line in nyis.missing_lines
        assert np.isnan(_value_at(nyis, stamp))


def test_ciso_heat_wave_peak_is_read_exactly(shared_data: Path) -> None:
    series = read_demand(shared_data / DEMAND / "CISO_raw_demand.csv.gz")
    assert _value_at(series, "2022-09-07 01:00:00") == 51104.0
    in_2022 = (series.times >= _epoch("2022-01-01 00:00")) & (series.times < _epoch("2023-01-01 00:00"))
    assert np.nanmax(series.values[in_2022]) == 51104.0
    # The README's other landmarks: PJM and ERCO both peaked in the same hour of 2022.
    for zone, peak in (("PJM", 148528.0), ("ERCO", 79830.0)):
        other = read_demand(shared_data / DEMAND / f"{zone}_raw_demand.csv.gz")
        assert _value_at(other, "2022-07-20 22:00:00") == peak
        assert np.nanmax(other.values[in_2022]) == peak


def test_impossible_demand_is_rejected(shared_data: Path) -> None:
    # AZPS reports -21,897 MW; PJM reports 2,147,480,000 MW (an int32-overflow sentinel);
    # AZPS jumps 4,169 -> 9,331 -> 4,403 MW within two hours.
    azps = read_demand(shared_data / DEMAND / "AZPS_raw_demand.csv.gz")
    pjm = read_demand(shared_data / DEMAND / "PJM_raw_demand.csv.gz")
    for series, stamp in (
        (azps, "2023-12-19 21:00:00"),
        (azps, "2021-07-14 19:00:00"),
        (pjm, "2021-10-19 03:00:00"),
        (pjm, "2021-10-19 04:00:00"),
        (pjm, "2021-10-19 05:00:00"),
    ):
        assert np.isnan(_value_at(series, stamp)), stamp
    assert _value_at(azps, "2021-07-14 18:00:00") == 4169.0
    assert _value_at(azps, "2021-07-14 20:00:00") == 4403.0
    assert float(np.nanmax(pjm.values)) < 200_000.0


def test_pjm_dom_non_okay_categories_are_nan(shared_data: Path) -> None:
    path = shared_data / DEMAND / "PJM-DOM_cleaned_demand.csv.gz"
    series = read_demand(path)
    lines = _lines(path)
    flagged = [n for n, text in enumerate(lines[1:], start=2) if text and text.split(",")[2] != "OKAY"]
    assert len(flagged) == 197  # 193 MISSING, 2 GLOBAL_DEM, 2 GLOBAL_DEM_PLUS_MINUS
    assert series.missing_lines == tuple(flagged)
    # The GLOBAL_DEM_PLUS_MINUS rows carry plausible raw values, flagged nonetheless; the
    # GLOBAL_DEM rows carry 1.5e9 MW. All four are gaps; the cleaned (imputed) column is not used.
    for line in (15772, 15773, 15774, 15775):
        stamp, raw, category, _cleaned = lines[line - 1].split(",")
        assert category.startswith("GLOBAL_DEM")
        assert np.isnan(_value_at(series, stamp)), (line, raw)
    assert _value_at(series, "2020-01-01 00:00:00") == 11775.0


def test_pjm_2015_forecast_blanking_rule_fires_and_nowhere_else(shared_data: Path) -> None:
    path = shared_data / FORECAST / "PJM.csv.gz"
    demand, forecast = read_demand_with_forecast(path)
    assert (demand.unit, forecast.unit) == ("MW", "MW")
    assert np.array_equal(demand.times, forecast.times)
    blanked = forecast_blanked_lines(path)
    assert len(blanked) == 629
    assert min(blanked) == 2  # the very first row: 106,560 MW demand, 42,144 MW "forecast"
    assert max(blanked) < 2 + 28 * 24  # all within the first four weeks of July 2015
    assert set(blanked) <= set(forecast.missing_lines)
    assert np.isnan(_value_at(forecast, "2015-07-02 00:00:00"))
    assert _value_at(demand, "2015-07-02 00:00:00") == 106560.0
    # The rule judges each value: a genuine PJM-wide forecast inside the bad weeks is kept.
    assert _value_at(forecast, "2015-07-27 12:00:00") == 93265.0
    # After the bad weeks every forecast that is present lies within 0.5..2x of demand.
    later = forecast.times > _epoch("2015-08-01 00:00")
    ratio = forecast.values[later] / demand.values[later]
    ratio = ratio[~np.isnan(ratio)]
    assert ratio.min() > 0.5
    assert ratio.max() < 2.0
    for zone in ("CISO", "ERCO"):
        assert forecast_blanked_lines(shared_data / FORECAST / f"{zone}.csv.gz") == ()


def test_forecast_file_demand_uses_raw_column_and_category(shared_data: Path) -> None:
    path = shared_data / FORECAST / "CISO.csv.gz"
    demand, forecast = read_demand_with_forecast(path)
    lines = _lines(path)
    for n, text in enumerate(lines[1:], start=2):
        if not text:
            continue
        _stamp, raw, category, _cleaned, predicted = text.split(",")
        if category != "OKAY" or raw in MISSING_TOKENS:
            assert n in demand.missing_lines
        if predicted in MISSING_TOKENS:
            assert n in forecast.missing_lines
    assert not np.any(demand.values == 0.0)
    assert not np.any(forecast.values == 0.0)


def test_fuelmix_carbon(shared_data: Path) -> None:
    bpat = read_fuelmix_carbon(shared_data / FUELMIX / "BPAT_NG_avgCI_2022.csv.gz")
    assert bpat.unit == "gCO2/kWh"
    assert len(bpat.times) == 8760
    assert bpat.missing_lines == ()
    assert 22.0 < np.nanmin(bpat.values) < np.nanmax(bpat.values) < 114.0  # hydro-heavy, per the README
    miso = read_fuelmix_carbon(shared_data / FUELMIX / "MISO_NG_avgCI_2022.csv.gz")
    assert 277.0 < np.nanmin(miso.values) < np.nanmax(miso.values) < 556.0  # coal-heavy
    pjm = read_fuelmix_carbon(shared_data / FUELMIX / "PJM_NG_avgCI_2022.csv.gz")
    assert len(pjm.missing_lines) == 23  # rows with every cell empty, e.g. 2022-03-13 07:00 .. 03-14 04:00
    assert 1713 in pjm.missing_lines
    assert np.isnan(_value_at(pjm, "2022-03-13 07:00:00"))
    ciso = read_fuelmix_carbon(shared_data / FUELMIX / "CISO_NG_avgCI_2022.csv.gz")
    assert ciso.times[0] == _epoch("2022-01-01 00:00")
    assert abs(_value_at(ciso, "2022-01-01 00:00:00") - 222.29592090536002) < 1e-9


def test_prices_keep_negative_values(shared_data: Path) -> None:
    ciso = read_price(shared_data / PRICES / "US-CAL-CISO_electricity_prices_2023.csv.gz")
    assert ciso.unit == "USD/MWh"
    assert len(ciso.times) == 8760
    assert ciso.missing_lines == ()
    assert np.count_nonzero(ciso.values < 0) == 149
    assert _value_at(ciso, "2023-03-26 02:00:00") == pytest.approx(-0.8600499999999431)
    pjm = read_price(shared_data / PRICES / "US-MIDA-PJM_electricity_prices_2023.csv.gz")
    assert _value_at(pjm, "2023-09-03 15:00:00") == pytest.approx(-3.3040575000000283)
    erco = read_price(shared_data / PRICES / "US-TEX-ERCO_electricity_prices_2023.csv.gz")
    assert np.nanmax(erco.values) > 1000.0  # scarcity pricing is kept too


# ---------------------------------------------------------------------------------------------
# synthetic files: accepted variations


def test_gzip_is_detected_by_content_and_crlf_bom_are_stripped(tmp_path: Path) -> None:
    text = f"\ufeff{RAW_HEADER}\r\n2020-01-01 00:00:00,100\r\n2020-01-01 01:00:00,EMPTY\r\n2020-01-01 02:00:00,102\r\n"
    plain = read_demand(_write(tmp_path, text, name="plain.csv.gz"))  # plain text under a .gz name
    packed = read_demand(_write(tmp_path, text, compress=True, name="packed.csv"))  # gzip under a plain name
    for series in (plain, packed):
        assert series.times.tolist() == [
            _epoch("2020-01-01 00:00"),
            _epoch("2020-01-01 01:00"),
            _epoch("2020-01-01 02:00"),
        ]
        assert series.values[0] == 100.0
        assert np.isnan(series.values[1])
        assert series.missing_lines == (3,)


def test_every_known_missing_token_is_nan_and_listed(tmp_path: Path) -> None:
    tokens = ["EMPTY", "MISSING", "", "NA", "NaN", "nan"]
    rows = [f"2020-01-01 {hour:02d}:00:00,{token}" for hour, token in enumerate(tokens)]
    series = read_demand(_write(tmp_path, "\n".join([RAW_HEADER, *rows, "2020-01-01 06:00:00,5"]) + "\n"))
    assert np.isnan(series.values[:6]).all()
    assert series.values[6] == 5.0
    assert series.missing_lines == (2, 3, 4, 5, 6, 7)


def test_synthetic_impossible_values(tmp_path: Path) -> None:
    rows = ["0", "-5", "inf", "100", "1000", "101", "102", "99", "98", "100"]
    text = "\n".join([RAW_HEADER, *(f"2020-01-01 {h:02d}:00:00,{v}" for h, v in enumerate(rows))])
    series = read_demand(_write(tmp_path, text))  # no final newline: still fine
    # 0, -5 and inf are impossible; 1000 is >= 10x the median and a single-hour spike.
    assert series.missing_lines == (2, 3, 4, 6)
    assert series.values[3] == 100.0


def test_single_hour_spike_and_dip_are_rejected_but_ramps_are_not(tmp_path: Path) -> None:
    rows = ["100", "100", "160", "100", "100", "60", "100", "100", "140", "180", "220", "200"]
    text = "\n".join([RAW_HEADER, *(f"2020-01-01 {h:02d}:00:00,{v}" for h, v in enumerate(rows))])
    series = read_demand(_write(tmp_path, text))
    assert series.missing_lines == (4, 7)
    assert series.values[7:].tolist() == [100.0, 140.0, 180.0, 220.0, 200.0]


def test_timestamps_with_offsets_are_converted_to_utc(tmp_path: Path) -> None:
    text = (
        "Datetime (UTC),Datetime (Local),Price (USD/MWh)\n"
        "2023-01-01 00:00:00+00:00,2022-12-31 16:00:00-08:00,-12.5\n"
        "2023-01-01 01:00:00Z,2023-01-01 02:00:00+01:00,inf\n"
        "2023-01-01 02:00:00,2023-01-01 02:00:00,NA\n"
    )
    series = read_price(_write(tmp_path, text))
    assert series.times.tolist() == [1672531200, 1672534800, 1672538400]
    assert series.values[0] == -12.5
    assert series.missing_lines == (3, 4)  # a non-finite price is rejected, a negative one is not


def test_synthetic_forecast_rule(tmp_path: Path) -> None:
    header = "date_time,raw demand (MW),category,cleaned demand (MW),forecast demand (MW)"
    rows = [
        "2015-07-02 00:00:00,1000,OKAY,1000.0,400",  # ratio 0.4: blanked
        "2015-07-02 01:00:00,1000,OKAY,1000.0,980",
        "2015-07-02 02:00:00,EMPTY,MISSING,1000.0,2100",  # judged against cleaned demand: blanked
        "2015-07-02 03:00:00,5000,LOCAL_DEM_UP,1000.0,MISSING",
        "2015-07-02 04:00:00,1000,OKAY,EMPTY,300",  # nothing to judge it against: kept
    ]
    path = _write(tmp_path, "\n".join([header, *rows]) + "\n")
    demand, forecast = read_demand_with_forecast(path)
    assert demand.missing_lines == (4, 5)
    assert forecast.missing_lines == (2, 4, 5)
    assert forecast_blanked_lines(path) == (2, 4)
    assert forecast.values[1] == 980.0
    assert forecast.values[4] == 300.0


def test_raw_series_is_immutable(tmp_path: Path) -> None:
    series = read_demand(_write(tmp_path, f"{RAW_HEADER}\n2020-01-01 00:00:00,1\n"))
    with pytest.raises(dataclasses.FrozenInstanceError):
        series.unit = "GW"  # type: ignore[misc]
    with pytest.raises(ValueError, match="read-only"):
        series.values[0] = 2.0
    assert series.times.dtype == np.int64
    assert series.values.dtype == np.float64


# ---------------------------------------------------------------------------------------------
# synthetic files: structural errors carry the file, the line and the reason


@pytest.mark.parametrize(
    ("text", "line", "reason"),
    [
        ("date_time,load (MW)\n2020-01-01 00:00:00,1\n", 1, "unexpected header"),
        ("", 1, "empty file"),
        (f"{RAW_HEADER}\n2020-01-01 00:00:00,1\n2020-01-01 01:00:00,2,3\n", 3, "expected 2 fields, got 3"),
        (f"{RAW_HEADER}\n2020-01-01 00:00:00,1\n\n2020-01-01 02:00:00,2\n", 3, "expected 2 fields, got 1"),
        (f"{RAW_HEADER}\n2020-01-01 00:00:00,1\n2020-01-01 01:00:00,12a\n", 3, "not a number"),
        (f"{RAW_HEADER}\n2020-01-01 00:00:00, 12\n", 2, "not a number"),
        (f"{RAW_HEADER}\n2020-01-01 00:00:00,1_000\n", 2, "not a number"),
        (f"{RAW_HEADER}\n2020-01-01 00:00:00,1\n2020-13-01 00:00:00,2\n", 3, "bad timestamp"),
        (f"{RAW_HEADER}\n2020/01/01 00:00,1\n", 2, "bad timestamp"),
        (f"{RAW_HEADER}\n2020-01-01 00:00:00+25:00,1\n", 2, "bad timestamp"),
        (
            f"{RAW_HEADER}\n2020-01-01 00:00:00,1\n2020-01-01 01:00:00,2\n2020-01-01 01:00:00,3\n",
            4,
            "duplicate timestamp '2020-01-01 01:00:00' (also on line 3)",
        ),
        (f"{RAW_HEADER}\n2020-01-01 01:00:00,1\n2020-01-01 00:00:00,2\n", 3, "earlier than the one on line 2"),
    ],
)
def test_structural_errors(tmp_path: Path, text: str, line: int, reason: str) -> None:
    for compress in (False, True):
        path = _write(tmp_path, text, compress=compress, name=f"bad{int(compress)}.csv")
        with pytest.raises(TraceFormatError) as caught:
            read_demand(path)
        assert caught.value.source == str(path)
        assert caught.value.line == line
        assert reason in caught.value.reason
        assert str(caught.value).startswith(f"{path}:{line}: ")


def test_structural_errors_in_the_other_formats(tmp_path: Path) -> None:
    fuel_header = "timestamp,WND,SUN,WAT,OIL,NG,COL,NUC,OTH,avg_CI"
    bad_fuel = _write(tmp_path, f"{fuel_header}\n2022-01-01 00:00:00+00:00,1,2,x,4,5,6,7,8,300.5\n", name="fuel.csv")
    with pytest.raises(TraceFormatError, match="'WAT'") as caught:
        read_fuelmix_carbon(bad_fuel)
    assert caught.value.line == 2
    price_header = "Datetime (UTC),Datetime (Local),Price (USD/MWh)"
    shifted = _write(tmp_path, f"{price_header}\n2023-01-01 00:00:00+00:00,2023-01-01 00:00:00-08:00,5\n", name="p.csv")
    with pytest.raises(TraceFormatError, match="is not the instant") as caught:
        read_price(shifted)
    assert caught.value.line == 2
    with pytest.raises(TraceFormatError, match="unexpected header") as caught:
        read_demand_with_forecast(_write(tmp_path, f"{RAW_HEADER}\n", name="fc.csv"))
    assert caught.value.line == 1
    truncated = _write(tmp_path, "", name="trunc.csv.gz")
    truncated.write_bytes(gzip.compress(b"date_time,demand (MW)\n" * 50)[:30])
    with pytest.raises(TraceFormatError, match="corrupt gzip"):
        read_demand(truncated)
    latin1 = _write(tmp_path, "", name="latin1.csv")
    latin1.write_bytes(b"date_time,demand (MW)\n2020-01-01 00:00:00,1\n2020-01-01 01:00:00,\xb5\n")
    with pytest.raises(TraceFormatError, match="UTF-8") as caught:
        read_demand(latin1)
    assert caught.value.line == 3


# ---------------------------------------------------------------------------------------------
# the committed traces

EXPECTED_TRACES = {
    "grid_2022.csv.gz": ("time,zone,demand_mw,carbon_g_per_kwh", 9, 17520),
    "prices_2023.csv.gz": ("time,zone,demand_mw,price_usd_per_mwh", 3, 17520),
    "demand_forecast_2015_2019.csv.gz": ("time,zone,demand_mw,demand_forecast_mw", 3, 35064),
}


@pytest.mark.parametrize("name", sorted(EXPECTED_TRACES))
def test_committed_trace_has_attribution_and_contract_header(name: str) -> None:
    header, zones, hours = EXPECTED_TRACES[name]
    raw = gzip.decompress((TRACES / name).read_bytes())
    assert b"\r" not in raw
    text = raw.decode("utf-8")
    assert text.endswith("\n")
    lines = text.split("\n")[:-1]
    comments = [line for line in lines if line.startswith("#")]
    assert lines[: len(comments)] == comments  # comments lead, nothing else does
    assert all(line.startswith("# ") for line in comments)
    preamble = "\n".join(comments)
    assert "built by scripts/build_traces.py" in preamble
    assert "truggles/EIA_Cleaned_Hourly_Electricity_Demand_Data" in preamble
    assert "CC-BY-4.0 (credit: Ruggles et al., EIA cleaned hourly demand data)" in preamble
    if "carbon" in header:
        assert "HewlettPackard/dc-rl" in preamble
    if "price" in header:
        assert "HewlettPackard/sustain-cluster" in preamble
    assert lines[len(comments)] == header
    rows = [line.split(",") for line in lines[len(comments) + 1 :]]
    assert len(rows) == zones * hours
    width = len(header.split(","))
    assert all(len(row) == width for row in rows)
    keys = [(row[0], row[1]) for row in rows]
    assert keys == sorted(keys)
    assert len(set(keys)) == len(keys)
    for row in rows:
        assert row[2] != "0"  # demand: a gap is an empty cell, never 0
        assert row[0].endswith(":00:00Z")


def test_committed_grid_trace_carries_the_heat_wave_and_explicit_gaps() -> None:
    text = gzip.decompress((TRACES / "grid_2022.csv.gz").read_bytes()).decode("utf-8")
    assert "\n2022-09-07T01:00:00Z,CISO,51104,319.4\n" in text
    assert "\n2021-01-01T00:00:00Z,AZPS,2998,\n" in text  # 2021 is demand-only warm-up
    assert "\n2022-01-05T10:00:00Z,CISO,,\n" in text  # EMPTY demand and an empty fuel-mix row
    assert "\n2021-10-19T04:00:00Z,PJM,," in text  # the 2,147,480,000 MW sentinel
    last = text.rstrip("\n").rsplit("\n", 1)[1]
    assert last.startswith("2022-12-31T23:00:00Z,SOCO,")


def test_committed_latency_matrix() -> None:
    document = json.loads(LATENCY.read_text(encoding="utf-8"))
    assert set(document) == {"attribution", "unit", "percentile", "rtt_ms"}
    assert (document["unit"], document["percentile"]) == ("ms", "p50")
    assert "Apache-2.0" in document["attribution"]
    assert "cloudping.co" in document["attribution"]
    rtt = document["rtt_ms"]
    assert len(rtt) == 32
    assert all(sorted(row) == sorted(rtt) for row in rtt.values())
    assert all(isinstance(v, float) and v > 0 for row in rtt.values() for v in row.values())
    assert list(rtt) == sorted(rtt)


@pytest.mark.slow
def test_rebuilding_gives_byte_identical_files(shared_data: Path, tmp_path: Path) -> None:
    out = tmp_path / "traces"
    latency = tmp_path / "aws.json"
    subprocess.run(
        [
            sys.executable,
            str(BUILD_SCRIPT),
            "--shared",
            str(shared_data),
            "--out",
            str(out),
            "--latency-out",
            str(latency),
        ],
        check=True,
        capture_output=True,
        timeout=240,
    )
    for name in EXPECTED_TRACES:
        assert (out / name).read_bytes() == (TRACES / name).read_bytes(), name
    assert latency.read_bytes() == LATENCY.read_bytes()
