"""Serve layer: Ray Serve deployments (gateway, regional model apps) and the `gridshift` CLI."""
