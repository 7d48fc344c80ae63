"""Example pipeline without a model: upper-cases each row's text (a cheap pipeline for smoke runs and tests)."""

from __future__ import annotations

from typing import Any

import numpy as np

from policies.batch_gate import BatchKnobs


def _upper(batch: dict[str, np.ndarray]) -> dict[str, Any]:
    return {"row_id": batch["row_id"], "text": batch["text"], "upper": [str(t).upper() for t in batch["text"]]}


def uppercase(dataset: Any, knobs: BatchKnobs) -> Any:
    return dataset.map_batches(_upper, batch_size=knobs.batch_size, num_cpus=0.25)
