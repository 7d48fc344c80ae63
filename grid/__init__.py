"""The grid picture (pure): traces, EIA-930 loaders, forecasts, headroom and stress, readings and source health.
`grid.sources` holds the live provider adapters, the signal store and its poller: the only signal I/O."""
