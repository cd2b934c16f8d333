"""The live feed checks the scope each channel needs, not only ``stream:read``: forecasts and
insights need ``predictions:read``; the owner's alerts and watchlists need ``account``, which
machine clients never hold. Through the gateway on Serve, with real WebSocket clients and
Redis."""

from __future__ import annotations

import asyncio
import dataclasses
import json
from typing import Any

import pytest
import redis.asyncio as aioredis
from websockets.asyncio.client import ClientConnection

from actors.publisher import RedisPublisher
from core.events import AlertTriggered, encode_event
from core.redis_keys import EVENT_FIELD, alert_stream_key
from core.settings import Settings
from tests.serve.auth_api import AuthApi, Session
from tests.serve.live_api import (
    TS,
    connect_feed,
    feed_events,
    next_message,
    publish,
    subscribe,
    trades,
)


async def _machine_client(auth_api: AuthApi, owner: Session, scopes: list[str]) -> Session:
    """A machine client of ``owner``'s, as a session carrying its access token."""
    created = await auth_api.http.post(
        f"{auth_api.url}/v1/auth/clients",
        json={"name": "feed bot", "scopes": scopes},
        headers=owner.headers,
    )
    assert created.status_code == 201, created.text
    client = created.json()
    token = await auth_api.token(
        {"grant_type": "client_credentials"}, auth=(client["client_id"], client["client_secret"])
    )
    assert token.status_code == 200, token.text
    return dataclasses.replace(owner, access_token=token.json()["access_token"])


async def _answer(ws: ClientConnection, **subscribe_fields: Any) -> dict[str, Any]:
    """The first reply to a subscription: ``subscribed`` or an ``error``."""
    await ws.send(json.dumps({"type": "subscribe", **subscribe_fields}))
    while True:
        message: dict[str, Any] = json.loads(await asyncio.wait_for(ws.recv(), 10))
        if message["type"] in ("subscribed", "error"):
            return message


async def _fire_alert(settings: Settings, user_id: str, instrument: str) -> None:
    """An alert of the owner's firing, written as the alert evaluator writes it."""
    alert = AlertTriggered(
        instrument=instrument,
        exchange_ts_ns=TS,
        receive_ts_ns=TS,
        user_id=user_id,
        alert_id="7d0c3ad4-5c8e-4f57-9b8a-1f6b1f9f2b11",
        condition="crosses_above",
        threshold="100",
        price="101",
    )
    assert settings.redis_url
    redis = aioredis.from_url(settings.redis_url)
    try:
        await redis.xadd(alert_stream_key(user_id), {EVENT_FIELD: encode_event(alert)})
    finally:
        await redis.aclose()


@pytest.mark.parametrize("channel", ["predictions", "insights"])
async def test_model_channels_need_the_predictions_scope(
    gateway_url: str, auth_api: AuthApi, user: Session, instrument: str, channel: str
) -> None:
    without = await _machine_client(auth_api, user, ["stream:read"])
    with_scope = await _machine_client(auth_api, user, ["stream:read", "predictions:read"])

    async with await connect_feed(gateway_url, without) as ws:
        refused = await _answer(ws, instruments=[instrument], channels=[channel])
    async with await connect_feed(gateway_url, with_scope) as ws:
        allowed = await _answer(ws, instruments=[instrument], channels=[channel])

    assert refused["type"] == "error" and refused["code"] == "insufficient_scope"
    assert allowed == {"type": "subscribed", "streams": [f"{channel}:{instrument}"]}


async def test_machine_client_cannot_resolve_its_owners_watchlist(
    gateway_url: str, auth_api: AuthApi, user: Session, instrument: str
) -> None:
    created = await auth_api.http.post(
        f"{auth_api.url}/v1/watchlists",
        json={"name": "private", "instruments": [instrument]},
        headers=user.headers,
    )
    assert created.status_code == 201, created.text
    bot = await _machine_client(auth_api, user, ["stream:read", "predictions:read"])

    async with await connect_feed(gateway_url, bot) as ws:
        answer = await _answer(ws, watchlist=created.json()["watchlist_id"], channels=["quotes"])

    assert answer["type"] == "error" and answer["code"] == "insufficient_scope"


async def test_machine_client_gets_none_of_its_owners_alerts(
    gateway_url: str,
    auth_api: AuthApi,
    user: Session,
    gateway_settings: Settings,
    publisher: RedisPublisher,
    instrument: str,
) -> None:
    await _fire_alert(gateway_settings, user.user_id, instrument)
    bot = await _machine_client(auth_api, user, ["stream:read", "predictions:read"])

    async with await connect_feed(gateway_url, bot) as bot_ws:
        replayed = await _answer(
            bot_ws, instruments=[instrument], channels=["trades"], resume_from={"alerts": "0-0"}
        )
        await subscribe(bot_ws, instruments=[instrument], channels=["trades"])
        async with await connect_feed(gateway_url, user) as owner_ws:
            await subscribe(owner_ws, instruments=[instrument], channels=["trades"])
            await _fire_alert(gateway_settings, user.user_id, instrument)
            owners = await feed_events(owner_ws, 1)
            await publish(publisher, trades(instrument, 0, 1))
            # The trade follows the alert: whatever the bot was sent before it is here too.
            bots = await feed_events(bot_ws, 1)
            await bot_ws.send(json.dumps({"type": "ping"}))
            await next_message(bot_ws, "pong")

    assert replayed["type"] == "error", "the owner's alert history was replayed to a client"
    assert [e["stream"] for e in owners] == ["alerts"]
    assert [e["stream"] for e in bots] == [f"trades:{instrument}"]
