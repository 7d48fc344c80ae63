"""The gateway's admin bearer token: where it comes from (config, then environment, else a fresh one) and its digest.

The environment is read here, at the edge that needs it, when called (never at import): the fleet config itself
stays free of environment reads.
"""

from __future__ import annotations

import hashlib
import os
import secrets

from fleet.serving import GatewayConfig

ADMIN_TOKEN_ENV = "GRIDSHIFT_ADMIN_TOKEN"
"""Environment variable holding the gateway's admin bearer token when the fleet config sets none."""


def configured_admin_token(gateway: GatewayConfig) -> str | None:
    """The admin token from the config, else from $GRIDSHIFT_ADMIN_TOKEN (read when called, never at import)."""
    return gateway.admin_token or os.environ.get(ADMIN_TOKEN_ENV) or None


def resolve_admin_token(gateway: GatewayConfig) -> tuple[str, bool]:
    """The admin token from config or the environment; else a fresh random one. Returns (token, generated)."""
    configured = configured_admin_token(gateway)
    if configured:
        return configured, False
    return secrets.token_urlsafe(24), True


def admin_token_digest(token: str) -> str:
    """What the gateway holds instead of the token: its SHA-256, so the plain token never reaches a replica."""
    return hashlib.sha256(token.encode()).hexdigest()
