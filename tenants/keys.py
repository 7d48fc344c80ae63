"""API keys: random, shown once, stored as a per-key salted HMAC-SHA256 of their secret, checked in constant time.

A key reads `gsk_<key id>_<secret>`: the id (public) finds the row, the secret (256 random bits) is never stored.
A plain salted hash suffices for secrets this long (nothing to brute-force), and keeps each check microseconds.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass

KEY_PREFIX = "gsk"
_DUMMY_SALT = secrets.token_bytes(16)
_DUMMY_HASH = hashlib.sha256(b"no such key").digest()


@dataclass(frozen=True)
class NewKey:
    key_id: str
    secret: str
    salt: bytes
    secret_hash: bytes

    @property
    def plain(self) -> str:
        """The key as the tenant uses it: shown once, never stored or logged."""
        return f"{KEY_PREFIX}_{self.key_id}_{self.secret}"


def secret_hash(salt: bytes, secret: str) -> bytes:
    return hmac.new(salt, secret.encode(), hashlib.sha256).digest()


def new_key() -> NewKey:
    key_id, secret, salt = secrets.token_hex(8), secrets.token_urlsafe(32), secrets.token_bytes(16)
    return NewKey(key_id, secret, salt, secret_hash(salt, secret))


def parse_key(presented: str) -> tuple[str, str] | None:
    """(key id, secret) of a well-formed key, else None."""
    prefix, _, rest = presented.partition("_")
    key_id, _, secret = rest.partition("_")
    if prefix != KEY_PREFIX or len(key_id) != 16 or not secret or len(secret) > 128:
        return None
    return key_id, secret


def secret_matches(salt: bytes | None, stored: bytes | None, secret: str) -> bool:
    """Whether the secret hashes to the stored hash, in constant time; with no row, the same work against a dummy,
    so an unknown key takes as long to refuse as a wrong one."""
    if salt is None or stored is None:
        hmac.compare_digest(secret_hash(_DUMMY_SALT, secret), _DUMMY_HASH)
        return False
    return hmac.compare_digest(secret_hash(salt, secret), stored)
