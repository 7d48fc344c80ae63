"""Input planning and the job's book (the gate inside the stream, rows per unit, the contract), without Ray."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from batch.book import Admission, JobBook, Piece, PipelineError, check_rows
from batch.plan import FINE_ROWS, InputFormat, auto_block_rows, cut_lines, cut_row_groups, join_units, number_units


def _reference_rows(data: bytes, kind: InputFormat) -> list[bytes]:
    """Rows the simple way: split on newlines, keep what each format counts as a row."""
    if not data:
        return []
    lines = data.split(b"\n")
    if data.endswith(b"\n"):
        lines.pop()
    if kind is InputFormat.TEXT:
        return lines
    if kind is InputFormat.JSONL:
        return [line for line in lines if line.strip()]
    rows = [line for line in lines if line.rstrip(b"\r")]
    return rows[1:]  # the CSV header


def _chunks(data: bytes, size: int) -> list[bytes]:
    return [data[i : i + size] for i in range(0, len(data), size)]


@settings(max_examples=200, deadline=None)
@given(
    lines=st.lists(st.sampled_from([b"", b"a", b"bb", b"  ", b"\r", b"x y", b"{}"]), max_size=30),
    trailing=st.booleans(),
    chunk=st.integers(min_value=1, max_value=17),
    block_rows=st.integers(min_value=1, max_value=7),
    kind=st.sampled_from([InputFormat.TEXT, InputFormat.JSONL, InputFormat.CSV]),
)
def test_cut_covers_every_row_once_whatever_the_chunking(
    lines: list[bytes], trailing: bool, chunk: int, block_rows: int, kind: InputFormat
) -> None:
    data = b"\n".join(lines) + (b"\n" if trailing and lines else b"")
    cut = cut_lines(_chunks(data, chunk), kind, block_rows)
    expected = _reference_rows(data, kind)
    # Every range holds block_rows rows but the last, ranges are ordered and disjoint, and reading the ranges back
    # the reference way yields exactly the rows of the file.
    assert sum(rows for _, _, rows in cut.ranges) == len(expected)
    assert all(rows == block_rows for _, _, rows in cut.ranges[:-1])
    ends = [0] + [end for _, end, _ in cut.ranges]
    assert all(start >= previous for (start, _, _), previous in zip(cut.ranges, ends, strict=False))
    got: list[bytes] = []
    for start, end, _ in cut.ranges:
        piece = data[start:end]
        got += _reference_rows(piece, kind) if kind is not InputFormat.CSV else _reference_rows(b"h\n" + piece, kind)
    assert got == expected


def test_row_groups_are_never_split_and_units_number_rows_in_order() -> None:
    cut = cut_row_groups([3, 3, 10, 1, 1], block_rows=5)
    assert cut.ranges == ((0, 2, 6), (2, 3, 10), (3, 5, 2))
    plan = number_units(InputFormat.PARQUET, ["a", "b"], [1, 1], [cut, cut_row_groups([4], 5)])
    assert [(u.file, u.first_row, u.rows) for u in plan.units] == [(0, 0, 6), (0, 6, 10), (0, 16, 2), (1, 18, 4)]
    assert plan.rows == 22
    assert plan.starts.tolist() == [0, 6, 16, 18]


def _book() -> JobBook:
    # Three units of 4 rows: ids 0-3, 4-7, 8-11; unit 2 already committed by an earlier run.
    book = JobBook()
    book.load(np.array([0, 4, 8]), np.array([4, 4, 4]), {2})
    return book


def _piece(ids: list[int]) -> tuple[np.ndarray, Piece]:
    return np.array(ids, dtype=np.int64), Piece(f"staged-{ids[0]}-{len(ids)}", len(ids), ids[0])


def test_a_closed_segment_admits_nothing_new_and_in_flight_units_still_commit() -> None:
    book = _book()
    book.start_segment(1, window=1)
    assert book.admit(1, 0, now_s=1.0) is Admission.GO
    assert book.admit(1, 0, now_s=1.0) is Admission.GO  # asking again (a retried read task) is still a go
    assert book.admit(1, 1, now_s=1.0) is Admission.WAIT  # the window of one unit in flight is full
    assert book.admit(1, 2, now_s=1.1) is Admission.SKIP  # committed before: never read again
    book.close_segment("pause: grid stress 3", now_s=2.0)
    assert book.admit(1, 1, now_s=2.1) is Admission.SKIP  # the gate is shut: no new input enters
    ids, piece = _piece([0, 1, 2, 3])
    verdict = book.add_piece(0, ids, piece)  # the unit admitted before the pause finishes and commits
    assert verdict.commit == (piece,)
    book.mark_committed(0)
    assert book.rows_done() == 8
    assert book.incomplete(1) == {}
    book.start_segment(2, window=1)
    assert book.admit(1, 1, now_s=3.0) is Admission.SKIP  # a read task of the old segment
    assert book.admit(2, 1, now_s=3.0) is Admission.GO
    assert book.in_flight() == 1


def test_pieces_complete_a_unit_and_a_retried_piece_replaces_its_first_try() -> None:
    book = _book()
    book.start_segment(1, window=4)
    book.admit(1, 1, now_s=0.0)
    first, first_piece = _piece([4, 5])
    assert book.add_piece(1, first, first_piece).commit is None
    retried, retried_piece = _piece([4, 5])
    assert book.add_piece(1, retried, retried_piece).commit is None  # same rows again: no double count
    rest, rest_piece = _piece([6, 7])
    assert set(book.add_piece(1, rest, rest_piece).commit or ()) == {retried_piece, rest_piece}
    assert book.incomplete(1) == {1: []}  # every row written: committing is all that is left
    book.mark_committed(1)
    assert book.incomplete(1) == {}


def test_rows_lost_by_the_pipeline_are_named_after_the_segment() -> None:
    book = _book()
    book.start_segment(1, window=4)
    book.admit(1, 0, now_s=0.0)
    ids, piece = _piece([0, 2])
    book.add_piece(0, ids, piece)
    assert book.incomplete(1) == {0: [1, 3]}


def test_overlapping_pieces_redo_the_unit_once_then_fail() -> None:
    book = _book()
    book.start_segment(1, window=4)
    book.admit(1, 0, now_s=0.0)
    book.add_piece(0, *_piece([0, 1]))
    assert book.add_piece(0, *_piece([1, 2])).drop  # cut differently: the unit runs again
    assert book.take_redo() == {0}
    book.add_piece(0, *_piece([0, 1]))
    with pytest.raises(PipelineError, match="more than once"):
        book.add_piece(0, *_piece([1, 2]))


def test_check_rows_maps_units_and_refuses_invented_or_doubled_ids() -> None:
    starts, rows = np.array([0, 4, 8]), np.array([4, 4, 4])
    assert check_rows(np.array([0, 5, 11]), starts, rows).tolist() == [0, 1, 2]
    with pytest.raises(PipelineError, match="no input row has"):
        check_rows(np.array([12]), starts, rows)
    with pytest.raises(PipelineError, match="no input row has"):
        check_rows(np.array([-1]), starts, rows)
    with pytest.raises(PipelineError, match=r"row\(s\) \[5\] more than once"):
        check_rows(np.array([5, 5]), starts, rows)


def test_operators_see_jobs_the_control_plane_has_not_heard_from_with_their_ray_status() -> None:
    from batch.submit import RayJobState, merged_statuses

    reported = [{"job_id": "b", "state": "running", "rows_done": 5}]
    ray = [
        RayJobState("a", "FAILED", "ModuleNotFoundError: no module named 'team_code'", "us-west-1", None),
        RayJobState("b", "RUNNING", "", "us-west-1", "node-1"),
    ]
    merged = merged_statuses(reported, ray)
    assert [(s["job_id"], s["state"], s["ray_status"]) for s in merged] == [
        ("a", "failed", "FAILED"),
        ("b", "running", "RUNNING"),
    ]
    assert "team_code" in str(merged[0]["reason"])  # a job that died before its first report says why


def test_fine_cuts_join_into_units_of_the_chosen_size_and_auto_sizes_scale_with_input() -> None:
    data = b"".join(b"row %d\n" % i for i in range(10))
    fine = cut_lines([data], InputFormat.TEXT, 3)
    (joined,) = join_units([fine], 7)
    assert [rows for _, _, rows in joined.ranges] == [9, 1]  # whole fine cuts: 3 + 3 + 3, then what is left
    assert joined.ranges[0][0] == 0
    assert joined.ranges[-1][1] == len(data)
    assert data[joined.ranges[1][0] : joined.ranges[1][1]] == b"row 9\n"
    assert auto_block_rows(200_000, workers=2) == 12_500  # about eight units a worker
    assert auto_block_rows(2_000_000, workers=2) == 16_384  # capped: a unit stays seconds of work
    assert auto_block_rows(20_000, workers=2) == 1_250
    assert auto_block_rows(500, workers=2) == 1_024  # floored: tiny units cost more than they save


def test_automatic_units_come_out_near_the_planned_count_and_taper_at_the_end() -> None:
    # The embedding benchmark's input: 20,000 rows on two workers gives units of about the planned 1,250 rows (not
    # 2,048), then units that shrink so both workers run out of input together.
    data = b"".join(b"line %d\n" % i for i in range(20_000))
    fine = cut_lines([data], InputFormat.TEXT, FINE_ROWS)
    (joined,) = join_units([fine], auto_block_rows(20_000, workers=2), taper_workers=2)
    sizes = [rows for _, _, rows in joined.ranges]
    assert sum(sizes) == 20_000
    assert max(sizes) <= 1_250 + FINE_ROWS
    assert sizes == sorted(sizes, reverse=True)  # never larger than the unit before
    assert sizes[-1] <= FINE_ROWS  # the last unit is a fine cut's worth: the workers finish within ~1 s of each other
    assert 16 <= len(sizes) <= 24  # the taper adds a handful of small units, not hundreds
    assert [r for _, _, r in join_units([fine], 1_250)[0].ranges][:-1] == [1_280] * 15  # a named size: no taper


def test_the_taper_spans_files_in_order() -> None:
    # Two files: the first file's units stay full size, the taper happens in the second (the end of the job).
    first = cut_lines([b"".join(b"a %d\n" % i for i in range(4_000))], InputFormat.TEXT, FINE_ROWS)
    second = cut_lines([b"".join(b"b %d\n" % i for i in range(4_000))], InputFormat.TEXT, FINE_ROWS)
    one, two = join_units([first, second], 1_024, taper_workers=1)
    assert [r for _, _, r in one.ranges] == [1_024, 1_024, 1_024, 928]  # the file's end closes its last unit
    assert sum(r for _, _, r in two.ranges) == 4_000
    assert [r for _, _, r in two.ranges][-1] < 1_024
