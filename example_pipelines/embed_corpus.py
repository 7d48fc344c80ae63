"""Example pipeline: embed a text corpus with the gateway's model (all-MiniLM-L6-v2), as ordinary Ray Data code.

Submit it with
    gridshift batch submit --pipeline example_pipelines.embed_corpus:embed_corpus \\
        --input batch/data/corpus.txt --output results/corpus-embeddings --deadline ... --region us-west-1
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np

from fleet.serving import Precision
from policies.batch_gate import BatchKnobs

# Each map task reserves a quarter CPU: on a 2-core host the Serve fleet holds most of the CPUs already.
TASK_NUM_CPUS = 0.25


@functools.lru_cache(maxsize=1)
def _embedder() -> Any:
    # Once per Ray worker process: workers are reused across tasks and shards, so the model loads once each.
    from serve_apps.embedding import MiniLMEmbedder

    return MiniLMEmbedder(torch_threads=1)


def _embed_batch(batch: dict[str, np.ndarray], precision: str) -> dict[str, Any]:
    vectors = _embedder().embed([str(text) for text in batch["text"]], Precision(precision))
    return {
        "row_id": batch["row_id"],
        "text": batch["text"],
        "embedding": vectors,
        "precision": [precision] * len(vectors),
    }


def embed_corpus(dataset: Any, knobs: BatchKnobs) -> Any:
    """Rows {row_id, text} -> {row_id, text, embedding (384 floats), precision}, at the knobs of the moment."""
    return dataset.map_batches(
        _embed_batch,
        batch_size=knobs.batch_size,
        fn_kwargs={"precision": knobs.precision},
        num_cpus=TASK_NUM_CPUS,
    )
