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

# Each actor reserves a quarter CPU: on a 2-core host the Serve fleet holds most of the CPUs already.
ACTOR_NUM_CPUS = 0.25


class Embedder:
    """One model replica in the pool: loaded once, then embedding batches {row_id, text}."""

    def __init__(self, precision: str) -> None:
        from serve_apps.embedding import MiniLMEmbedder

        self._model = MiniLMEmbedder(torch_threads=1)
        self._precision = Precision(precision)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, Any]:
        vectors = self._model.embed([str(text) for text in batch["text"]], self._precision)
        return {
            "row_id": batch["row_id"],
            "text": batch["text"],
            "embedding": vectors,
            "precision": [self._precision.value] * len(vectors),
        }


def embed_corpus(dataset: Any, knobs: BatchKnobs) -> Any:
    """Rows {row_id, text} -> {row_id, text, embedding (384 floats), precision}, at the knobs of the moment."""
    import ray.data

    return dataset.map_batches(
        Embedder,
        fn_constructor_kwargs={"precision": knobs.precision},
        batch_size=knobs.batch_size,
        compute=ray.data.ActorPoolStrategy(size=knobs.concurrency),
        num_cpus=ACTOR_NUM_CPUS,
    )
