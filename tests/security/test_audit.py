"""Refused requests in the audit log: 401s and 403s are recorded with their address, and an
attacker provoking them by the thousand cannot flood the log."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
import websockets
from websockets.exceptions import ConnectionClosed, InvalidStatus

from tests.serve.auth_api import AuthApi, Session, new_ip
from tests.serve.live_api import feed_url


async def _denials(auth_api: AuthApi, admin: Session, ip: str) -> list[dict[str, Any]]:
    response = await auth_api.http.get(
        f"{auth_api.url}/v1/admin/audit",
        params={"event": "access_denied", "limit": 500},
        headers=admin.headers,
    )
    assert response.status_code == 200, response.text
    return [item for item in response.json()["items"] if item["client_ip"] == ip]


async def test_401_and_403_are_audited_with_the_address_and_the_reason(
    auth_api: AuthApi, user: Session, admin: Session
) -> None:
    ip = new_ip()

    forged = await auth_api.http.get(
        f"{auth_api.url}/v1/auth/me",
        headers={"Authorization": "Bearer not.a.token", "X-Forwarded-For": ip},
    )
    forbidden = await auth_api.http.get(
        f"{auth_api.url}/v1/admin/users", headers={**user.headers, "X-Forwarded-For": ip}
    )

    assert (forged.status_code, forbidden.status_code) == (401, 403)
    recorded = {
        (item["details"]["status"], item["details"]["path"], item["user_id"])
        for item in await _denials(auth_api, admin, ip)
    }
    assert recorded == {(401, "/v1/auth/me", None), (403, "/v1/admin/users", user.user_id)}
    assert "not.a.token" not in str(await _denials(auth_api, admin, ip))


async def test_a_flood_of_refused_requests_leaves_a_bounded_trace(
    auth_api: AuthApi, admin: Session
) -> None:
    ip = new_ip()

    answers = await asyncio.gather(
        *(
            auth_api.http.get(f"{auth_api.url}/v1/auth/me", headers={"X-Forwarded-For": ip})
            for _ in range(100)
        )
    )

    assert {answer.status_code for answer in answers} == {401}
    assert 0 < len(await _denials(auth_api, admin, ip)) <= 20  # one address's allowance a minute


async def _refused_handshake(url: str, ip: str, token: str, **connect: Any) -> int:
    try:
        async with websockets.connect(
            url,
            subprotocols=["finone.v1", f"bearer.{token}"],  # type: ignore[list-item]
            additional_headers={"X-Forwarded-For": ip},
            **connect,
        ) as ws:
            with pytest.raises(ConnectionClosed) as closed:
                await ws.recv()
    except InvalidStatus as refused:
        return refused.response.status_code
    assert closed.value.rcvd is not None
    return closed.value.rcvd.code


async def test_refused_live_feed_handshakes_are_audited_like_requests(
    auth_api: AuthApi, user: Session, admin: Session
) -> None:
    ip, url = new_ip(), feed_url(auth_api.url)
    no_stream = await auth_api.client_token(user, ["market:read"])

    forged = await _refused_handshake(url, ip, "not.a.token")
    foreign = await _refused_handshake(
        url, ip, user.access_token, origin="https://evil.example.net"
    )
    lacking = await _refused_handshake(url, ip, no_stream)

    assert (forged, foreign, lacking) == (4401, 403, 4403)
    recorded = {
        (item["details"]["status"], item["details"]["method"], item["details"]["reason"])
        for item in await _denials(auth_api, admin, ip)
    }
    assert recorded == {
        (4401, "WEBSOCKET", "the token is malformed"),
        (4403, "WEBSOCKET", "origin not allowed"),
        (4403, "WEBSOCKET", "the token lacks the 'stream:read' scope"),
    }
    by_user = {item["user_id"] for item in await _denials(auth_api, admin, ip)}
    assert by_user == {None, user.user_id}
