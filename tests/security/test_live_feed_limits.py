"""The live feed's limits hold against a client that tries to get around them: catch-up
(``resume_from``) counts against the queue bound and is paced by acknowledgements; refused and
oversized messages cost their sender; handshakes waiting to log in are capped per address;
instruments nobody streams are capped per connection. Through the gateway on Serve, with real
WebSocket clients and Redis."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import uuid
from typing import Any

import pytest
import websockets
from ray import serve
from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed

from actors.publisher import RedisPublisher
from core.settings import Settings
from serve.app import Gateway
from serve.live.client import MAX_MESSAGE_BYTES, MAX_REFUSALS, MAX_UNSTREAMED_INSTRUMENTS
from serve.live.handshake import CLOSE_TRY_AGAIN_LATER, MAX_WAITING_PER_ADDRESS
from serve.live.protocol import CLOSE_POLICY_VIOLATION
from tests.serve.auth_api import Session, new_ip
from tests.serve.live_api import (
    connect_feed,
    feed_events,
    feed_url,
    next_message,
    publish,
    subscribe,
    trades,
)


@pytest.fixture(scope="module")
def tight_url(serve_port: int, gateway_settings: Settings) -> str:
    """A gateway with a window of two frames and a queue bound of 1,000 events."""
    tight = gateway_settings.model_copy(
        update={"live_window_frames": 2, "live_conflate_at": 100, "live_max_queue": 1_000}
    )
    serve.run(Gateway.bind(tight), name="gateway-tight-limits", route_prefix="/tight-limits")
    return f"http://127.0.0.1:{serve_port}/tight-limits"


async def _close_code(ws: ClientConnection, within_s: float = 10) -> tuple[int, list[Any]]:
    """How the server closes ``ws``, and what it said before (failing if it does not)."""
    said: list[Any] = []
    deadline = time.monotonic() + within_s
    try:
        while True:
            said.append(json.loads(await asyncio.wait_for(ws.recv(), deadline - time.monotonic())))
    except TimeoutError:
        pytest.fail(f"still open after {within_s} s; it said {len(said)} messages")
    except ConnectionClosed as closed:
        assert closed.rcvd is not None
        return closed.rcvd.code, said


async def test_catch_up_beyond_the_queue_bound_is_paced_not_queued(
    tight_url: str, user: Session, publisher: RedisPublisher, instrument: str
) -> None:
    """3,000 missed events, three times the bound: the server reads them as the client
    acknowledges, so neither they nor a live event arriving meanwhile overflow its queue."""
    await publish(publisher, trades(instrument, 0, 3_000))
    stream = f"trades:{instrument}"
    async with await connect_feed(tight_url, user) as ws:
        await subscribe(
            ws, instruments=[instrument], channels=["trades"], resume_from={stream: "0-0"}
        )
        first = [await next_message(ws, "data") for _ in range(2)]  # the window is full
        await publish(publisher, trades(instrument, 3_000, 1))
        await asyncio.sleep(0.5)
        await ws.send(json.dumps({"type": "ack", "seq": first[-1]["seq"]}))
        sent = sum(len(frame["events"]) for frame in first)
        rest = await feed_events(ws, 3_001 - sent)

    events = [e for frame in first for e in frame["events"]] + rest
    assert [e["event"]["trade_id"] for e in events] == [str(n) for n in range(3_001)]


async def test_resubscribing_cannot_replay_a_stream_again(
    gateway_url: str, user: Session, publisher: RedisPublisher, instrument: str
) -> None:
    await publish(publisher, trades(instrument, 0, 5))
    stream = f"trades:{instrument}"
    resume = {"instruments": [instrument], "channels": ["trades"], "resume_from": {stream: "0-0"}}
    async with await connect_feed(gateway_url, user) as ws:
        await subscribe(ws, **resume)
        replayed = await feed_events(ws, 5)
        await ws.send(json.dumps({"type": "subscribe", **resume}))
        again = await next_message(ws, "error")

    assert len(replayed) == 5
    assert again["code"] == "invalid_message" and stream in again["message"]


async def test_oversized_messages_count_against_the_message_rate(
    gateway_url: str, user: Session
) -> None:
    oversized = "x" * (MAX_MESSAGE_BYTES + 1_000)
    async with await connect_feed(gateway_url, user) as ws:
        for _ in range(10):
            await ws.send(oversized)
        for _ in range(15):
            await ws.send(json.dumps({"type": "ping"}))
        replies = [json.loads(await asyncio.wait_for(ws.recv(), 10)) for _ in range(25)]

    codes = [r.get("code", r["type"]) for r in replies if r["type"] != "heartbeat"]
    assert codes[:10] == ["message_too_large"] * 10
    assert "rate_limited" in codes[10:], "oversized messages did not use up the rate"


async def test_message_size_counts_bytes_not_characters(gateway_url: str, user: Session) -> None:
    # Fewer characters than the limit, three bytes each in UTF-8.
    text = json.dumps(
        {"type": "ping", "padding": "€" * (MAX_MESSAGE_BYTES // 2)}, ensure_ascii=False
    )
    async with await connect_feed(gateway_url, user) as ws:
        await ws.send(text)
        error = await next_message(ws, "error")

    assert len(text) < MAX_MESSAGE_BYTES < len(text.encode())
    assert error["code"] == "message_too_large"


async def test_a_flood_of_refused_messages_is_cut_off_not_answered_forever(
    gateway_url: str, user: Session
) -> None:
    async with await connect_feed(gateway_url, user) as ws:
        with contextlib.suppress(ConnectionClosed):  # the server may close mid-flood
            for _ in range(300):
                await ws.send("not json")
        code, said = await _close_code(ws)

    errors = [m for m in said if m["type"] == "error"]
    assert code == CLOSE_POLICY_VIOLATION
    assert len(errors) <= MAX_REFUSALS + 5  # plus what refilled while the flood was read


async def test_a_huge_message_ends_the_connection_at_once(gateway_url: str, user: Session) -> None:
    async with await connect_feed(gateway_url, user) as ws:
        await ws.send("x" * (2 * 1024 * 1024))
        code, said = await _close_code(ws)

    assert code == CLOSE_POLICY_VIOLATION
    assert [m for m in said if m["type"] == "error"] == []


async def test_handshakes_waiting_to_log_in_are_capped_per_address(gateway_url: str) -> None:
    address = new_ip()
    headers = {"X-Forwarded-For": address}
    waiting = [
        await websockets.connect(feed_url(gateway_url), additional_headers=headers)
        for _ in range(MAX_WAITING_PER_ADDRESS)
    ]
    try:
        extra = await websockets.connect(feed_url(gateway_url), additional_headers=headers)
        started = time.monotonic()
        code, _ = await _close_code(extra, within_s=4)
        elapsed = time.monotonic() - started
    finally:
        for ws in waiting:
            await ws.close()

    assert code == CLOSE_TRY_AGAIN_LATER
    assert elapsed < 2, "the extra handshake was held like the others"


async def test_instruments_nobody_streams_are_capped_per_connection(
    gateway_url: str, user: Session, publisher: RedisPublisher
) -> None:
    unstreamed = [
        f"test:N{uuid.uuid4().hex[:10].upper()}" for _ in range(MAX_UNSTREAMED_INSTRUMENTS)
    ]
    streamed = [f"test:S{uuid.uuid4().hex[:10].upper()}" for _ in range(20)]
    for instrument in streamed:
        await publish(publisher, trades(instrument, 0, 1))
    async with await connect_feed(gateway_url, user) as ws:
        await subscribe(ws, instruments=unstreamed, channels=["trades", "predictions"])
        await ws.send(
            json.dumps({"type": "subscribe", "instruments": ["test:NOBODY"], "channels": ["bars"]})
        )
        refused = await next_message(ws, "error")
        known = await subscribe(ws, instruments=streamed, channels=["trades", "quotes"])

    assert refused["code"] == "too_many_unstreamed"
    assert len(known["streams"]) == 40
