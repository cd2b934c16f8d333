"""Opaque secrets (refresh tokens, client secrets): random, shown once, stored only as digests.

They carry 256 bits of randomness, so a plain SHA-256 digest is a safe way to store them; a slow
password hash would only cost time on every refresh.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

__all__ = ["new_secret", "digest", "matches"]


def new_secret() -> str:
    return secrets.token_urlsafe(32)


def digest(secret: str) -> bytes:
    return hashlib.sha256(secret.encode()).digest()


def matches(secret: str, stored_digest: bytes) -> bool:
    return hmac.compare_digest(digest(secret), stored_digest)
