"""The open-loop trace replay: the real Azure arrivals as requests, scaled to a rate, and the runner's options."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest

from loadtests.azure_trace import (
    TRACE_FILE,
    TraceRequest,
    load_trace_requests,
    schedule,
    schedule_window,
    sentences_for,
)
from loadtests.run import parser, settings_from


def test_sentences_follow_context_tokens_within_one_to_eight() -> None:
    assert [sentences_for(t) for t in (0, 1, 250, 251, 1999, 10_000)] == [1, 1, 1, 2, 8, 8]


def test_schedule_scales_the_gaps_to_the_rate_and_wraps_around() -> None:
    trace = [TraceRequest(0.0, 1), TraceRequest(1.0, 2), TraceRequest(3.0, 3)]  # gaps 1 s and 2 s: 1 per 1.5 s
    plan = schedule(trace, rate_per_s=2.0, duration_s=3.0)
    # Scale 1.5 s -> 0.5 s: arrivals at 0, 1/3, 1; the wrap starts a mean gap (0.5 s) later, at 1.5, 1.83, 2.5.
    assert [round(r.at_s, 3) for r in plan] == [0.0, 0.333, 1.0, 1.5, 1.833, 2.5]
    assert [r.sentences for r in plan] == [1, 2, 3, 1, 2, 3]
    with pytest.raises(ValueError, match="positive"):
        schedule(trace, rate_per_s=0.0, duration_s=1.0)


def test_a_window_offers_exactly_its_rate_with_the_traces_own_gaps_and_wraps_around() -> None:
    trace = [TraceRequest(0.0, 1), TraceRequest(1.0, 2), TraceRequest(3.0, 3), TraceRequest(3.5, 4)]
    plan = schedule_window(trace, rate_per_s=2.0, duration_s=2.0, offset=1)  # 4 requests from the second one
    # Picked at 0, 2, 2.5 and, after the wrap (one mean gap, 3.5 / 3 s, later), 3.67: span 3.67 plus its own mean
    # gap (1.22) fills the 2 s window, so the gaps keep their proportions (2 : 0.5 : 1.17).
    assert [r.sentences for r in plan] == [2, 3, 4, 1]
    scale = 2.0 / (2.5 + 3.5 / 3 + (2.5 + 3.5 / 3) / 3)
    assert [r.at_s for r in plan] == pytest.approx([0.0, 2.0 * scale, 2.5 * scale, (2.5 + 3.5 / 3) * scale])
    assert plan[-1].at_s < 2.0
    with pytest.raises(ValueError, match="positive"):
        schedule_window(trace, rate_per_s=1.0, duration_s=0.0)


def test_a_short_window_of_the_real_trace_offers_its_rate_where_the_whole_trace_mean_does_not(
    shared_data: Path,
) -> None:
    requests = load_trace_requests(shared_data / "workloads" / TRACE_FILE)
    assert len(schedule_window(requests, rate_per_s=22.0, duration_s=25.0)) == 550
    # The benchmark's 0.8x level: the whole trace's mean put about two thirds of the rate into these 25 s.
    assert len(schedule(requests, rate_per_s=22.0, duration_s=25.0)) < 0.75 * 550


def test_the_real_trace_keeps_its_mean_rate_when_scaled(shared_data: Path) -> None:
    requests = load_trace_requests(shared_data / "workloads" / TRACE_FILE)
    assert len(requests) > 19_000
    plan = schedule(requests, rate_per_s=20.0, duration_s=600.0, offset=5000)
    assert 0.8 * 12_000 < len(plan) < 1.2 * 12_000  # bursty, but the mean holds over ten minutes
    assert all(1 <= r.sentences <= 8 for r in plan)


def test_a_malformed_trace_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "trace.csv.gz"
    with gzip.open(path, "wt") as text:
        text.write("TIMESTAMP,ContextTokens,GeneratedTokens\n2023-11-16 18:15:46.6805900,374,44\nnot,a,row\n")
    with pytest.raises(ValueError, match=r"trace.csv.gz:3"):
        load_trace_requests(path)
    with pytest.raises(FileNotFoundError, match="absent"):
        load_trace_requests(tmp_path / "missing.csv.gz")


def test_trace_scenarios_take_a_rate_and_user_scenarios_refuse_one(tmp_path: Path, shared_data: Path) -> None:
    cli = parser()
    trace = shared_data / "workloads" / TRACE_FILE
    args = cli.parse_args(["--scenario", "overload", "--rate", "12", "--trace", str(trace), "--results", str(tmp_path)])
    settings = settings_from(args, cli)
    assert settings.users == 1
    assert settings.plan.trace is not None
    assert settings.plan.trace.rate_per_s == 12.0
    assert settings.plan.allow_overload
    for bad in (["--scenario", "smoke", "--rate", "5"], ["--scenario", "trace_replay", "--users", "4"]):
        with pytest.raises(SystemExit):
            settings_from(cli.parse_args([*bad, "--results", str(tmp_path)]), cli)
