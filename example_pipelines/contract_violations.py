"""Pipelines that break the runner's contract, kept for the tests that check the runner refuses them."""

from __future__ import annotations

from typing import Any

import numpy as np

from policies.batch_gate import BatchKnobs


def _drop_every_50th(batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    keep = batch["row_id"] % 50 != 0
    return {name: column[keep] for name, column in batch.items()}


def drop_rows(dataset: Any, _knobs: BatchKnobs) -> Any:
    """Loses every 50th row."""
    return dataset.map_batches(_drop_every_50th, num_cpus=0.25)


def not_a_dataset(dataset: Any, _knobs: BatchKnobs) -> Any:
    """Returns rows instead of a Dataset."""
    return dataset.take_all()
