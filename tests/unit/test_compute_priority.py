"""Model work is background work (serving.compute_scheduling): only the thread that runs it is lowered, never the
event loop beside it; gridshift's jobs ask Ray to lower their workers the same way."""

from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from fleet.errors import ConfigError
from fleet.loaders import load_fleet, parse_fleet
from fleet.serving import ComputeScheduling
from rayjobs.priority import SETUP_HOOK, background_job_worker, background_thread

linux_only = pytest.mark.skipif(
    not os.path.exists("/proc/self/task") or not hasattr(os, "SCHED_IDLE"),
    reason="per-thread policy and nice are Linux's",
)


def _nice_of_this_thread() -> int:
    stat = Path(f"/proc/self/task/{threading.get_native_id()}/stat").read_text()
    return int(stat.rsplit(")", 1)[1].split()[16])


def _policy_and_nice() -> tuple[int, int]:
    return os.sched_getscheduler(0), _nice_of_this_thread()


@linux_only
def test_idle_puts_only_the_model_thread_and_the_threads_it_starts_under_sched_idle() -> None:
    before = _policy_and_nice()
    with ThreadPoolExecutor(1, initializer=background_thread, initargs=(ComputeScheduling.IDLE, 10)) as model:
        assert model.submit(os.sched_getscheduler, 0).result() == os.SCHED_IDLE
        # torch's intra-op pool is started from the model thread: its threads inherit the policy.
        assert model.submit(_policy_of_a_thread_started_here).result() == os.SCHED_IDLE
    assert _policy_and_nice() == before  # the calling thread (the replica's event loop) keeps its priority


def _policy_of_a_thread_started_here() -> int:
    with ThreadPoolExecutor(1) as inner:
        return inner.submit(os.sched_getscheduler, 0).result()


@linux_only
def test_nice_lowers_only_the_model_thread_by_compute_nice() -> None:
    policy, before = _policy_and_nice()
    with ThreadPoolExecutor(1, initializer=background_thread, initargs=(ComputeScheduling.NICE, 5)) as model:
        assert model.submit(_policy_and_nice).result() == (policy, min(before + 5, 19))
    assert _policy_and_nice() == (policy, before)
    with ThreadPoolExecutor(1, initializer=background_thread, initargs=(ComputeScheduling.NICE, 0)) as unchanged:
        assert unchanged.submit(_policy_and_nice).result() == (policy, before)


@linux_only
def test_what_is_in_force_is_reported() -> None:
    with ThreadPoolExecutor(1) as pool:
        assert pool.submit(background_thread, ComputeScheduling.IDLE, 0).result() == "idle"
    with ThreadPoolExecutor(1) as pool:
        assert pool.submit(background_thread, ComputeScheduling.NICE, 3).result() == "nice +3"
    with ThreadPoolExecutor(1) as pool:
        assert pool.submit(background_thread, ComputeScheduling.NICE, 0).result() == "normal"


@linux_only
def test_the_job_setup_hook_is_importable_by_name_and_lowers_its_thread() -> None:
    module, _, function = SETUP_HOOK.rpartition(".")
    assert getattr(__import__(module, fromlist=[function]), function) is background_job_worker
    with ThreadPoolExecutor(1) as worker:
        worker.submit(background_job_worker).result()
        assert worker.submit(os.sched_getscheduler, 0).result() == os.SCHED_IDLE


def test_the_default_is_idle_and_an_unknown_policy_names_the_field() -> None:
    assert load_fleet(None).serving.compute_scheduling is ComputeScheduling.IDLE
    data = load_fleet(None).model_dump(mode="json")
    data["serving"]["compute_scheduling"] = "realtime"
    with pytest.raises(ConfigError, match="compute_scheduling"):
        parse_fleet(data, source="test")
