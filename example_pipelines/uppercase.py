"""Example pipeline without a model: upper-cases each row's text (a cheap pipeline for smoke runs and benchmarks).

It keeps every column it is given (gridshift's `row_id` among them), so the same function runs on a plain Ray Data
dataset too: the batch benchmark compares the two side by side.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from policies.batch_gate import BatchKnobs


def _upper(batch: dict[str, np.ndarray]) -> dict[str, Any]:
    return {**batch, "upper": np.char.upper(batch["text"].astype(str))}


def uppercase(dataset: Any, knobs: BatchKnobs) -> Any:
    import ray.data

    return dataset.map_batches(
        _upper,
        batch_size=knobs.batch_size,
        num_cpus=knobs.num_cpus,
        compute=ray.data.TaskPoolStrategy(size=knobs.concurrency),
    )
