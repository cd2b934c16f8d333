"""The account lifecycle over real HTTP against the Serve app: register, log in, refresh with
rotation, reuse detection, log out, log out everywhere, password change, disable."""

from __future__ import annotations

from pathlib import Path

import asyncpg
import httpx
import ray
from argon2 import PasswordHasher
from joserfc import jws

from core.settings import Settings
from tests.serve.auth_api import PASSWORD, AuthApi, Session, new_email, new_ip


async def _audit_events(auth_api: AuthApi, admin: Session, user_id: str) -> list[str]:
    response = await auth_api.http.get(
        f"{auth_api.url}/v1/admin/audit", params={"user_id": user_id}, headers=admin.headers
    )
    assert response.status_code == 200, response.text
    return [item["event"] for item in response.json()["items"]]


async def test_register_then_login_gives_tokens_that_identify_the_user(auth_api: AuthApi) -> None:
    email = new_email()

    registered = await auth_api.register(email.upper(), PASSWORD)
    login = await auth_api.login(email, PASSWORD)

    assert registered.status_code == 201, registered.text
    assert registered.json()["email"] == email
    assert registered.json()["role"] == "user"
    assert "password" not in registered.text
    assert login.status_code == 200
    assert login.headers["cache-control"] == "no-store"
    tokens = login.json()
    assert tokens["token_type"] == "bearer"
    assert tokens["expires_in"] == 900
    assert set(tokens["scope"].split()) == {
        "account",
        "market:read",
        "predictions:read",
        "stream:read",
    }
    me = await auth_api.me(tokens["access_token"])
    assert me.status_code == 200
    assert me.json()["email"] == email
    assert me.json()["client_id"] is None


async def test_register_twice_with_same_email_is_409(auth_api: AuthApi) -> None:
    email = new_email()
    await auth_api.register(email, PASSWORD)

    again = await auth_api.register(email.title(), "another fine passphrase")

    assert again.status_code == 409
    assert again.json()["code"] == "email_taken"


async def test_register_with_weak_or_invalid_input_says_why(auth_api: AuthApi) -> None:
    email = new_email()
    # The lengths are in the schema; the rest of the policy is the gateway's own check.
    for password, length in {"short7!": "at least 8", "x" * 129: "at most 128"}.items():
        response = await auth_api.register(email, password)
        assert response.status_code == 422, password
        assert response.json()["code"] == "invalid_request"
        [problem] = response.json()["details"]
        assert problem["location"] == ["body", "password"] and length in problem["problem"]
    cases = {
        "password123": "too common",
        "Football1": "too common",
        email: "must not be the email",
    }
    for password, reason in cases.items():
        response = await auth_api.register(email, password)
        assert response.status_code == 422, password
        assert response.json()["code"] == "weak_password"
        assert reason in response.json()["message"]
    bad_email = await auth_api.register("not-an-email", PASSWORD)
    assert bad_email.status_code == 422
    assert bad_email.json()["code"] == "invalid_request"


async def test_long_passwords_are_not_truncated(auth_api: AuthApi) -> None:
    email, password = new_email(), "ü" * 100 + "-" * 28
    assert (await auth_api.register(email, password)).status_code == 201

    assert (await auth_api.login(email, password)).status_code == 200
    assert (await auth_api.login(email, password[:-1])).status_code == 400
    assert (await auth_api.login(email, password[:72])).status_code == 400


async def test_refresh_rotates_and_the_used_token_stops_working(
    auth_api: AuthApi, user: Session
) -> None:
    first = await auth_api.refresh(user.refresh_token)
    assert first.status_code == 200
    rotated = first.json()
    assert rotated["refresh_token"] != user.refresh_token
    assert (await auth_api.me(rotated["access_token"])).status_code == 200

    second = await auth_api.refresh(rotated["refresh_token"])

    assert second.status_code == 200
    assert second.json()["refresh_token"] not in {rotated["refresh_token"], user.refresh_token}


async def test_reusing_a_refresh_token_revokes_the_whole_family(
    auth_api: AuthApi, user: Session, admin: Session
) -> None:
    rotated = (await auth_api.refresh(user.refresh_token)).json()

    reuse = await auth_api.refresh(user.refresh_token)

    assert reuse.status_code == 400
    assert reuse.json()["code"] == "invalid_grant"
    assert "already used" in reuse.json()["message"]
    # The legitimate holder's newer tokens die with the family.
    assert (await auth_api.refresh(rotated["refresh_token"])).status_code == 400
    assert (await auth_api.me(rotated["access_token"])).status_code == 401
    assert (await auth_api.me(user.access_token)).status_code == 401
    assert "refresh_token_reused" in await _audit_events(auth_api, admin, user.user_id)


async def test_unknown_refresh_token_is_invalid_grant(auth_api: AuthApi) -> None:
    response = await auth_api.refresh("x" * 43)

    assert response.status_code == 400
    assert response.json()["code"] == "invalid_grant"


async def test_logout_ends_this_session_only(auth_api: AuthApi, user: Session) -> None:
    other = await auth_api.logged_in(user.email)

    response = await auth_api.http.post(f"{auth_api.url}/v1/auth/logout", headers=user.headers)

    assert response.status_code == 204
    assert (await auth_api.me(user.access_token)).status_code == 401
    assert (await auth_api.refresh(user.refresh_token)).status_code == 400
    assert (await auth_api.me(other.access_token)).status_code == 200
    assert (await auth_api.refresh(other.refresh_token)).status_code == 200


async def test_logout_everywhere_ends_every_session(auth_api: AuthApi, user: Session) -> None:
    other = await auth_api.logged_in(user.email)

    response = await auth_api.http.post(f"{auth_api.url}/v1/auth/logout-all", headers=user.headers)

    assert response.status_code == 204
    for session in (user, other):
        assert (await auth_api.me(session.access_token)).status_code == 401
        assert (await auth_api.refresh(session.refresh_token)).status_code == 400
    assert (await auth_api.login(user.email, PASSWORD)).status_code == 200


async def test_password_change_ends_other_sessions_and_swaps_the_password(
    auth_api: AuthApi, user: Session, admin: Session
) -> None:
    other = await auth_api.logged_in(user.email)
    new_password = "a brand new passphrase"

    wrong = await auth_api.http.post(
        f"{auth_api.url}/v1/auth/password",
        json={"current_password": "not it at all", "new_password": new_password},
        headers=user.headers,
    )
    changed = await auth_api.http.post(
        f"{auth_api.url}/v1/auth/password",
        json={"current_password": PASSWORD, "new_password": new_password},
        headers=user.headers,
    )

    assert wrong.status_code == 403
    assert wrong.json()["code"] == "wrong_password"
    assert changed.status_code == 200, changed.text
    assert (await auth_api.me(changed.json()["access_token"])).status_code == 200
    for session in (user, other):
        assert (await auth_api.me(session.access_token)).status_code == 401
        assert (await auth_api.refresh(session.refresh_token)).status_code == 400
    assert (await auth_api.login(user.email, PASSWORD)).status_code == 400
    assert (await auth_api.login(user.email, new_password)).status_code == 200
    assert "password_changed" in await _audit_events(auth_api, admin, user.user_id)


async def test_disabled_user_loses_every_session_and_cannot_log_in_until_enabled(
    auth_api: AuthApi, user: Session, admin: Session
) -> None:
    url = f"{auth_api.url}/v1/admin/users/{user.user_id}"

    disabled = await auth_api.http.post(f"{url}/disable", headers=admin.headers)

    assert disabled.status_code == 200
    assert disabled.json()["disabled"] is True
    assert (await auth_api.me(user.access_token)).status_code == 401
    assert (await auth_api.refresh(user.refresh_token)).status_code == 400
    refused = await auth_api.login(user.email, PASSWORD)
    assert refused.status_code == 400
    assert refused.json()["message"] == "this account is disabled"

    enabled = await auth_api.http.post(f"{url}/enable", headers=admin.headers)

    assert enabled.status_code == 200
    assert (await auth_api.login(user.email, PASSWORD)).status_code == 200
    events = await _audit_events(auth_api, admin, user.user_id)
    assert {"user_disabled", "user_enabled", "login_succeeded", "registered"} <= set(events)


async def test_login_failure_is_audited_without_the_password(
    auth_api: AuthApi, user: Session, admin: Session
) -> None:
    await auth_api.login(user.email, "wrong password guess")

    response = await auth_api.http.get(
        f"{auth_api.url}/v1/admin/audit",
        params={"user_id": user.user_id, "event": "login_failed"},
        headers=admin.headers,
    )

    items = response.json()["items"]
    assert len(items) == 1
    assert items[0]["client_ip"].startswith("10.")
    assert "wrong password guess" not in response.text


async def test_token_endpoint_rejects_unknown_grant_and_missing_fields(auth_api: AuthApi) -> None:
    unknown = await auth_api.token({"grant_type": "implicit"})
    missing = await auth_api.token({"grant_type": "password", "username": new_email()})
    no_grant = await auth_api.token({})

    assert unknown.status_code == 400
    assert unknown.json()["code"] == "unsupported_grant_type"
    assert missing.status_code == 400
    assert missing.json()["code"] == "invalid_request"
    assert no_grant.status_code == 422


async def test_jwks_publishes_the_public_key_that_signed_the_token(
    http: httpx.AsyncClient, gateway_url: str, user: Session
) -> None:
    jwks = (await http.get(f"{gateway_url}/v1/auth/jwks")).json()

    token_kid = jws.extract_compact(user.access_token.encode()).headers()["kid"]
    assert token_kid in {key["kid"] for key in jwks["keys"]}
    for key in jwks["keys"]:
        assert key["kty"] == "EC" and key["alg"] == "ES256"
        assert "d" not in key


async def test_each_client_ip_gets_its_own_address_in_the_audit_log(
    auth_api: AuthApi, admin: Session
) -> None:
    email, ip = new_email(), new_ip()
    response = await auth_api.register(email, PASSWORD, ip)

    audit = await auth_api.http.get(
        f"{auth_api.url}/v1/admin/audit",
        params={"user_id": response.json()["user_id"], "event": "registered"},
        headers=admin.headers,
    )

    assert audit.json()["items"][0]["client_ip"] == ip


async def test_login_rehashes_a_password_stored_with_older_parameters(
    auth_api: AuthApi, user: Session, gateway_settings: Settings
) -> None:
    assert gateway_settings.database_url
    weaker = PasswordHasher(time_cost=1, memory_cost=8_192, parallelism=1).hash(PASSWORD)
    conn = await asyncpg.connect(gateway_settings.database_url)
    try:
        await conn.execute(
            "UPDATE users SET password_hash = $1 WHERE email = $2", weaker, user.email
        )

        assert (await auth_api.login(user.email, PASSWORD)).status_code == 200

        stored = await conn.fetchval("SELECT password_hash FROM users WHERE email = $1", user.email)
    finally:
        await conn.close()
    assert stored != weaker
    assert stored.startswith(
        f"$argon2id$v=19$m={gateway_settings.password_hash_memory_kib},t=2,p=1$"
    )
    assert (await auth_api.login(user.email, PASSWORD)).status_code == 200


async def test_session_ends_at_its_absolute_lifetime_however_often_refreshed(
    auth_api: AuthApi, user: Session, gateway_settings: Settings
) -> None:
    rotated = (await auth_api.refresh(user.refresh_token)).json()
    assert gateway_settings.database_url
    conn = await asyncpg.connect(gateway_settings.database_url)
    try:
        await conn.execute(
            "UPDATE refresh_tokens SET family_expires_at = now() - interval '1 second' "
            "WHERE user_id = $1::uuid",
            user.user_id,
        )
    finally:
        await conn.close()

    expired = await auth_api.refresh(rotated["refresh_token"])

    assert expired.status_code == 400
    assert expired.json()["message"] == "the session has expired; log in again"


async def test_no_password_or_token_reaches_the_gateway_logs(
    auth_api: AuthApi, user: Session
) -> None:
    rotated = (await auth_api.refresh(user.refresh_token)).json()
    await auth_api.login(user.email, "a wrong password for the logs")
    logs = Path(ray._private.worker._global_node.get_session_dir_path()) / "logs"

    written = "".join(
        path.read_text(errors="replace") for path in logs.rglob("*") if path.is_file()
    )

    assert "/v1/auth/token" in written  # the requests were logged, without their secrets
    for secret in (
        PASSWORD,
        "a wrong password for the logs",
        user.refresh_token,
        rotated["refresh_token"],
        rotated["access_token"],
    ):
        assert secret not in written
