"""A leaked signing key: an admin revokes it at once and the tokens it signed stop working."""

from __future__ import annotations

from joserfc import jws

from tests.serve.auth_api import AuthApi, Session


def _kid(token: str) -> str:
    kid = jws.extract_compact(token.encode()).headers()["kid"]
    assert isinstance(kid, str)
    return kid


async def test_revoked_signing_key_stops_its_tokens_at_once_and_a_fresh_key_signs(
    auth_api: AuthApi, admin: Session
) -> None:
    # A key of this test's own signs the victim's token: the session's other callers hold tokens
    # of older keys, which this revocation must leave alone.
    rotated = await auth_api.http.post(
        f"{auth_api.url}/v1/admin/signing-keys/rotate", headers=admin.headers
    )
    leaked = rotated.json()["kid"]
    victim = await auth_api.signed_up()
    assert _kid(victim.access_token) == leaked
    # Used once before: the gateway remembers tokens that verified, and must forget this one.
    assert (await auth_api.me(victim.access_token)).status_code == 200

    revoked = await auth_api.http.post(
        f"{auth_api.url}/v1/admin/signing-keys/{leaked}/revoke", headers=admin.headers
    )

    assert revoked.status_code == 200, revoked.text
    signing = revoked.json()["signing"]
    assert revoked.json()["revoked"] == leaked and signing != leaked
    refused = await auth_api.me(victim.access_token)
    assert refused.status_code == 401
    assert refused.json()["code"] == "invalid_token"
    jwks = (await auth_api.http.get(f"{auth_api.url}/v1/auth/jwks")).json()
    assert leaked not in {key["kid"] for key in jwks["keys"]}
    fresh = await auth_api.logged_in(victim.email)
    assert _kid(fresh.access_token) == signing
    audit = await auth_api.http.get(
        f"{auth_api.url}/v1/admin/audit",
        params={"event": "signing_key_revoked"},
        headers=admin.headers,
    )
    assert audit.json()["items"][0]["details"] == {"kid": leaked, "signing_kid": signing}


async def test_revoking_an_unknown_key_is_404_and_users_cannot_revoke(
    auth_api: AuthApi, admin: Session, user: Session
) -> None:
    kid = _kid(user.access_token)

    unknown = await auth_api.http.post(
        f"{auth_api.url}/v1/admin/signing-keys/no-such-kid/revoke", headers=admin.headers
    )
    by_user = await auth_api.http.post(
        f"{auth_api.url}/v1/admin/signing-keys/{kid}/revoke", headers=user.headers
    )

    assert unknown.status_code == 404
    assert unknown.json()["code"] == "signing_key_not_found"
    assert by_user.status_code == 403
    assert (await auth_api.me(user.access_token)).status_code == 200
