"""Speaking to the live feed as a client does, for the serve tests: connect with a token,
subscribe, read and acknowledge data frames; and putting events into Redis the way feeds do."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import websockets
from websockets.asyncio.client import ClientConnection

from actors.publisher import RedisPublisher
from core.events import Trade
from tests.serve.auth_api import Session

__all__ = [
    "TS",
    "trades",
    "publish",
    "feed_url",
    "connect_feed",
    "next_message",
    "feed_events",
    "subscribe",
]

TS = 1_700_000_000 * 10**9


def trade(instrument: str, n: int, price: str) -> Trade:
    """Trade ``n`` of ``instrument`` at ``price``, stamped ``n`` ns after ``TS``."""
    return Trade(
        instrument=instrument,
        trade_id=str(n),
        price=price,
        size="1",
        side="buy",
        exchange_ts_ns=TS + n,
        receive_ts_ns=TS + n + 1,
    )


def trades(instrument: str, start: int, count: int) -> list[Trade]:
    return [trade(instrument, n, f"{100 + n}.5") for n in range(start, start + count)]


async def publish(publisher: RedisPublisher, events: list[Any]) -> None:
    publisher.publish(events)
    await publisher.drain(10)


def feed_url(gateway_url: str) -> str:
    return gateway_url.replace("http://", "ws://") + "/v1/stream"


async def connect_feed(gateway_url: str, session: Session) -> ClientConnection:
    return await websockets.connect(
        feed_url(gateway_url),
        subprotocols=["finone.v1", f"bearer.{session.access_token}"],  # type: ignore[list-item]
    )


async def next_message(ws: ClientConnection, kind: str, timeout_s: float = 10) -> dict[str, Any]:
    """The next message of ``kind``, skipping heartbeats."""
    while True:
        message = json.loads(await asyncio.wait_for(ws.recv(), timeout_s))
        if message["type"] == kind:
            return message
        assert message["type"] == "heartbeat", message


async def feed_events(ws: ClientConnection, count: int) -> list[dict[str, Any]]:
    """Read (and acknowledge, as a client must) data frames until ``count`` events came."""
    received: list[dict[str, Any]] = []
    while len(received) < count:
        frame = await next_message(ws, "data")
        await ws.send(json.dumps({"type": "ack", "seq": frame["seq"]}))
        received += frame["events"]
    return received


async def subscribe(ws: ClientConnection, **fields: Any) -> dict[str, Any]:
    await ws.send(json.dumps({"type": "subscribe", **fields}))
    return await next_message(ws, "subscribed")
