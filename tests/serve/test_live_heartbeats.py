"""The live feed's heartbeats and token expiry, on the gateway's own app served by uvicorn with a
heartbeat every quarter second and access tokens that last four seconds (the deployed gateway's
15 s and 15 min would make these tests wait as long; two seconds were once too few for a login,
a handshake and three heartbeats on a loaded machine)."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator

import httpx
import pytest
from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed

from core.settings import Settings
from serve.app import create_api
from serve.live.handshake import CLOSE_UNAUTHENTICATED
from serve.resources import Resources
from tests.serve.auth_api import PASSWORD, AuthApi, Session
from tests.serve.live_api import connect_feed
from tests.serve.local_server import served

_HEARTBEAT_S = 0.25
_TOKEN_TTL_S = 4


@pytest.fixture(scope="module")
async def quick_gateway(gateway_settings: Settings) -> AsyncIterator[str]:
    # model_copy skips validation: Settings refuses tokens shorter than a minute.
    settings = gateway_settings.model_copy(
        update={"live_heartbeat_s": _HEARTBEAT_S, "access_token_ttl_s": _TOKEN_TTL_S}
    )
    resources = Resources(settings)
    async with served(create_api(resources)) as address:
        yield address
    await resources.close()


async def _connect_with_a_short_lived_token(address: str, user: Session) -> ClientConnection:
    async with httpx.AsyncClient(timeout=30) as http:
        session = await AuthApi(http, f"http://{address}").logged_in(user.email, PASSWORD)
    return await connect_feed(f"http://{address}", session)


async def test_idle_connection_hears_a_heartbeat_with_the_time_every_period(
    quick_gateway: str, user: Session
) -> None:
    async with await _connect_with_a_short_lived_token(quick_gateway, user) as ws:
        started = time.monotonic()
        beats = [json.loads(await asyncio.wait_for(ws.recv(), 5)) for _ in range(3)]
        elapsed = time.monotonic() - started

    assert [b["type"] for b in beats] == ["heartbeat"] * 3
    stamps = [b["ts_ns"] for b in beats]
    assert stamps == sorted(stamps)
    assert abs(stamps[-1] - time.time_ns()) < 5 * 10**9
    assert 2 * _HEARTBEAT_S * 0.8 <= elapsed < _TOKEN_TTL_S


async def test_connection_is_closed_with_4401_once_its_token_expires(
    quick_gateway: str, user: Session
) -> None:
    async with await _connect_with_a_short_lived_token(quick_gateway, user) as ws:
        with pytest.raises(ConnectionClosed) as closed:
            while True:
                await asyncio.wait_for(ws.recv(), _TOKEN_TTL_S + 5)

    assert closed.value.rcvd is not None
    assert closed.value.rcvd.code == CLOSE_UNAUTHENTICATED
    assert "expired" in closed.value.rcvd.reason
