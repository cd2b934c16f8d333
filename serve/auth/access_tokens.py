"""Short-lived signed access tokens (RFC 9068 style JWTs) and who they say the caller is.

Decoding checks everything explicitly: the ES256 algorithm only (``none`` and HMAC can never
verify), the ``at+jwt`` type, a known key id, and every claim: ``iss``, ``aud``, ``sub``,
``exp``, ``iat``, ``jti``, the role, the scopes and the session version. Revocation is checked
separately, against Redis (``serve.auth.revocation``).

ES256 verification is most of an authenticated request's CPU, and a client sends the same token
on every request until it expires: a token that verified is remembered (by digest, a bounded
number of them) and costs a hash afterwards, for as long as it has not expired and the key that
signed it is still in the ring, the two things that can change about a token that once verified.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from dataclasses import dataclass

from joserfc import jws, jwt
from joserfc.errors import ClaimError, JoseError

from core.settings import Settings
from serve.auth.roles import Role, Scope
from serve.auth.signing_keys import ALGORITHM, KeyRing

__all__ = ["TOKEN_TYPE", "Principal", "TokenError", "UnknownKeyError", "AccessTokens"]

TOKEN_TYPE = "at+jwt"
# A bearer token longer than this is not ours; refuse it before any parsing.
_MAX_TOKEN_LENGTH = 4_096
_CLOCK_LEEWAY_S = 30
# Tokens remembered as verified, per replica: a few MiB at most.
_VERIFIED_MAX = 4_096


class TokenError(Exception):
    """The bearer token is not acceptable; the message is safe to show to the caller."""


class UnknownKeyError(TokenError):
    """Signed with a key id this replica does not know (yet): refresh the key ring and retry."""


@dataclass(frozen=True, slots=True)
class Principal:
    """The authenticated caller behind one access token."""

    user_id: str
    role: Role
    scopes: frozenset[Scope]
    # When the token stops being valid; a long-lived connection (the live feed) ends then.
    expires_at: int
    session_version: int
    # The refresh-token family of a login session; None for machine clients.
    session_id: str | None = None
    client_id: str | None = None


class AccessTokens:
    def __init__(self, settings: Settings, keys: KeyRing) -> None:
        self._settings = settings
        self._keys = keys
        self._registry = jwt.JWTClaimsRegistry(
            leeway=_CLOCK_LEEWAY_S,
            iss={"essential": True, "value": settings.jwt_issuer},
            aud={"essential": True, "value": settings.jwt_audience},
            sub={"essential": True},
            exp={"essential": True},
            iat={"essential": True},
            jti={"essential": True},
        )
        # token digest -> (kid, principal), oldest first.
        self._verified: dict[bytes, tuple[str, Principal]] = {}

    @property
    def ttl_s(self) -> int:
        return self._settings.access_token_ttl_s

    def issue(
        self,
        user_id: str,
        role: Role,
        scopes: frozenset[Scope],
        session_version: int,
        session_id: str | None = None,
        client_id: str | None = None,
    ) -> str:
        signing = self._keys.signing_key
        now = int(time.time())
        claims: dict[str, object] = {
            "iss": self._settings.jwt_issuer,
            "aud": self._settings.jwt_audience,
            "sub": user_id,
            "iat": now,
            "exp": now + self.ttl_s,
            "jti": secrets.token_urlsafe(16),
            "role": role.value,
            "scope": " ".join(sorted(scopes)),
            "sv": session_version,
        }
        if session_id is not None:
            claims["sid"] = session_id
        if client_id is not None:
            claims["client_id"] = client_id
        header = {"alg": ALGORITHM, "kid": signing.kid, "typ": TOKEN_TYPE}
        return jwt.encode(header, claims, signing.key, algorithms=[ALGORITHM])

    def decode(self, token: str) -> Principal:
        if len(token) > _MAX_TOKEN_LENGTH:
            raise TokenError("the token is too long")
        digest = hashlib.blake2b(token.encode(), digest_size=16).digest()
        known = self._verified.pop(digest, None)
        if known is not None:
            kid, principal = known
            if (
                principal.expires_at >= time.time() - _CLOCK_LEEWAY_S
                and self._keys.verification_key(kid) is not None
            ):
                self._verified[digest] = known
                return principal
        principal, kid = self._verify(token)
        if len(self._verified) >= _VERIFIED_MAX:
            del self._verified[next(iter(self._verified))]
        self._verified[digest] = (kid, principal)
        return principal

    def _verify(self, token: str) -> tuple[Principal, str]:
        """The principal behind a token checked from scratch, and the kid that signed it."""
        try:
            header = jws.extract_compact(token.encode()).headers()
        except (JoseError, ValueError, TypeError):
            raise TokenError("the token is malformed") from None
        if header.get("alg") != ALGORITHM:
            raise TokenError("the token's algorithm is not accepted")
        if header.get("typ") != TOKEN_TYPE:
            raise TokenError("not an access token")
        kid = header.get("kid")
        if not isinstance(kid, str) or (key := self._keys.verification_key(kid)) is None:
            raise UnknownKeyError("the token was signed with an unknown key")
        try:
            claims = jwt.decode(token, key, algorithms=[ALGORITHM]).claims
            self._registry.validate(claims)
        except JoseError as error:
            raise TokenError(_describe(error)) from None
        except ValueError:
            raise TokenError("the token is malformed") from None
        return _principal(claims), kid


def _describe(error: JoseError) -> str:
    if error.error == "expired_token":
        return "the token has expired"
    if error.error == "bad_signature":
        return "the token's signature is not valid"
    if isinstance(error, ClaimError):
        return f"the token's {error.claim!r} claim is missing or not valid"
    return f"the token is not valid ({error.error})"


def _principal(claims: dict[str, object]) -> Principal:
    role, scope, version = claims.get("role"), claims.get("scope"), claims.get("sv")
    session_id, client_id, expires_at = claims.get("sid"), claims.get("client_id"), claims["exp"]
    roles = {r.value for r in Role}
    if not (isinstance(role, str) and role in roles and isinstance(scope, str)):
        raise TokenError("the token's role or scope claims are not valid")
    if type(version) is not int or type(expires_at) is not int:
        raise TokenError("the token's session claims are not valid")
    if not (isinstance(session_id, str | None) and isinstance(client_id, str | None)):
        raise TokenError("the token's session claims are not valid")
    if (session_id is None) == (client_id is None):
        raise TokenError("the token must belong to either a login session or a client")
    try:
        scopes = frozenset(Scope(s) for s in scope.split())
    except ValueError:
        raise TokenError("the token names an unknown scope") from None
    return Principal(
        user_id=str(claims["sub"]),
        role=Role(role),
        scopes=scopes,
        expires_at=expires_at,
        session_version=version,
        session_id=session_id,
        client_id=client_id,
    )
