"""Pure decisions: the control plane's state, knob leases, job registry and telemetry; the magnitude ladder, window
planner, job gate, power and battery models. `policies.actors` runs them as long-lived Ray actors."""
