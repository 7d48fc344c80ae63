"""The overload benchmark's arithmetic: goodput is the rate served while the load is offered."""

from __future__ import annotations

import pytest

from benchmarks.overload_traffic import Answer, completed_within, first_sent_s, summarize


def _answer(sent_s: float, latency_s: float, status: int = 200) -> Answer:
    return Answer(sent_s + latency_s, "tolerant", "us-east-1", status, latency_s, "us-east-1", status == 503, 1)


def test_goodput_counts_answers_completed_within_the_window_and_the_drain_figure_counts_all() -> None:
    answers = [_answer(0.0, 1.0), _answer(2.0, 3.0), _answer(9.0, 0.5), _answer(9.5, 4.5), _answer(9.6, 0.01, 503)]
    assert first_sent_s(answers) == 0.0
    assert completed_within(answers, 0.0, 10.0) == 4  # the backlog answer at 14 s completed after the window
    level = summarize("2x", 2.0, 0.5, 10.0, answers, set())
    assert level.goodput_per_s == pytest.approx(3 / 10)  # the rejection is not goodput
    assert level.goodput_of_capacity == pytest.approx(3 / 10 / 0.5)
    assert level.goodput_with_drain_per_s == pytest.approx(4 / 14)  # window plus drain: to the last answer
    assert level.accepted == 4
    assert level.overloaded == 1
