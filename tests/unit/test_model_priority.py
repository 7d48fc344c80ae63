"""The model thread runs at a lower priority than the replica's event loop (serving.compute_nice)."""

from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from serve_apps.regional import lower_thread_priority


def _nice_of_this_thread() -> int:
    stat = Path(f"/proc/self/task/{threading.get_native_id()}/stat").read_text()
    return int(stat.rsplit(")", 1)[1].split()[16])


@pytest.mark.skipif(not os.path.exists("/proc/self/task"), reason="per-thread nice is read from Linux /proc")
def test_only_the_model_thread_is_lowered() -> None:
    before = _nice_of_this_thread()
    with ThreadPoolExecutor(1, initializer=lower_thread_priority, initargs=(5,)) as model:
        lowered = model.submit(_nice_of_this_thread).result()
    assert lowered == min(before + 5, 19)
    assert _nice_of_this_thread() == before  # the calling thread (the replica's event loop) keeps its priority
    with ThreadPoolExecutor(1, initializer=lower_thread_priority, initargs=(0,)) as unchanged:
        assert unchanged.submit(_nice_of_this_thread).result() == before
