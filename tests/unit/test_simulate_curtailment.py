"""The curtailment method on synthetic series (exact answers), its cleaning rules, and the real 22-zone totals."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest

from simulate.curtailment import ZoneModel, event_lengths, rate_result, seasonal_thresholds
from simulate.curtailment_data import (
    MAX_FILLED_GAP_H,
    CleaningReport,
    StudyDataError,
    ZoneDemand,
    check_zones,
    load_zone_demand,
)
from simulate.study import PUBLISHED_TOTAL_GW, parse_rates, parse_years, run_study


def _year(values_by_month: dict[int, float], year: int = 2021) -> ZoneDemand:
    times = np.arange(
        np.datetime64(f"{year}-01-01T00", "s").astype(np.int64),
        np.datetime64(f"{year + 1}-01-01T00", "s").astype(np.int64),
        3600,
        dtype=np.int64,
    )
    months = times.astype("datetime64[s]").astype("datetime64[M]").astype(np.int64) % 12 + 1
    demand = np.array([values_by_month.get(int(m), 100.0) for m in months])
    report = CleaningReport("X", (), len(times), 0, 0, 0, 0, 0)
    return ZoneDemand("X", times, demand, report)


def test_one_peak_hour_gives_the_exact_rate():
    zone = _year({})
    zone.demand_mw[4000] = 150.0  # one June hour at the peak (hour 4000 of 2021 is in June)
    model = ZoneModel(zone, [2021])
    assert model.thresholds.summer_mw == 150.0
    # Winter demand sits at its own ceiling (100), so every winter hour curtails the whole load; in the summer window
    # L = 60 curtails 10 MW an hour (100 + 60 - 150) and the whole 60 at the peak hour; L = 40 only the peak hour.
    months = zone.times_s.astype("datetime64[s]").astype("datetime64[M]").astype(np.int64) % 12 + 1
    summer = int(np.isin(months, (4, 5, 6, 7, 8, 9, 10)).sum())
    winter = len(months) - summer
    assert model.rate(60.0) == pytest.approx((60.0 + 10.0 * (summer - 1) + 60.0 * winter) / (60.0 * 8760))
    assert model.rate(40.0) == pytest.approx((40.0 + 40.0 * winter) / (40.0 * 8760))
    solved = model.solve(0.5)
    assert model.rate(solved) <= 0.5 < model.rate(solved + 0.05)


def test_a_seasonal_peak_outside_its_core_months_is_the_ceiling():
    thresholds = seasonal_thresholds(*_arrays(_year({9: 130.0, 7: 120.0, 3: 90.0})))
    assert thresholds.summer_mw == 130.0
    assert thresholds.summer_exception
    assert not thresholds.winter_exception  # winter core (100) beats March's 90


def _arrays(zone: ZoneDemand) -> tuple[np.ndarray, np.ndarray]:
    return zone.times_s, zone.demand_mw


def test_event_lengths_and_keep_shares():
    assert list(event_lengths(np.array([0, 1, 2, 0, 0, 5, np.nan, 3.0]))) == [2, 1, 1]
    zone = _year({7: 120.0})
    zone.demand_mw[:] += 20.0 * np.sin(2 * np.pi * np.arange(len(zone.demand_mw)) / 24.0)  # a daily cycle
    # Every day touches its season's ceiling once, so below about 1.7 % nothing fits; 5 % does.
    result = rate_result(ZoneModel(zone, [2021]), 5.0)
    assert result.achieved_rate_pct == pytest.approx(5.0, abs=0.01)
    assert result.curtailed_hours_per_year > 0
    assert 0.0 <= result.keep_shares["90"] <= result.keep_shares["50"] <= 1.0


def _write(path: Path, rows: list[str], header: str) -> None:
    path.write_bytes(gzip.compress(("\r\n".join([header, *rows]) + "\r\n").encode()))


def test_cleaning_rules_and_their_counts(tmp_path):
    early = [f"2020-01-01 {h:02d}:00:00,1000,OKAY,1000.0,1000" for h in range(24)]
    _write(
        tmp_path / "PJM_2015_2020_cleaned.csv.gz",
        early,
        "date_time,raw demand (MW),category,cleaned demand (MW),forecast demand (MW)",
    )
    hours = np.arange(np.datetime64("2020-01-01T00"), np.datetime64("2021-01-01T00"), np.timedelta64(1, "h"))
    values = ["1000"] * len(hours)
    values[100] = "1300"  # 1.3x both neighbours: a peak glitch
    values[200:205] = ["EMPTY"] * 5  # short gap: filled
    values[1000 : 1000 + MAX_FILLED_GAP_H + 6] = ["EMPTY"] * (MAX_FILLED_GAP_H + 6)  # long gap: left out
    values[3000] = "2147480000"  # the int32 sentinel: the parser's 10x-median rule
    rows = [f"{str(h).replace('T', ' ')}:00:00,{v}" for h, v in zip(hours, values, strict=True)]
    _write(tmp_path / "PJM_2020_2024_raw.csv.gz", rows, "date_time,demand (MW)")
    zone = load_zone_demand(tmp_path, "PJM", 2020, 2020)
    report = zone.report
    assert report.peak_spikes == 1
    assert report.rejected_by_parser == 5 + MAX_FILLED_GAP_H + 6 + 1  # the EMPTY rows and the sentinel
    assert report.left_out == MAX_FILLED_GAP_H + 6
    assert report.filled == 5 + 1 + 1  # the gap, and the two blanked single hours
    assert np.nanmax(zone.demand_mw) == 1000.0


def test_bad_study_input_is_refused(tmp_path):
    with pytest.raises(StudyDataError, match="unknown zone"):
        check_zones(("PJM", "XYZ"))
    with pytest.raises(StudyDataError, match="missing"):
        load_zone_demand(tmp_path, "PJM", 2020, 2020)
    with pytest.raises(StudyDataError):
        parse_rates("0.5,abc")
    with pytest.raises(StudyDataError):
        parse_rates("0,1")
    with pytest.raises(StudyDataError):
        parse_years("2010-2024")


@pytest.mark.slow
def test_real_totals_are_within_five_percent_of_the_published(shared_data):
    from simulate.curtailment_data import STUDY_ZONES

    study = run_study(shared_data / "eia930" / "demand_2015_2024", STUDY_ZONES, (0.25, 0.5, 1.0))
    for rate, published_gw in PUBLISHED_TOTAL_GW.items():
        ours_gw = study.total_mw(rate) / 1000.0
        assert abs(ours_gw / published_gw - 1.0) < 0.05, (rate, ours_gw, published_gw)
    body = study.to_dict()
    assert body["schema"] == "gridshift.curtailment_study/v1"
    totals = body["total_headroom_mw"]
    assert isinstance(totals, dict)
    assert set(totals) == {"0.25", "0.5", "1"}
