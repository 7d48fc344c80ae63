"""Router layer: fleet config, grid signals and traces, headroom, latency model and region choice (pure, no Ray)."""
