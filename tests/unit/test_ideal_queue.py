"""The overload benchmark's ideal-queue reference: an exact FCFS multi-server queue."""

from __future__ import annotations

import math

import pytest

from benchmarks.ideal_queue import ideal_latencies_s, item_seconds, percentile


def test_spaced_arrivals_wait_for_nothing() -> None:
    assert ideal_latencies_s([(0.0, 2), (1.0, 3), (2.0, 1)], 0.1, 1) == pytest.approx([0.2, 0.3, 0.1])


def test_a_burst_queues_behind_the_busy_cores() -> None:
    # Four 1 s requests at once on two cores: two answer after 1 s, two after 2 s.
    assert ideal_latencies_s([(0.0, 1)] * 4, 1.0, 2) == pytest.approx([1.0, 1.0, 2.0, 2.0])
    # A late arrival takes the core that frees first.
    assert ideal_latencies_s([(0.0, 3), (0.0, 1), (0.5, 1)], 1.0, 2) == pytest.approx([3.0, 1.0, 1.5])


def test_item_time_matches_the_capacity() -> None:
    # Two cores serving 40 requests/s of 5 items: 200 items/s, so 10 ms per item per core.
    assert item_seconds(40.0, 5.0, 2) == pytest.approx(0.01)
    with pytest.raises(ValueError, match="must be positive"):
        item_seconds(0.0, 5.0, 2)


def test_percentile_is_nearest_rank() -> None:
    assert percentile([float(v) for v in range(1, 101)], 0.99) == 100.0
    assert percentile([3.0, 1.0, 2.0], 0.5) == 2.0
    assert math.isnan(percentile([], 0.99))
