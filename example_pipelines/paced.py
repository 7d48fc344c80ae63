"""Example pipeline with work of a known cost and no model: upper-cases text at a fixed pace per row.

It stands in for model work where a test or benchmark needs blocks that take a while (a pause to land in flight,
a crash to land mid-run) without loading a model: `PACE_S_PER_ROW` seconds of sleep per row, per batch.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from policies.batch_gate import BatchKnobs

PACE_S_PER_ROW = 0.002


def _paced_upper(batch: dict[str, np.ndarray]) -> dict[str, Any]:
    time.sleep(PACE_S_PER_ROW * len(batch["text"]))
    return {**batch, "upper": np.char.upper(batch["text"].astype(str))}


def paced_uppercase(dataset: Any, knobs: BatchKnobs) -> Any:
    import ray.data

    return dataset.map_batches(
        _paced_upper,
        batch_size=knobs.batch_size,
        num_cpus=knobs.num_cpus,
        compute=ray.data.TaskPoolStrategy(size=knobs.concurrency),
    )
