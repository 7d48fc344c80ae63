"""Fleet what-if simulation over real traces and grid studies (curtailment-enabled headroom): pure, no Ray."""
