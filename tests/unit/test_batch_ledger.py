"""Exactly-once output, job specs and the batch gate, without Ray."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from batch.ledger import LEDGER_NAME, OutputError, ShardLedger, part_name, read_output
from batch.spec import BatchJobSpec, JobSpecError, load_pipeline, read_input
from policies.batch_gate import BatchKnobs, JobProgress, PlanVerdict, decide_gate, job_status

MANIFEST = {"job_id": "j", "input_sha256": "abc", "rows": 4, "shard_rows": 2, "pipeline": "m:f"}
KNOBS = BatchKnobs(batch_size=16, precision="fp32")


def test_commit_is_atomic_and_rerun_skips_committed_shards(tmp_path: Path) -> None:
    ledger = ShardLedger(tmp_path, MANIFEST)
    assert ledger.committed() == set()
    ledger.commit(0, [{"row_id": 0, "x": "a"}, {"row_id": 1, "x": "b"}])
    assert ledger.committed() == {0}
    assert [e.rows for e in ledger.ledger().values()] == [2]
    # A new process over the same folder sees shard 0 committed, and committing shard 0 again (a crash
    # after the rename, before the runner learnt of it) replaces it rather than adding rows.
    again = ShardLedger(tmp_path, MANIFEST)
    again.commit(0, [{"row_id": 0, "x": "a"}, {"row_id": 1, "x": "b"}])
    again.commit(1, [{"row_id": 2, "x": "c"}, {"row_id": 3, "x": "d"}])
    assert [row["row_id"] for row in read_output(tmp_path)] == [0, 1, 2, 3]


def test_crash_between_rename_and_ledger_is_repaired(tmp_path: Path) -> None:
    ShardLedger(tmp_path, MANIFEST)
    (tmp_path / part_name(3)).write_text('{"row_id": 6}\n{"row_id": 7}\n')  # renamed, ledger line never written
    with (tmp_path / LEDGER_NAME).open("a") as handle:
        handle.write('{"shard": 9, "ro')  # a torn last line
    (tmp_path / ".part-000004.jsonl.tmp123").write_text("half a shard")  # a temp file of a killed writer
    ledger = ShardLedger(tmp_path, MANIFEST)
    assert ledger.committed() == {3}
    assert set(ledger.ledger()) == {3}
    assert ledger.ledger()[3].rows == 2
    assert not list(tmp_path.glob(".*.tmp*"))


def test_output_of_another_job_or_unwritable_is_refused(tmp_path: Path) -> None:
    ShardLedger(tmp_path, MANIFEST)
    with pytest.raises(OutputError, match="holds another job's output"):
        ShardLedger(tmp_path, {**MANIFEST, "input_sha256": "changed"})
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        if os.access(locked, os.W_OK):  # root ignores permissions: use a path under a file instead
            target = tmp_path / "a-file"
            target.write_text("x")
            with pytest.raises(OutputError, match="not writable"):
                ShardLedger(target / "out", MANIFEST)
        else:
            with pytest.raises(OutputError, match="not writable"):
                ShardLedger(locked / "out", MANIFEST)
    finally:
        locked.chmod(0o700)


def test_read_input_txt_and_jsonl(tmp_path: Path) -> None:
    text = tmp_path / "in.txt"
    text.write_text("alpha\nbeta\n\ngamma\n")
    rows = read_input(text)
    assert [r["row_id"] for r in rows.rows] == [0, 1, 2, 3]  # empty lines are rows too: ids are positions
    assert rows.shard_count(3) == 2
    assert [r["text"] for r in rows.shard(1, 3)] == ["gamma"]
    lines = tmp_path / "in.jsonl"
    lines.write_text('{"text": "a"}\n\n{"text": "b", "row_id": 99}\n')
    assert [r["row_id"] for r in read_input(lines).rows] == [0, 1]  # the input's own row_id is overridden


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("absent.txt", None, "cannot read"),
        ("in.csv", "a,b\n", "unsupported type '.csv'"),
        ("empty.txt", "", "no rows"),
        ("bad.jsonl", '{"a": 1}\nnot json\n', "bad.jsonl:2: not JSON"),
        ("list.jsonl", "[1, 2]\n", "must be a JSON object"),
    ],
)
def test_bad_inputs_are_clear_errors(tmp_path: Path, name: str, content: str | None, message: str) -> None:
    path = tmp_path / name
    if content is not None:
        path.write_text(content)
    with pytest.raises(JobSpecError, match=message):
        read_input(path)


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
    assert BatchJobSpec.model_validate(good).shard_rows == 128
    for field, value in (("pipeline", "not a path"), ("deadline", "2022-09-07T12:00:00"), ("shard_rows", 0)):
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
