"""Ray Train jobs as flexible load: gated, paused at checkpoints, shrunk and resumed by the grid (docs/training.md)."""
