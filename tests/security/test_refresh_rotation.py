"""Sessions issued while a revocation runs: a refresh token issued during logout-all, a password
change or a disable must not outlive it.

The race is made certain rather than hoped for: the test holds a row lock on the refresh token,
so the refresh stalls on it and the revocation starts while the refresh is still in flight; the
lock is then released and both finish in whatever order the gateway lets them.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Awaitable, Callable

import asyncpg
import httpx
import pytest

from core.settings import Settings
from tests.polling import wait_until
from tests.serve.auth_api import PASSWORD, AuthApi, Session

Revocation = Callable[[AuthApi, Session, Session], Awaitable[httpx.Response]]


async def _log_out_everywhere(auth_api: AuthApi, user: Session, admin: Session) -> httpx.Response:
    return await auth_api.http.post(f"{auth_api.url}/v1/auth/logout-all", headers=user.headers)


async def _change_password(auth_api: AuthApi, user: Session, admin: Session) -> httpx.Response:
    return await auth_api.http.post(
        f"{auth_api.url}/v1/auth/password",
        json={"current_password": PASSWORD, "new_password": "a brand new long passphrase"},
        headers=user.headers,
    )


async def _disable(auth_api: AuthApi, user: Session, admin: Session) -> httpx.Response:
    return await auth_api.http.post(
        f"{auth_api.url}/v1/admin/users/{user.user_id}/disable", headers=admin.headers
    )


async def _waiters_at_least(watcher: asyncpg.Connection, count: int) -> bool:
    waiting: int = await watcher.fetchval(
        "SELECT count(*) FROM pg_stat_activity "
        "WHERE datname = current_database() AND wait_event_type = 'Lock'"
    )
    return waiting >= count


async def _race(
    database_url: str,
    refresh_token: str,
    refresh: Awaitable[httpx.Response],
    revocation: Awaitable[httpx.Response],
) -> tuple[httpx.Response, httpx.Response]:
    """Start ``refresh`` while the test holds the token's row, start ``revocation`` once the
    refresh is stalled on it, release the row once both are stalled, and let both finish."""
    holder, watcher = await asyncpg.connect(database_url), await asyncpg.connect(database_url)
    try:
        async with holder.transaction():
            await holder.execute(
                "SELECT 1 FROM refresh_tokens WHERE token_hash = $1 FOR UPDATE",
                hashlib.sha256(refresh_token.encode()).digest(),
            )
            refreshing = asyncio.ensure_future(refresh)
            await wait_until(lambda: _waiters_at_least(watcher, 1), 10, "the refresh to stall")
            revoking = asyncio.ensure_future(revocation)
            await wait_until(lambda: _waiters_at_least(watcher, 2), 10, "the revocation to stall")
        return await refreshing, await revoking
    finally:
        await holder.close()
        await watcher.close()


@pytest.mark.parametrize(
    "revoke",
    [_log_out_everywhere, _change_password, _disable],
    ids=["logout-all", "password-change", "disable"],
)
async def test_refresh_racing_a_revocation_issues_nothing_that_works_afterwards(
    auth_api: AuthApi,
    user: Session,
    admin: Session,
    gateway_settings: Settings,
    revoke: Revocation,
) -> None:
    assert gateway_settings.database_url

    refreshed, revoked = await _race(
        gateway_settings.database_url,
        user.refresh_token,
        auth_api.refresh(user.refresh_token),
        revoke(auth_api, user, admin),
    )

    assert revoked.status_code in {200, 204}, revoked.text
    if refreshed.status_code == 200:
        successor = refreshed.json()
        assert (await auth_api.refresh(successor["refresh_token"])).status_code == 400
        assert (await auth_api.me(successor["access_token"])).status_code == 401
    else:
        assert refreshed.status_code == 400, refreshed.text


async def test_login_with_the_old_password_racing_a_password_change_gets_nothing_lasting(
    auth_api: AuthApi, user: Session, gateway_settings: Settings
) -> None:
    assert gateway_settings.database_url
    holder = await asyncpg.connect(gateway_settings.database_url)
    watcher = await asyncpg.connect(gateway_settings.database_url)
    try:
        async with holder.transaction():
            # Both write the audit log after their password check: held there, the login has
            # checked the old password when the change commits, and then starts its session.
            await holder.execute("LOCK TABLE audit_events IN SHARE MODE")
            logging_in = asyncio.ensure_future(auth_api.login(user.email, PASSWORD))
            await wait_until(lambda: _waiters_at_least(watcher, 1), 10, "the login to stall")
            changing = asyncio.ensure_future(_change_password(auth_api, user, user))
            await wait_until(lambda: _waiters_at_least(watcher, 2), 10, "the change to stall")
        login, change = await logging_in, await changing
    finally:
        await holder.close()
        await watcher.close()

    assert change.status_code == 200, change.text
    if login.status_code == 200:
        session = login.json()
        assert (await auth_api.refresh(session["refresh_token"])).status_code == 400
        assert (await auth_api.me(session["access_token"])).status_code == 401
    else:
        assert login.status_code == 400, login.text
