"""The web app's refresh token lives in an HttpOnly cookie that only the token endpoint reads,
and only when the request says so with a header a cross-site form cannot send."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from tests.serve.auth_api import PASSWORD, AuthApi, new_ip

COOKIE_MODE = {"X-Token-Transport": "cookie"}


@pytest.fixture
async def browser(gateway_url: str) -> AsyncIterator[httpx.AsyncClient]:
    """A client with a cookie jar of its own and one address, as one browser is."""
    headers = {"X-Forwarded-For": new_ip()}
    async with httpx.AsyncClient(base_url=gateway_url, timeout=30, headers=headers) as client:
        yield client


async def _sign_in(browser: httpx.AsyncClient, auth_api: AuthApi) -> tuple[str, httpx.Response]:
    session = await auth_api.signed_up()
    response = await browser.post(
        "/v1/auth/token",
        data={"grant_type": "password", "username": session.email, "password": PASSWORD},
        headers=COOKIE_MODE,
    )
    assert response.status_code == 200, response.text
    return session.email, response


async def test_sign_in_with_cookie_transport_keeps_refresh_token_out_of_script_reach(
    browser: httpx.AsyncClient, auth_api: AuthApi
) -> None:
    _, response = await _sign_in(browser, auth_api)
    assert response.json()["refresh_token"] is None and response.json()["access_token"]
    set_cookie = response.headers["set-cookie"].lower()
    assert set_cookie.startswith("finone_refresh=")
    assert "httponly" in set_cookie and "samesite=strict" in set_cookie
    assert "path=/v1/auth" in set_cookie


async def test_refresh_with_cookie_transport_rotates_the_cookie_and_refuses_the_old_one(
    browser: httpx.AsyncClient, auth_api: AuthApi
) -> None:
    _, _ = await _sign_in(browser, auth_api)
    first = browser.cookies["finone_refresh"]
    refreshed = await browser.post(
        "/v1/auth/token", data={"grant_type": "refresh_token"}, headers=COOKIE_MODE
    )
    assert refreshed.status_code == 200, refreshed.text
    assert refreshed.json()["refresh_token"] is None
    second = browser.cookies["finone_refresh"]
    assert second != first
    me = await browser.get(
        "/v1/auth/me", headers={"Authorization": f"Bearer {refreshed.json()['access_token']}"}
    )
    assert me.status_code == 200
    # The old token replayed (as a thief who copied it would): refused.
    browser.cookies.set("finone_refresh", first, path="/v1/auth")
    replayed = await browser.post(
        "/v1/auth/token", data={"grant_type": "refresh_token"}, headers=COOKIE_MODE
    )
    assert replayed.status_code in {400, 401} and replayed.json()["code"] == "invalid_grant"


async def test_refresh_forged_cross_site_without_the_header_gets_nothing_from_the_cookie(
    browser: httpx.AsyncClient, auth_api: AuthApi
) -> None:
    await _sign_in(browser, auth_api)
    # What a form on another site can post: the browser would attach the cookie, not the header.
    forged = await browser.post(
        "/v1/auth/token",
        data={"grant_type": "refresh_token"},
        headers={
            "Origin": "https://evil.example",
            "Content-Type": "application/x-www-form-urlencoded",
        },
    )
    assert forged.status_code == 400 and forged.json()["code"] == "invalid_request"
    assert "access_token" not in forged.json()


async def test_logout_with_cookie_transport_clears_the_cookie(
    browser: httpx.AsyncClient, auth_api: AuthApi
) -> None:
    _, response = await _sign_in(browser, auth_api)
    bearer = {"Authorization": f"Bearer {response.json()['access_token']}"}
    out = await browser.post("/v1/auth/logout", headers={**bearer, **COOKIE_MODE})
    assert out.status_code == 204
    assert "finone_refresh" not in browser.cookies
    again = await browser.post(
        "/v1/auth/token", data={"grant_type": "refresh_token"}, headers=COOKIE_MODE
    )
    assert again.status_code == 400 and again.json()["code"] == "invalid_request"


async def test_token_endpoint_without_cookie_transport_answers_as_before(
    browser: httpx.AsyncClient, auth_api: AuthApi
) -> None:
    session = await auth_api.signed_up()
    response = await browser.post(
        "/v1/auth/token",
        data={"grant_type": "password", "username": session.email, "password": PASSWORD},
    )
    assert response.status_code == 200 and response.json()["refresh_token"]
    assert "set-cookie" not in response.headers
