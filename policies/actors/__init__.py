"""Every long-lived Ray actor of a fleet (control, policy, OpenADR), their names, get-or-create, and the one client
each that the gateway, batch runners, regional replicas and the OpenADR port use."""
