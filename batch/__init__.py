"""Batch layer: the Ray Data pipeline runner with shards, grid gate, exactly-once ledger and submission."""
