"""Example batch pipelines (above every layer: they may use the serving model as well as the batch knobs)."""
