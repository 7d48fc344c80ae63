"""The local VTN's auth: OAuth2 client-credential tokens for its known clients, each client with its role."""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from dataclasses import dataclass

from aiohttp import web

from fleet.clock import Clock
from openadr.schema import SpecSchemas
from openadr.vtn_store import Role, VTNRefusal


@dataclass
class _Client:
    secret: str
    role: Role


@dataclass
class Token:
    """A bearer token the VTN issued: to whom, in which role, and until when (clock seconds)."""

    client_id: str
    role: Role
    expires_at_s: float


class VTNAuth:
    """Issues tokens at the token endpoint and checks them on every other request."""

    def __init__(
        self, clients: Mapping[str, tuple[str, Role]], clock: Clock, schemas: SpecSchemas, token_ttl_s: int
    ) -> None:
        self.clock = clock
        self.schemas = schemas
        self.token_ttl_s = token_ttl_s
        self._clients = {cid: _Client(secret, role) for cid, (secret, role) in clients.items()}
        self._tokens: dict[str, Token] = {}

    def role_of(self, client_id: str) -> Role:
        """The client's role; an unknown id acts as the business logic (the in-process helpers' default)."""
        client = self._clients.get(client_id)
        return client.role if client else "bl"

    def authorise(self, request: web.Request) -> Token:
        header = request.headers.get("Authorization", "")
        token = self._tokens.get(header[len("Bearer ") :]) if header.startswith("Bearer ") else None
        if token is None or self.clock.now_s() >= token.expires_at_s:
            raise VTNRefusal(401, "Unauthorized", "missing, unknown or expired bearer token")
        return token

    async def token_endpoint(self, request: web.Request) -> web.Response:
        form = dict(await request.post())
        problems = self.schemas.problems("clientCredentialRequest", form)
        if problems:
            return web.json_response({"error": "invalid_request", "error_description": "; ".join(problems)}, status=400)
        client = self._clients.get(str(form["client_id"]))
        if client is None or not secrets.compare_digest(client.secret, str(form["client_secret"])):
            return web.json_response({"error": "invalid_client"}, status=401)
        value = secrets.token_urlsafe(24)
        self._tokens[value] = Token(str(form["client_id"]), client.role, self.clock.now_s() + self.token_ttl_s)
        answer = {"access_token": value, "token_type": "Bearer", "expires_in": self.token_ttl_s}
        return web.json_response(answer)
