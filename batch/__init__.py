"""Batch pipelines as flexible load: input planning into units, the gated Ray Data stream, the exactly-once commit
sink, and submission as Ray Jobs (docs/batch.md)."""
