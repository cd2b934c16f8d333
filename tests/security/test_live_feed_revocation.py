"""Open live-feed connections end within 5 s of their token being revoked, whatever revoked it
(close code 4001); connections of tokens still valid stay open. Through the gateway on Serve,
with real WebSocket clients and Redis."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import time

import pytest
import redis.asyncio as aioredis
from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed

from core.redis_keys import session_version_key
from core.settings import Settings
from serve.live.protocol import CLOSE_REVOKED
from tests.serve.auth_api import PASSWORD, AuthApi, Session
from tests.serve.live_api import connect_feed, next_message

_WITHIN_S = 5.0


async def _open(gateway_url: str, session: Session) -> ClientConnection:
    """A connection shown to work (it answers a ping)."""
    ws = await connect_feed(gateway_url, session)
    await ws.send(json.dumps({"type": "ping"}))
    await next_message(ws, "pong")
    return ws


async def _closed_code(ws: ClientConnection) -> int:
    """The close code the server ends ``ws`` with, failing if it is still open after 5 s."""
    deadline = time.monotonic() + _WITHIN_S
    try:
        while True:
            await asyncio.wait_for(ws.recv(), max(0.01, deadline - time.monotonic()))
    except TimeoutError:
        pytest.fail(f"the connection was still open {_WITHIN_S} s after the revocation")
    except ConnectionClosed as closed:
        assert closed.rcvd is not None, "closed without a close frame"
        return closed.rcvd.code


async def _still_open(ws: ClientConnection) -> None:
    await ws.send(json.dumps({"type": "ping"}))
    await next_message(ws, "pong")
    await ws.close()


async def test_logout_closes_that_sessions_connections_only(
    gateway_url: str, auth_api: AuthApi, user: Session
) -> None:
    other = await auth_api.logged_in(user.email)
    revoked, kept = await _open(gateway_url, user), await _open(gateway_url, other)

    response = await auth_api.http.post(f"{auth_api.url}/v1/auth/logout", headers=user.headers)

    assert response.status_code == 204
    assert await _closed_code(revoked) == CLOSE_REVOKED
    await _still_open(kept)


async def test_logout_everywhere_closes_every_connection(
    gateway_url: str, auth_api: AuthApi, user: Session
) -> None:
    other = await auth_api.logged_in(user.email)
    connections = [await _open(gateway_url, s) for s in (user, user, other)]

    response = await auth_api.http.post(f"{auth_api.url}/v1/auth/logout-all", headers=user.headers)

    assert response.status_code == 204
    for ws in connections:
        assert await _closed_code(ws) == CLOSE_REVOKED


async def test_password_change_closes_old_connections_but_not_the_new_tokens(
    gateway_url: str, auth_api: AuthApi, user: Session
) -> None:
    old = await _open(gateway_url, user)

    changed = await auth_api.http.post(
        f"{auth_api.url}/v1/auth/password",
        json={"current_password": PASSWORD, "new_password": "a brand new passphrase"},
        headers=user.headers,
    )
    assert changed.status_code == 200, changed.text
    renewed = dataclasses.replace(user, access_token=changed.json()["access_token"])
    new = await _open(gateway_url, renewed)

    assert await _closed_code(old) == CLOSE_REVOKED
    await asyncio.sleep(_WITHIN_S / 2)  # a recheck round later, the new token still stands
    await _still_open(new)


async def test_disabling_a_user_closes_their_connections(
    gateway_url: str, auth_api: AuthApi, user: Session, admin: Session
) -> None:
    ws = await _open(gateway_url, user)

    response = await auth_api.http.post(
        f"{auth_api.url}/v1/admin/users/{user.user_id}/disable", headers=admin.headers
    )

    assert response.status_code == 200, response.text
    assert await _closed_code(ws) == CLOSE_REVOKED


async def test_role_change_closes_the_users_connections(
    gateway_url: str, auth_api: AuthApi, operator: Session, admin: Session
) -> None:
    ws = await _open(gateway_url, operator)

    response = await auth_api.http.put(
        f"{auth_api.url}/v1/admin/users/{operator.user_id}/role",
        json={"role": "user"},
        headers=admin.headers,
    )

    assert response.status_code == 200, response.text
    assert await _closed_code(ws) == CLOSE_REVOKED


async def test_revoking_a_machine_client_closes_its_connections_not_the_owners(
    gateway_url: str, auth_api: AuthApi, user: Session
) -> None:
    created = await auth_api.http.post(
        f"{auth_api.url}/v1/auth/clients",
        json={"name": "feed bot", "scopes": ["stream:read"]},
        headers=user.headers,
    )
    assert created.status_code == 201, created.text
    client = created.json()
    token = await auth_api.token(
        {"grant_type": "client_credentials"}, auth=(client["client_id"], client["client_secret"])
    )
    bot = dataclasses.replace(user, access_token=token.json()["access_token"])
    bot_ws, owner_ws = await _open(gateway_url, bot), await _open(gateway_url, user)

    response = await auth_api.http.delete(
        f"{auth_api.url}/v1/auth/clients/{client['client_id']}", headers=user.headers
    )

    assert response.status_code == 204, response.text
    assert await _closed_code(bot_ws) == CLOSE_REVOKED
    await _still_open(owner_ws)


async def test_a_revocation_whose_message_was_missed_still_closes_within_5_s(
    gateway_url: str, user: Session, gateway_settings: Settings
) -> None:
    """The periodic recheck is the safety net: here the revocation is written to Redis without
    its message, as when a replica was reconnecting to Redis when it was said."""
    ws = await _open(gateway_url, user)
    assert gateway_settings.redis_url
    redis = aioredis.from_url(gateway_settings.redis_url)
    try:
        await redis.set(session_version_key(user.user_id), 1_000_000, ex=120)
        assert await _closed_code(ws) == CLOSE_REVOKED
    finally:
        await redis.aclose()
