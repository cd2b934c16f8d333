"""Login limits under attack: parallel guesses cannot outrun the per-account allowance, and one
IPv6 subscriber (a /64) cannot multiply the per-address allowance by changing addresses."""

from __future__ import annotations

import asyncio
import secrets
from collections import Counter

import httpx

from core.settings import Settings
from tests.serve.auth_api import PASSWORD, AuthApi, Session, new_ip


async def test_parallel_wrong_passwords_check_no_more_guesses_than_the_allowance(
    auth_api: AuthApi, user: Session, gateway_settings: Settings
) -> None:
    allowance = gateway_settings.login_failures_per_account

    answers = await asyncio.gather(
        *(auth_api.login(user.email, f"guess number {n}", new_ip()) for n in range(3 * allowance))
    )

    statuses = Counter(answer.status_code for answer in answers)
    assert statuses[400] == allowance, statuses
    assert statuses[429] == 2 * allowance, statuses
    assert (await auth_api.login(user.email, PASSWORD, new_ip())).status_code == 429


async def test_parallel_wrong_current_passwords_at_password_change_are_limited_alike(
    auth_api: AuthApi, user: Session, gateway_settings: Settings
) -> None:
    allowance = gateway_settings.login_failures_per_account

    answers = await asyncio.gather(
        *(
            auth_api.http.post(
                f"{auth_api.url}/v1/auth/password",
                json={"current_password": f"guess number {n}", "new_password": "a new passphrase"},
                headers=user.headers,
            )
            for n in range(3 * allowance)
        )
    )

    codes = Counter(answer.json()["code"] for answer in answers)
    assert codes == {"wrong_password": allowance, "rate_limited": 2 * allowance}, codes


def _address_in(prefix: str) -> str:
    return f"{prefix}:{secrets.token_hex(2)}:{secrets.token_hex(2)}:{secrets.token_hex(2)}:1"


async def _bogus_refresh(auth_api: AuthApi, ip: str) -> httpx.Response:
    return await auth_api.token({"grant_type": "refresh_token", "refresh_token": "x"}, ip)


async def test_ipv6_addresses_of_one_64_share_the_per_address_allowance(
    auth_api: AuthApi, gateway_settings: Settings
) -> None:
    subscriber = f"2001:db8:{secrets.token_hex(2)}:{secrets.token_hex(2)}"
    for _ in range(gateway_settings.auth_requests_per_ip):
        assert (await _bogus_refresh(auth_api, _address_in(subscriber))).status_code == 400

    throttled = await _bogus_refresh(auth_api, _address_in(subscriber))
    neighbour = await _bogus_refresh(auth_api, _address_in(f"2001:db8:{secrets.token_hex(2)}:1"))

    assert throttled.status_code == 429
    assert throttled.json()["code"] == "rate_limited"
    assert neighbour.status_code == 400
