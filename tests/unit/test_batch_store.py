"""Exactly-once output (the commit protocol, recovery), input reading, job specs and the batch gate, without Ray."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from batch.book import Piece
from batch.inputs import InputError, cut_file, read_unit, resolve_input
from batch.plan import InputPlan, number_units
from batch.spec import BatchJobSpec, JobSpecError, load_pipeline
from batch.store import STAGING, CommitRecord, OutputError, OutputStore, record_name
from policies.batch_gate import BatchKnobs, JobProgress, PlanVerdict, decide_gate, job_status

KNOBS = BatchKnobs(batch_size=16, precision="fp32")
CLAIM = {"job_id": "j", "pipeline": "m:f", "input": "in.txt", "output_format": "jsonl", "block_rows": 2}


def _stage(store: OutputStore, unit: int, rows: list[dict[str, object]], run: str = "r1") -> Piece:
    name = f"{STAGING}/{run}/u{unit:06d}-{len(rows)}.jsonl"
    store.write(name, b"".join(json.dumps(row).encode() + b"\n" for row in rows))
    return Piece(name, len(rows), int(rows[0]["row_id"]))  # type: ignore[call-overload]


def _output_rows(folder: Path) -> list[dict[str, object]]:
    rows = []
    for path in sorted(folder.glob("part-*.jsonl")):
        rows += [json.loads(line) for line in path.read_text().splitlines()]
    return rows


def test_commit_is_atomic_and_rerun_skips_committed_units(tmp_path: Path) -> None:
    store = OutputStore(str(tmp_path))
    store.open_job(CLAIM)
    assert store.recover() == {}
    assert store.commit(0, 2, [_stage(store, 0, [{"row_id": 0, "x": "a"}, {"row_id": 1, "x": "b"}])], "r1", ".jsonl")
    assert set(store.records()) == {0}
    assert [r.rows for r in store.records().values()] == [2]
    # A new process over the same folder sees unit 0 committed, and committing unit 0 again (a crash after the
    # record, before the run learnt of it) is refused rather than adding rows.
    again = OutputStore(str(tmp_path))
    assert again.stored_manifest(CLAIM) is not None
    assert set(again.recover()) == {0}
    assert not again.commit(
        0, 2, [_stage(again, 0, [{"row_id": 0, "x": "a"}, {"row_id": 1, "x": "b"}], "r2")], "r2", ".jsonl"
    )
    assert again.commit(
        1, 2, [_stage(again, 1, [{"row_id": 2, "x": "c"}, {"row_id": 3, "x": "d"}], "r2")], "r2", ".jsonl"
    )
    again.recover()
    assert [row["row_id"] for row in _output_rows(tmp_path)] == [0, 1, 2, 3]


def test_crash_between_record_and_rename_is_rolled_forward(tmp_path: Path) -> None:
    store = OutputStore(str(tmp_path))
    store.open_job(CLAIM)
    piece = _stage(store, 3, [{"row_id": 6}, {"row_id": 7}])
    # The record was created (the commit point), the rename never happened.
    record = CommitRecord(3, 2, ((piece.staged, "part-000003-00.jsonl"),), "r1")
    store.write(record_name(3), record.to_json(), exclusive=True)
    (tmp_path / "part-000009-00.jsonl").write_text('{"row_id": 18}\n')  # renamed by a run that never recorded it
    (tmp_path / "_gridshift" / "commits" / "unit-000004.json.abc.tmp").write_text("half a record")
    _stage(store, 4, [{"row_id": 8}])  # staged by a killed writer
    # A reader meanwhile (as during a live run, between a record and its rename) is not handed the missing file.
    assert store.committed_files() == []
    again = OutputStore(str(tmp_path))
    assert set(again.recover()) == {3}
    assert again.committed_files() == [str(tmp_path / "part-000003-00.jsonl")]
    assert [row["row_id"] for row in _output_rows(tmp_path)] == [6, 7]
    assert not (tmp_path / "_gridshift" / "staging").exists()
    assert not list((tmp_path / "_gridshift" / "commits").glob("*.tmp"))


def test_output_of_another_job_or_unwritable_is_refused(tmp_path: Path) -> None:
    OutputStore(str(tmp_path)).open_job(CLAIM)
    with pytest.raises(OutputError, match="holds another job's output"):
        OutputStore(str(tmp_path)).stored_manifest({**CLAIM, "input": "changed.txt"})
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "data.csv").write_text("x")
    with pytest.raises(OutputError, match="not a gridshift job's folder"):
        OutputStore(str(tmp_path / "other")).check_claim(CLAIM)
    target = tmp_path / "a-file"
    target.write_text("x")
    with pytest.raises(OutputError, match="exists and is not a folder"):
        OutputStore(str(target)).open_job(CLAIM)


def _plan(path: Path, block_rows: int) -> InputPlan:
    resolved = resolve_input(str(path))
    cuts = [cut_file(file, resolved.format, block_rows) for file in resolved.files]
    return number_units(resolved.format, resolved.files, resolved.sizes, cuts)


def test_read_input_txt_and_jsonl(tmp_path: Path) -> None:
    text = tmp_path / "in.txt"
    text.write_text("alpha\nbeta\n\ngamma\n")
    plan = _plan(text, 3)
    rows = [row for unit in plan.units for row in read_unit(plan, unit).to_pylist()]
    assert [r["row_id"] for r in rows] == [0, 1, 2, 3]  # empty lines are rows too: ids are positions
    assert len(plan.units) == 2
    assert [r["text"] for r in read_unit(plan, plan.units[1]).to_pylist()] == ["gamma"]
    lines = tmp_path / "in.jsonl"
    lines.write_text('{"text": "a"}\n\n{"text": "b"}\n')
    assert [r["row_id"] for r in read_unit(_plan(lines, 10), _plan(lines, 10).units[0]).to_pylist()] == [0, 1]
    owned = tmp_path / "owned.jsonl"
    owned.write_text('{"text": "b", "row_id": 99}\n')  # an input's own row_id would be lost: refused
    with pytest.raises(JobSpecError, match="has a column 'row_id'"):
        read_unit(_plan(owned, 10), _plan(owned, 10).units[0])


def _read_all(path: Path) -> None:
    plan = _plan(path, 10)
    if not plan.units:
        raise InputError(f"input {path}: no rows")
    for unit in plan.units:
        read_unit(plan, unit)


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("absent.txt", None, "no such file"),
        ("in.xyz", "a,b\n", "unknown format"),
        ("empty.txt", "", "no rows"),
        ("bad.jsonl", '{"a": 1}\nnot json\n', "bad.jsonl: bytes 0..18: not valid jsonl"),
        ("list.jsonl", "[1, 2]\n", "not valid jsonl"),
        ("in.txt.gz", "x", "compressed files cannot be split"),
    ],
)
def test_bad_inputs_are_clear_errors(tmp_path: Path, name: str, content: str | None, message: str) -> None:
    path = tmp_path / name
    if content is not None:
        path.write_text(content)
    with pytest.raises(JobSpecError, match=message):
        _read_all(path)


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("nomodule", "expected 'module:function'"),
        ("no_such_module_xyz:f", "cannot import module"),
        ("example_pipelines.uppercase:nothing", "has no attribute 'nothing'"),
        ("example_pipelines.uppercase:np", "is not callable"),
    ],
)
def test_bad_pipelines_are_clear_errors(path: str, message: str) -> None:
    with pytest.raises(JobSpecError, match=message):
        load_pipeline(path)


def test_job_spec_validation() -> None:
    good = {
        "job_id": "j1",
        "pipeline": "example_pipelines.uppercase:uppercase",
        "input": "in.txt",
        "output": "out",
        "deadline": "2022-09-07T12:00:00Z",
        "region": "us-west-1",
    }
    assert BatchJobSpec.model_validate(good).block_rows is None  # chosen at planning from the size of the input
    for field, value in (("pipeline", "not a path"), ("deadline", "2022-09-07T12:00:00"), ("block_rows", 0)):
        with pytest.raises(ValueError, match=field):
            BatchJobSpec.model_validate({**good, field: value})


def _verdict(run: bool = True, forced: bool = False) -> PlanVerdict:
    return PlanVerdict(run, forced, "planned window" if run else "waiting for a window", None if run else 7200.0)


@pytest.mark.parametrize(
    ("manual", "verdict", "stress", "run", "reason"),
    [
        (True, _verdict(forced=True), 0, False, "operator"),  # an operator's pause wins over everything
        (False, _verdict(run=True, forced=True), 3, True, "planned"),  # out of slack: runs even in an emergency
        (False, _verdict(run=True), 2, False, "grid stress 2"),
        (False, _verdict(run=True), 1, True, "planned window"),
        (False, _verdict(run=False), 0, False, "waiting"),
    ],
)
def test_gate_rules(manual: bool, verdict: PlanVerdict, stress: int, run: bool, reason: str) -> None:
    answer = decide_gate(manual_pause=manual, verdict=verdict, stress_level=stress, knobs=KNOBS, now_s=0, speedup=720)
    assert answer.run is run
    assert reason in answer.reason
    assert answer.knobs == KNOBS
    if not run:
        assert 0 < answer.poll_s <= 1.0


def test_job_status_expected_finish_against_deadline() -> None:
    progress = JobProgress("j", "us-west-1", "carbon", 10_000.0, "paused", 50, 150, 10.0, "waiting", 2_000.0)
    status = job_status(progress, now_s=1_000.0, speedup=60.0, paused_by_operator=False)
    # 100 rows left at 10 rows/s = 10 wall s = 600 trace s, from the expected resume at 2000.
    assert status["expected_finish"] == "1970-01-01T00:43:20Z"
    assert status["on_track"] is True
    late = job_status(progress, now_s=1_000.0, speedup=1_000.0, paused_by_operator=True)
    assert late["on_track"] is False
    assert json.dumps(late)
