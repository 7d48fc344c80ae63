"""`gridshift study curtailment --fleet-mix`: the study's curtailed hours, run through the simulator, on a synthetic
zone whose only curtailed hours are its two seasonal peaks (each needs the whole new load shed: no room at all)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from fleet.loaders import load_fleet
from serve_apps.cli import main
from simulate.curtailment import ZoneModel
from simulate.curtailment_data import CleaningReport, ZoneDemand
from simulate.fleet_fit import TEMPLATE_REGION, FleetFit, _windows
from simulate.mix import parse_mix

LOAD_MW = 10.0  # below every gap but the two peaks': only those two hours are curtailed


@pytest.fixture(scope="module")
def zone() -> ZoneDemand:
    times = np.arange(
        np.datetime64("2021-01-01T00", "s").astype(np.int64),
        np.datetime64("2022-01-01T00", "s").astype(np.int64),
        3600,
        dtype=np.int64,
    )
    demand = np.full(len(times), 100.0)
    demand[24 * 20 + 18] = 120.0  # the winter peak (January)
    demand[24 * 195 + 18] = 150.0  # the summer peak (July)
    return ZoneDemand("X", times, demand, CleaningReport("X", (), len(times), 0, 0, 0, 0, 0))


def test_a_fleet_with_a_firm_floor_cannot_shed_the_whole_load(zone):
    fit = FleetFit(parse_mix("realtime=0.3,tolerant=0.2,batch=0.3,training=0.2"))
    result = fit.check_zone(zone, ZoneModel(zone, [2021]), [(0.1, LOAD_MW)])
    assert result.deliverable_rate_pct is None
    assert result.absorbable_mw == 0.0
    (rate,) = result.rates
    assert rate.unmet_hours >= 1
    assert rate.deepest_shed_share == pytest.approx(1.0)
    assert 0.0 < rate.best_shed_share < 1.0  # it shed something (the ladder, the battery), not everything
    assert rate.windows == rate.windows_total == 2  # every window: the backup is sized over all of them
    body = result.to_dict()
    assert body["deliverable_rate_pct"] is None
    assert body["rates"][0]["first_unmet_at"] is not None  # type: ignore[index]
    # With the backup its two peaks need, the zone absorbs L: the backup covers exactly what the levers left.
    backup = rate.backup
    assert backup is not None
    assert rate.absorbable_mw_with_backup == pytest.approx(LOAD_MW)
    assert backup.shed_share_worst == pytest.approx(1.0 - backup.backup_mw_per_mw)  # room 0: residual = 1 - shed
    assert 0.0 < backup.backup_mw_per_mw < 1.0
    # Two one-hour events far apart: the store refills between them, so it covers one hour of the residual.
    assert backup.storage_mwh_per_mw == pytest.approx(backup.backup_mw_per_mw)
    assert rate.worst_storage_at in ("2021-01-21T18:00:00Z", "2021-07-15T18:00:00Z")
    with_backup = body["rates"][0]["with_backup"]  # type: ignore[index]
    assert with_backup["absorbable_mw"] == pytest.approx(LOAD_MW)


def test_storage_that_carries_the_site_delivers_it_without_misses(zone):
    fleet = load_fleet(None)
    battery = fleet.region(TEMPLATE_REGION).battery
    assert battery is not None
    big = battery.model_copy(update={"max_power_kw": 100_000.0, "capacity_kwh": 400_000.0})
    regions = [r.model_copy(update={"battery": big}) if r.name == TEMPLATE_REGION else r for r in fleet.regions]
    fit = FleetFit(
        parse_mix("realtime=0.3,tolerant=0.2,batch=0.3,training=0.2"),
        fleet=fleet.model_copy(update={"regions": regions}),
    )
    result = fit.check_zone(zone, ZoneModel(zone, [2021]), [(0.1, LOAD_MW), (0.2, LOAD_MW * 1.5)])
    first = result.rates[0]
    assert first.deliverable, first
    assert (first.unmet_hours, first.realtime_slo_miss_hours, first.missed_deadlines) == (0, 0, 0)
    assert first.windows == first.windows_total == 2  # both peaks, far apart: two windows
    assert result.deliverable_rate_pct is not None
    assert result.absorbable_mw >= LOAD_MW


def test_curtailed_hours_close_together_share_a_window():
    assert _windows(np.array([5, 6, 7, 50, 200, 201])) == [(5, 50), (200, 201)]


def test_a_bad_mix_is_refused_before_any_data_is_read(capsys, tmp_path):
    code = main(["study", "curtailment", "--zones", "CISO", "--data", str(tmp_path), "--fleet-mix", "realtime=0.5"])
    err = capsys.readouterr().err
    assert code != 0
    assert "mix" in err
    assert "sum to 1" in err


def test_the_cli_adds_fleet_mix_to_the_v1_json(shared_data, capsys):
    folder = shared_data / "eia930" / "demand_2015_2024"
    mix = "realtime=0.3,tolerant=0.2,batch=0.3,training=0.2"
    args = ["--zones", "CISO", "--rates", "0.25", "--years", "2022-2022", "--data", str(folder), "--fleet-mix", mix]
    code = main(["study", "curtailment", *args, "--json"])
    body = json.loads(capsys.readouterr().out)
    assert code == 0
    assert body["schema"] == "gridshift.curtailment_study/v1"
    assert body["total_headroom_mw"]["0.25"] > 0  # the v1 fields are all still there
    assert body["fleet_mix"]["mix"].startswith("realtime=0.3")
    zone = body["zones"][0]
    assert zone["results"][0]["headroom_mw"] > 0
    assert zone["fleet_mix"]["rates"][0]["rate_pct"] == 0.25
    assert body["fleet_mix"]["absorbable_mw_total"] == zone["fleet_mix"]["absorbable_mw"]
    with_backup = zone["fleet_mix"]["rates"][0]["with_backup"]
    assert with_backup["storage_mwh_per_mw"] > 0  # the fleet alone cannot empty the record-peak hour
    assert body["fleet_mix"]["with_backup"]["0.25"]["absorbable_mw_total"] == with_backup["absorbable_mw"]
    assert with_backup["absorbable_mw"] == zone["results"][0]["headroom_mw"]


def test_zones_simulated_in_worker_processes_give_the_serial_answer(shared_data, capsys):
    # Two processes, two zones: each zone's fit must not depend on which process ran it or on what ran before it
    # there (the unit-scale baseline is measured once, on the first zone, before the zones part ways).
    folder = shared_data / "eia930" / "demand_2015_2024"
    mix = "realtime=0.3,tolerant=0.2,batch=0.3,training=0.2"
    args = ["--zones", "CISO,BPAT", "--rates", "0.25", "--years", "2022-2022", "--data", str(folder)]
    args += ["--fleet-mix", mix]
    answers = []
    for workers in ("1", "2"):
        assert main(["study", "curtailment", *args, "--workers", workers, "--json"]) == 0
        answers.append(json.loads(capsys.readouterr().out))
    serial, parallel = answers
    assert parallel == serial
    assert [zone["zone"] for zone in parallel["zones"]] == ["CISO", "BPAT"]
    assert all(zone["fleet_mix"]["rates"][0]["windows_simulated"] > 0 for zone in parallel["zones"])


def test_workers_must_be_positive(capsys):
    with pytest.raises(SystemExit):
        main(["study", "curtailment", "--workers", "0"])
    assert "--workers: must be at least 1" in capsys.readouterr().err
