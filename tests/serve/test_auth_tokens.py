"""Access tokens that must be refused: forged, tampered, expired, `none`-signed, for another
audience, of another type, missing claims; and signing-key rotation."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import time
from collections.abc import AsyncIterator

import asyncpg
import pytest
from joserfc import jwt
from joserfc.jwk import ECKey
from pydantic import SecretStr

from core.settings import Settings
from serve.auth.access_tokens import AccessTokens, TokenError
from serve.auth.signing_keys import KeyRing
from tests.serve.auth_api import AuthApi, Session


@pytest.fixture
async def pool(gateway_settings: Settings) -> AsyncIterator[asyncpg.Pool]:
    assert gateway_settings.database_url
    pool = await asyncpg.create_pool(gateway_settings.database_url, min_size=1, max_size=2)
    yield pool
    await pool.close()


@pytest.fixture
async def key_ring(gateway_settings: Settings, pool: asyncpg.Pool, user: Session) -> KeyRing:
    """The gateway's own keys, read from Postgres as another replica would."""
    ring = KeyRing(gateway_settings)
    await ring.load(pool)
    return ring


def _b64(data: dict[str, object]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")


def _parts(token: str) -> tuple[dict[str, object], dict[str, object], str]:
    header, payload, signature = token.split(".")
    pad = lambda s: s + "=" * (-len(s) % 4)  # noqa: E731
    return (
        json.loads(base64.urlsafe_b64decode(pad(header))),
        json.loads(base64.urlsafe_b64decode(pad(payload))),
        signature,
    )


def _signed(ring: KeyRing, header: dict[str, object], claims: dict[str, object]) -> str:
    key = ring.signing_key
    return jwt.encode(
        {"alg": "ES256", "kid": key.kid, **header}, claims, key.key, algorithms=["ES256"]
    )


async def _assert_refused(auth_api: AuthApi, token: str, reason: str = "") -> None:
    response = await auth_api.me(token)
    assert response.status_code == 401, response.text
    assert response.json()["code"] == "invalid_token"
    assert reason in response.json()["message"]
    challenge = response.headers["www-authenticate"]
    assert challenge.startswith('Bearer realm="finone"')
    assert 'error="invalid_token"' in challenge


async def test_missing_token_is_401_with_a_bearer_challenge(auth_api: AuthApi) -> None:
    response = await auth_api.http.get(f"{auth_api.url}/v1/auth/me")

    assert response.status_code == 401
    assert response.json()["code"] == "not_authenticated"
    assert response.headers["www-authenticate"] == 'Bearer realm="finone"'


async def test_token_signed_by_another_key_with_our_kid_is_refused(
    auth_api: AuthApi, user: Session
) -> None:
    header, claims, _ = _parts(user.access_token)
    impostor = ECKey.generate_key("P-256", private=True)

    forged = jwt.encode(header, claims, impostor, algorithms=["ES256"])

    await _assert_refused(auth_api, forged, "signature")


async def test_tampered_claims_break_the_signature(auth_api: AuthApi, user: Session) -> None:
    header, claims, signature = _parts(user.access_token)
    promoted = {**claims, "role": "admin", "scope": claims["scope"] + " admin operations"}

    tampered = f"{_b64(header)}.{_b64(promoted)}.{signature}"

    await _assert_refused(auth_api, tampered, "signature")


async def test_alg_none_token_is_refused(auth_api: AuthApi, user: Session) -> None:
    header, claims, _ = _parts(user.access_token)

    unsigned = f"{_b64({**header, 'alg': 'none'})}.{_b64(claims)}."

    await _assert_refused(auth_api, unsigned, "algorithm")


async def test_hmac_token_keyed_with_the_public_key_is_refused(
    auth_api: AuthApi, user: Session, key_ring: KeyRing
) -> None:
    header, claims, _ = _parts(user.access_token)
    public_pem = key_ring.signing_key.key.as_pem(private=False)

    # Built by hand: joserfc itself refuses to use a public key as an HMAC secret.
    signing_input = f"{_b64({**header, 'alg': 'HS256'})}.{_b64(claims)}"
    mac = hmac.new(public_pem, signing_input.encode(), hashlib.sha256).digest()
    confused = f"{signing_input}.{base64.urlsafe_b64encode(mac).decode().rstrip('=')}"

    await _assert_refused(auth_api, confused, "algorithm")


async def test_expired_token_is_refused(
    auth_api: AuthApi, user: Session, key_ring: KeyRing
) -> None:
    _, claims, _ = _parts(user.access_token)
    long_ago = int(time.time()) - 3_600

    expired = _signed(
        key_ring, {"typ": "at+jwt"}, {**claims, "iat": long_ago, "exp": long_ago + 900}
    )

    await _assert_refused(auth_api, expired, "expired")


async def test_a_token_that_verified_before_is_refused_once_it_expires(
    gateway_settings: Settings, user: Session, key_ring: KeyRing
) -> None:
    tokens = AccessTokens(gateway_settings, key_ring)
    _, claims, _ = _parts(user.access_token)
    # Past exp by all but 2 s of the 30 s leeway: verifies now, not 3 s from now.
    now = int(time.time())
    token = _signed(key_ring, {"typ": "at+jwt"}, {**claims, "iat": now - 60, "exp": now - 28})
    assert tokens.decode(token).user_id == user.user_id

    await asyncio.sleep(3)

    with pytest.raises(TokenError, match="expired"):
        tokens.decode(token)


async def test_a_token_that_verified_before_vouches_for_no_other(
    gateway_settings: Settings, user: Session, key_ring: KeyRing
) -> None:
    tokens = AccessTokens(gateway_settings, key_ring)
    header, claims, signature = _parts(user.access_token)
    assert tokens.decode(user.access_token).role.value == claims["role"]
    promoted = {**claims, "role": "admin", "scope": claims["scope"] + " admin operations"}

    for forged in (
        f"{_b64(header)}.{_b64(promoted)}.{signature}",
        f"{_b64(header)}.{_b64(claims)}.{signature[:-4]}AAAA",
    ):
        with pytest.raises(TokenError, match="signature|malformed"):
            tokens.decode(forged)


async def test_token_for_another_audience_or_issuer_is_refused(
    auth_api: AuthApi, user: Session, key_ring: KeyRing
) -> None:
    _, claims, _ = _parts(user.access_token)

    for claim, value in (("aud", "some-other-api"), ("iss", "someone-else")):
        token = _signed(key_ring, {"typ": "at+jwt"}, {**claims, claim: value})
        await _assert_refused(auth_api, token, claim)


async def test_token_of_another_type_is_refused(
    auth_api: AuthApi, user: Session, key_ring: KeyRing
) -> None:
    _, claims, _ = _parts(user.access_token)

    for typ in ("JWT", "refresh+jwt"):
        await _assert_refused(
            auth_api, _signed(key_ring, {"typ": typ}, claims), "not an access token"
        )


async def test_token_missing_a_claim_or_with_a_bad_one_is_refused(
    auth_api: AuthApi, user: Session, key_ring: KeyRing
) -> None:
    _, claims, _ = _parts(user.access_token)

    for claim in ("sub", "exp", "iat", "jti", "aud", "sv", "role"):
        stripped = {k: v for k, v in claims.items() if k != claim}
        await _assert_refused(auth_api, _signed(key_ring, {"typ": "at+jwt"}, stripped))
    for claim, value in (("role", "superuser"), ("scope", "everything"), ("sv", "0")):
        await _assert_refused(
            auth_api, _signed(key_ring, {"typ": "at+jwt"}, {**claims, claim: value})
        )


async def test_garbage_bearer_values_are_refused(auth_api: AuthApi) -> None:
    for value in ("x", "a.b.c", "ey.ey.ey", "." * 5, "A" * 5_000):
        await _assert_refused(auth_api, value)


async def test_rotation_keeps_old_tokens_valid_and_signs_new_ones_with_the_new_key(
    auth_api: AuthApi, user: Session, admin: Session
) -> None:
    old_kid = _parts(user.access_token)[0]["kid"]

    rotated = await auth_api.http.post(
        f"{auth_api.url}/v1/admin/signing-keys/rotate", headers=admin.headers
    )

    assert rotated.status_code == 200
    new_kid = rotated.json()["kid"]
    assert new_kid != old_kid
    assert (await auth_api.me(user.access_token)).status_code == 200
    fresh = await auth_api.logged_in(user.email)
    assert _parts(fresh.access_token)[0]["kid"] == new_kid
    jwks = (await auth_api.http.get(f"{auth_api.url}/v1/auth/jwks")).json()
    assert {old_kid, new_kid} <= {key["kid"] for key in jwks["keys"]}


@pytest.fixture
async def own_pool(database_url: str) -> AsyncIterator[asyncpg.Pool]:
    """A database of the test's own: these tests retire keys the gateway still signs with."""
    pool = await asyncpg.create_pool(database_url, min_size=1, max_size=2)
    yield pool
    await pool.close()


async def test_retired_key_stops_verifying_once_its_tokens_have_expired(
    gateway_settings: Settings, own_pool: asyncpg.Pool
) -> None:
    ring = KeyRing(gateway_settings)
    await ring.load(own_pool)
    async with own_pool.acquire() as conn:
        old_kid = ring.signing_key.kid
        new_kid = await ring.rotate(conn)
        assert ring.verification_key(old_kid) is not None
        await conn.execute(
            "UPDATE signing_keys SET retired_at = now() - interval '1 day' WHERE kid = $1", old_kid
        )

    await ring.load(own_pool)

    assert ring.verification_key(old_kid) is None
    assert old_kid not in {key["kid"] for key in ring.jwks()["keys"]}
    assert ring.signing_key.kid == new_kid


async def test_key_older_than_the_rotation_period_is_replaced_on_load(
    gateway_settings: Settings, own_pool: asyncpg.Pool
) -> None:
    ring = KeyRing(gateway_settings)
    await ring.load(own_pool)
    old_kid = ring.signing_key.kid
    await own_pool.execute(
        "UPDATE signing_keys SET created_at = now() - make_interval(secs => $1) WHERE kid = $2",
        float(gateway_settings.signing_key_rotation_s + 60),
        old_kid,
    )

    await ring.load(own_pool)

    assert ring.signing_key.kid != old_kid
    assert ring.verification_key(old_kid) is not None


async def test_keys_encrypted_under_another_secret_are_replaced_not_used(
    gateway_settings: Settings, own_pool: asyncpg.Pool
) -> None:
    ring = KeyRing(gateway_settings)
    await ring.load(own_pool)
    other = KeyRing(
        gateway_settings.model_copy(update={"secret_key": SecretStr("another-secret-entirely")})
    )

    await other.load(own_pool)

    assert other.signing_key.kid != ring.signing_key.kid
    assert other.verification_key(ring.signing_key.kid) is None
