"""Accounts and sessions under attack: a disabled account as a password oracle, a stolen refresh
token kept unused, client credentials sent in clear."""

from __future__ import annotations

import statistics
import time

import asyncpg
import httpx

from core.settings import Settings
from tests.serve.auth_api import PASSWORD, AuthApi, Session, new_ip


async def _timed_login(
    auth_api: AuthApi, email: str, password: str
) -> tuple[httpx.Response, float]:
    started = time.perf_counter()
    response = await auth_api.login(email, password, new_ip())
    return response, time.perf_counter() - started


async def test_disabled_account_answers_a_right_and_a_wrong_password_alike(
    auth_api: AuthApi, user: Session, admin: Session
) -> None:
    disabled = await auth_api.http.post(
        f"{auth_api.url}/v1/admin/users/{user.user_id}/disable", headers=admin.headers
    )
    assert disabled.status_code == 200, disabled.text

    right = [await _timed_login(auth_api, user.email, PASSWORD) for _ in range(3)]
    wrong = [await _timed_login(auth_api, user.email, "not the password") for _ in range(3)]

    answers = {(r.status_code, r.text) for r, _ in right + wrong}
    assert answers == {(400, right[0][0].text)}
    assert right[0][0].json()["code"] == "invalid_grant"
    # Both verify the password: neither answer comes back before the hash has been checked.
    right_s = statistics.median(s for _, s in right)
    wrong_s = statistics.median(s for _, s in wrong)
    assert abs(right_s - wrong_s) < 0.5 * max(right_s, wrong_s) + 0.05


async def test_refresh_token_left_idle_past_the_idle_time_no_longer_works(
    auth_api: AuthApi, user: Session, gateway_settings: Settings
) -> None:
    assert gateway_settings.database_url
    conn = await asyncpg.connect(gateway_settings.database_url)
    try:
        await conn.execute(
            "UPDATE refresh_tokens SET issued_at = now() - make_interval(secs => $2) "
            "WHERE user_id = $1::uuid",
            user.user_id,
            float(gateway_settings.refresh_idle_s + 1),
        )
    finally:
        await conn.close()

    idle = await auth_api.refresh(user.refresh_token)

    assert idle.status_code == 400
    assert idle.json() == {
        "code": "invalid_grant",
        "message": "the session was idle too long; log in again",
        "details": None,
    }


async def test_client_credentials_over_plain_http_to_a_public_host_are_a_clear_400(
    auth_api: AuthApi, user: Session
) -> None:
    created = await auth_api.http.post(
        f"{auth_api.url}/v1/auth/clients",
        json={"name": "price bot", "scopes": ["market:read"]},
        headers=user.headers,
    )
    client = created.json()

    async def token(headers: dict[str, str]) -> httpx.Response:
        return await auth_api.http.post(
            f"{auth_api.url}/v1/auth/token",
            data={"grant_type": "client_credentials"},
            auth=(client["client_id"], client["client_secret"]),
            headers={"Host": "api.example.com", "X-Forwarded-For": new_ip(), **headers},
        )

    in_clear = await token({})
    behind_tls = await token({"X-Forwarded-Proto": "https"})

    assert in_clear.status_code == 400, in_clear.text
    assert in_clear.json()["code"] == "insecure_transport"
    assert in_clear.headers["cache-control"] == "no-store"
    assert behind_tls.status_code == 200, behind_tls.text
