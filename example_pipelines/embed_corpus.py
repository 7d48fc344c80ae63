"""Example pipeline: embed a text corpus with the gateway's model (all-MiniLM-L6-v2), as ordinary Ray Data code.

Submit it with
    gridshift batch submit --pipeline example_pipelines.embed_corpus:embed_corpus \\
        --input batch/data/corpus.txt --output results/corpus-embeddings --deadline ... --region us-west-1

The model is stateful work: an actor class, loaded once per actor, in a pool of `knobs.concurrency` actors (the
policy's workers knob), running at `knobs.precision` with batches of `knobs.batch_size`.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from fleet.serving import Precision
from policies.batch_gate import BatchKnobs


class Embedder:
    """One model replica in the pool: loaded once, then embedding batches of {text, ...}."""

    def __init__(self, precision: str) -> None:
        from serve_apps.embedding import MiniLMEmbedder

        self._model = MiniLMEmbedder(torch_threads=1)
        self._precision = Precision(precision)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, Any]:
        vectors = self._model.embed([str(text) for text in batch["text"]], self._precision)
        # Every column it was given stays (gridshift's row_id among them): the same function runs on plain Ray Data.
        return {**batch, "embedding": vectors, "precision": [self._precision.value] * len(vectors)}


def embed_corpus(dataset: Any, knobs: BatchKnobs) -> Any:
    """Rows {row_id, text, ...} -> the same plus embedding (384 floats) and precision, at the knobs of the moment."""
    import ray.data

    return dataset.map_batches(
        Embedder,
        fn_constructor_kwargs={"precision": knobs.precision},
        batch_size=knobs.batch_size,
        compute=ray.data.ActorPoolStrategy(size=knobs.concurrency),
        num_cpus=knobs.num_cpus,
    )
