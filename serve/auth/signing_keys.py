"""The JWT signing keys: ES256 key pairs kept in Postgres, rotated, published as a JWKS.

Every gateway replica reads the same keys from Postgres; private keys are stored encrypted with a
key derived from FINONE_SECRET_KEY. The newest key signs. A replaced key keeps verifying until
every token it signed has expired, then leaves the JWKS. A revoked key (``revoke``, for one that
leaked) is destroyed at once, and every replica stops verifying with it at its next refresh.
"""

from __future__ import annotations

import base64
import json
import logging
import secrets
import time
from dataclasses import dataclass

import asyncpg
from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from joserfc.jwk import ECKey

from core.settings import Settings

__all__ = ["ALGORITHM", "KeyRing", "SigningKey"]

log = logging.getLogger(__name__)

ALGORITHM = "ES256"
# Refresh from Postgres this often (so a key revoked on one replica stops verifying on every
# other within it), and at most this often when a token names an unknown kid (a forged kid must
# not turn every request into a database query).
_REFRESH_INTERVAL_S = 5.0
_UNKNOWN_KID_REFRESH_S = 1.0
# Serialises rotation across replicas and `finone` commands.
_ROTATION_LOCK = 0x46_494E_4B45_59  # "FINKEY"


@dataclass(frozen=True, slots=True)
class SigningKey:
    kid: str
    key: ECKey
    created_at: float
    retired_at: float | None


def _fernet(settings: Settings) -> Fernet:
    derived = HKDF(
        algorithm=hashes.SHA256(), length=32, salt=None, info=b"finone jwt signing keys"
    ).derive(settings.secret_key.get_secret_value().encode())
    return Fernet(base64.urlsafe_b64encode(derived))


class KeyRing:
    """The keys one replica signs and verifies with, cached and refreshed from Postgres."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._fernet = _fernet(settings)
        self._keys: dict[str, SigningKey] = {}
        self._signing: SigningKey | None = None
        self._loaded_at = 0.0

    async def load(self, pool: asyncpg.Pool) -> None:
        """Read the keys, creating or rotating the signing key when it is missing or too old."""
        async with pool.acquire() as conn:
            await self._read(conn)
            if self._rotation_due():
                await self.rotate(conn, only_if_due=True)

    async def refresh_if_stale(self, pool: asyncpg.Pool, unknown_kid: bool = False) -> None:
        age = time.monotonic() - self._loaded_at
        if age >= _REFRESH_INTERVAL_S or (unknown_kid and age >= _UNKNOWN_KID_REFRESH_S):
            await self.load(pool)

    async def rotate(self, conn: asyncpg.Connection, only_if_due: bool = False) -> str:
        """Make a new signing key; the previous one retires but keeps verifying. Returns the kid
        of the signing key (an existing one when ``only_if_due`` and another replica rotated)."""
        async with conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock($1)", _ROTATION_LOCK)
            if only_if_due:
                await self._read(conn)
                if not self._rotation_due():
                    return self.signing_key.kid
            kid = await self._insert_signing_key(conn)
            await conn.execute(
                "DELETE FROM signing_keys WHERE retired_at < now() - make_interval(secs => $1)",
                float(self._verify_window_s()),
            )
        log.info("new JWT signing key %s", kid)
        await self._read(conn)
        return kid

    async def revoke(self, conn: asyncpg.Connection, kid: str) -> str | None:
        """Destroy a key at once (it leaked, say): the tokens it signed stop verifying, and a
        fresh key signs if it was the signing one. Returns the signing key's kid afterwards, or
        None when there is no such key."""
        async with conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock($1)", _ROTATION_LOCK)
            row = await conn.fetchrow(
                "DELETE FROM signing_keys WHERE kid = $1 RETURNING retired_at IS NULL AS signing",
                kid,
            )
            if row is None:
                return None
            if row["signing"]:
                await self._insert_signing_key(conn)
        log.warning("JWT signing key %s revoked; the tokens it signed are refused", kid)
        await self._read(conn)
        return self.signing_key.kid

    async def _insert_signing_key(self, conn: asyncpg.Connection) -> str:
        """A new key that signs from now on, the current one retiring; returns its kid."""
        key = ECKey.generate_key(
            "P-256",
            parameters={"kid": secrets.token_urlsafe(12), "alg": ALGORITHM, "use": "sig"},
            private=True,
        )
        kid = key.kid
        assert kid is not None
        await conn.execute("UPDATE signing_keys SET retired_at = now() WHERE retired_at IS NULL")
        await conn.execute(
            "INSERT INTO signing_keys (kid, algorithm, public_jwk, private_jwk_encrypted) "
            "VALUES ($1, $2, $3, $4)",
            kid,
            ALGORITHM,
            json.dumps(key.as_dict(private=False)),
            self._fernet.encrypt(json.dumps(key.as_dict(private=True)).encode()),
        )
        return kid

    async def _read(self, conn: asyncpg.Connection) -> None:
        rows = await conn.fetch(
            "SELECT kid, private_jwk_encrypted, extract(epoch FROM created_at) AS created, "
            "extract(epoch FROM retired_at) AS retired FROM signing_keys "
            "WHERE retired_at IS NULL OR retired_at > now() - make_interval(secs => $1) "
            "ORDER BY created_at",
            float(self._verify_window_s()),
        )
        keys: dict[str, SigningKey] = {}
        for row in rows:
            try:
                private = json.loads(self._fernet.decrypt(row["private_jwk_encrypted"]))
            except InvalidToken:
                # FINONE_SECRET_KEY changed: this key is unusable; a fresh one gets made.
                log.warning("signing key %s was encrypted with another secret; skipped", row["kid"])
                continue
            retired = row["retired"]
            keys[row["kid"]] = SigningKey(
                kid=row["kid"],
                key=ECKey.import_key(private),
                created_at=float(row["created"]),
                retired_at=None if retired is None else float(retired),
            )
        self._keys = keys
        current = [k for k in keys.values() if k.retired_at is None]
        self._signing = current[-1] if current else None
        self._loaded_at = time.monotonic()

    def _verify_window_s(self) -> int:
        # Tokens live access_token_ttl_s; a minute of slack covers clock skew between replicas.
        return self._settings.access_token_ttl_s + 60

    def _rotation_due(self) -> bool:
        if self._signing is None:
            return True
        return time.time() - self._signing.created_at >= self._settings.signing_key_rotation_s

    @property
    def signing_key(self) -> SigningKey:
        if self._signing is None:
            raise RuntimeError("the key ring has not been loaded")
        return self._signing

    def verification_key(self, kid: str) -> ECKey | None:
        found = self._keys.get(kid)
        return found.key if found else None

    def jwks(self) -> dict[str, list[dict[str, str]]]:
        return {
            "keys": [
                {k: str(v) for k, v in key.key.as_dict(private=False).items()}
                for key in self._keys.values()
            ]
        }
