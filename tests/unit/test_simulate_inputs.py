"""Bad simulation input is refused with a clear error; the fast paths give the live functions' own numbers."""

from __future__ import annotations

import json

import numpy as np
import pytest

from fleet.loaders import load_fleet
from fleet.serving import Precision
from fleet.times import utc_now_from
from grid.trace import load_trace, packaged_trace
from policies.calibration import load_calibration
from policies.ladder import batch_policy_for_step, knobs_for_step, rung_settings
from serve_apps.cli import main
from simulate.arrivals import packaged_arrival_shape, shape_from_azure_trace
from simulate.fast import PrecomputedReader
from simulate.inputs import check_window, load_events, load_inputs
from simulate.mix import SimulationInputError, parse_levers, parse_mix


def test_mix_must_sum_to_one_and_name_known_classes():
    assert parse_mix("realtime=0.3,tolerant=0.2,batch=0.3,training=0.2").flexible_share == pytest.approx(0.7)
    with pytest.raises(SimulationInputError, match="sum to 1"):
        parse_mix("realtime=0.3,tolerant=0.2")
    with pytest.raises(SimulationInputError, match="CLASS=SHARE"):
        parse_mix("interactive=1")
    with pytest.raises(SimulationInputError, match="not a number"):
        parse_mix("realtime=x")
    with pytest.raises(SimulationInputError, match="unknown"):
        parse_levers("geo,teleport")


def test_window_outside_the_trace_is_an_error():
    inputs = load_inputs(load_fleet(None))
    start = int(utc_now_from("2019-01-01T00:00:00Z").timestamp())
    with pytest.raises(SimulationInputError, match="outside zone"):
        check_window(inputs.context, start, start + 3600)
    with pytest.raises(SimulationInputError, match="must be after"):
        check_window(inputs.context, start, start)


def test_events_file_errors_name_the_problem(tmp_path):
    path = tmp_path / "events.json"
    path.write_text(json.dumps([{"region": "us-west-1", "start": "2022-09-06T00:00:00Z"}]))
    with pytest.raises(SimulationInputError, match="level"):
        load_events(path)
    path.write_text(json.dumps([{"region": "us-west-1", "level": 3, "start": "2022-09-06T00:00:00Z"}]))
    assert load_events(path)[0].level == 3
    with pytest.raises(SimulationInputError, match="cannot read"):
        load_events(tmp_path / "absent.json")


def test_precomputed_quantiles_equal_the_traces():
    fast, plain = PrecomputedReader(load_trace(packaged_trace())), load_trace(packaged_trace())
    times = plain.zones["CISO"].times_s
    for at in times[:: len(times) // 40]:
        args = ("CISO", "demand_mw", int(at), 365 * 86_400, 0.995)
        assert fast.trailing_quantile(*args) == plain.trailing_quantile(*args)


def test_remembered_costs_are_the_interpolated_ones():
    calibration, fresh = load_calibration(), load_calibration()
    for precision in Precision:
        for size in (1.0, 3.5, 8.0, 64.0):
            first = calibration.cpu_ms_per_item(precision, size)
            assert first == calibration.cpu_ms_per_item(precision, size) == fresh._interpolated_cpu_ms(precision, size)
    for floor in (0.95, 0.99, 0.999):
        assert calibration.cheapest_meeting(floor, 8) == calibration.cheapest_meeting(floor, 8)
    # An updated copy does not inherit the memo of what it was copied from.
    cheaper = calibration.model_copy(
        update={"results": tuple(p.model_copy(update={"cpu_ms_per_item": 1.0}) for p in calibration.results)}
    )
    assert cheaper.cpu_ms_per_item(Precision.FP32, 8.0) == 1.0


def test_rung_settings_are_the_rungs_knobs():
    fleet, calibration = load_fleet(None), load_calibration()
    for step in fleet.policy.steps:
        knobs, batch = rung_settings(step, fleet.serving.knobs, fleet.policy, calibration)
        assert knobs == knobs_for_step(step, fleet.serving.knobs, fleet.policy, calibration)
        assert batch == batch_policy_for_step(step, fleet.serving.knobs, fleet.policy, calibration)
        assert rung_settings(step, fleet.serving.knobs, fleet.policy, calibration)[0] is knobs


def test_packaged_arrival_shape_is_the_shared_trace(shared_data):
    shared = shape_from_azure_trace(shared_data / "workloads" / "azure_llm_inference_2023_conv.csv.gz")
    packaged = packaged_arrival_shape()
    assert np.array_equal(shared.per_minute, packaged.per_minute)
    assert 1.2 < packaged.peak_factor < 2.0


def test_cli_simulate_json_and_bad_input(capsys):
    code = main(["simulate", "--from", "2022-09-06T18:00:00Z", "--to", "2022-09-07T06:00:00Z", "--json"])
    body = json.loads(capsys.readouterr().out)
    assert code == 0
    assert body["schema"] == "gridshift.simulation/v1"
    assert body["fleet"]["realtime_slo_misses"] == 0
    assert len(body["hourly"]["grid_mw"]) == 12
    assert "gap" in body["perfect_foresight"]
    assert main(["simulate", "--mix", "realtime=0.5", "--json"]) == 2
    assert "sum to 1" in capsys.readouterr().err
    assert main(["study", "curtailment", "--zones", "PJM,NOPE"]) == 2
    assert "unknown zone" in capsys.readouterr().err
