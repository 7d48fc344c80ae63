"""simulate/backup.py: the firm backup and storage a curtailed site needs beyond its own levers (pure, no Ray)."""

from __future__ import annotations

import numpy as np
import pytest

from simulate.backup import WindowDraw, residual, shed_delivered, size_backup, storage_needed


def window(draw: list[float], room: list[float]) -> WindowDraw:
    rooms = np.array(room, dtype=np.float64)
    return WindowDraw(np.array(draw, dtype=np.float64), rooms, np.nan_to_num(rooms, nan=np.inf) < 1.0)


def test_a_fleet_that_sheds_everything_needs_no_backup():
    w = window([1.0, 0.0, 0.0, 0.0, 1.0], [2.0, 0.0, 0.0, 0.0, 2.0])
    backup = size_backup([w], efficiency=0.9)
    assert backup.backup_mw_per_mw == 0.0
    assert backup.storage_mwh_per_mw == 0.0
    assert backup.worst_window is None
    assert backup.shed_share_worst == 1.0


def test_half_shed_through_a_three_hour_full_curtailment_needs_one_and_a_half_mwh_per_mw():
    w = window([1.0, 0.5, 0.5, 0.5, 1.0], [2.0, 0.0, 0.0, 0.0, 2.0])
    backup = size_backup([w], efficiency=0.9)
    assert backup.backup_mw_per_mw == pytest.approx(0.5)
    assert backup.storage_mwh_per_mw == pytest.approx(1.5)
    assert (backup.worst_window, backup.worst_hour) == (0, 3)
    assert backup.shed_share_worst == pytest.approx(0.5)
    assert backup.rebound_hours == 0


def test_events_too_close_to_refill_add_up_and_refill_is_limited_by_rating_and_efficiency():
    # Two 2-hour events, residual 0.5 each hour; between them 1 hour of spare room 0.5 at efficiency 0.8: the store
    # gets back 0.5 x 0.8 = 0.4 of the 1.0 it gave, so the second event takes it to 1.0 - 0.4 + 1.0 = 1.6.
    w = window([0.5, 0.5, 1.0, 0.5, 0.5], [0.0, 0.0, 1.5, 0.0, 0.0])
    energy, hour = storage_needed(w, rating=0.5, efficiency=0.8)
    assert energy == pytest.approx(1.6)
    assert hour == 4
    # A 0.25 rating refills only 0.25 x 0.8.
    assert storage_needed(w, rating=0.25, efficiency=0.8)[0] == pytest.approx(2.0 - 0.2)
    # With a long calm gap it refills fully: the worst is one event's sum.
    far = window([0.5, 0.5] + [1.0] * 10 + [0.5, 0.5], [0.0, 0.0] + [1.5] * 10 + [0.0, 0.0])
    assert storage_needed(far, rating=0.5, efficiency=0.8)[0] == pytest.approx(1.0)


def test_the_worst_window_sets_the_storage_and_the_largest_residual_the_rating():
    short_deep = window([0.9, 1.0], [0.0, 2.0])
    long_shallow = window([0.8, 0.8, 0.8, 0.8], [0.5, 0.5, 0.5, 0.5])
    backup = size_backup([short_deep, long_shallow], efficiency=1.0)
    assert backup.backup_mw_per_mw == pytest.approx(0.9)
    assert backup.storage_mwh_per_mw == pytest.approx(1.2)
    assert backup.worst_window == 1


def test_a_rebound_over_the_room_after_the_event_counts():
    # The event is met (draw 0 at room 0) but the deferred work comes back at 1.4 L where the room is only 1.2.
    w = window([0.0, 1.4, 1.0], [0.0, 1.2, 3.0])
    backup = size_backup([w], efficiency=1.0)
    assert backup.shed_share_worst == 1.0
    assert backup.rebound_hours == 1
    assert backup.backup_mw_per_mw == pytest.approx(0.2)
    assert backup.storage_mwh_per_mw == pytest.approx(0.2)


def test_left_out_hours_neither_curtail_nor_refill():
    w = window([0.5, 5.0, 0.5], [0.0, np.nan, 0.0])
    assert residual(w).tolist() == pytest.approx([0.5, 0.0, 0.5])
    assert storage_needed(w, rating=0.5, efficiency=1.0)[0] == pytest.approx(1.0)


def test_a_draw_above_the_mean_in_a_shallow_hour_delivers_none_of_its_shed():
    w = window([1.1, 0.6], [0.9, 0.2])
    assert shed_delivered(w).tolist() == pytest.approx([0.0, 0.5])


def test_bad_input_is_refused():
    with pytest.raises(ValueError, match="as long"):
        WindowDraw(np.zeros(3), np.zeros(2), np.zeros(3, dtype=bool))
    with pytest.raises(ValueError, match="NaN"):
        window([np.nan], [0.0])
    w = window([0.5], [0.0])
    with pytest.raises(ValueError, match="efficiency"):
        storage_needed(w, rating=0.5, efficiency=0.0)
    with pytest.raises(ValueError, match="rating"):
        storage_needed(w, rating=-1.0, efficiency=0.9)
