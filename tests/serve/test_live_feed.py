"""The WebSocket live feed through Serve: subscribe, batched data with event ids, resume without
gaps or duplicates, watchlists, bad messages, limits. Events enter Redis through the real
publisher, as feed actors write them."""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

import pytest
import websockets
from ray import serve
from websockets.asyncio.client import ClientConnection

from actors.publisher import RedisPublisher
from core.events import BookDelta, BookSnapshot, Gap, Quote, Trade
from core.settings import Settings
from serve.app import Gateway
from tests.polling import wait_until
from tests.serve.auth_api import AuthApi, Session
from tests.serve.champions import Champions, copy_of_ibm
from tests.serve.live_api import (
    TS,
    connect_feed,
    feed_events,
    next_message,
    publish,
    subscribe,
    trades,
)


async def test_subscriber_gets_events_with_ids_several_per_frame(
    gateway_url: str, user: Session, publisher: RedisPublisher, instrument: str
) -> None:
    async with await connect_feed(gateway_url, user) as ws:
        ack = await subscribe(ws, instruments=[instrument], channels=["trades", "quotes"])
        assert ack["streams"] == [f"trades:{instrument}", f"quotes:{instrument}"]

        await publish(publisher, trades(instrument, 0, 50))
        frame = await next_message(ws, "data")
        await ws.send(json.dumps({"type": "ack", "seq": frame["seq"]}))
        rest = await feed_events(ws, 50 - len(frame["events"]))

    events = frame["events"] + rest
    assert len(frame["events"]) > 1
    assert [e["event"]["trade_id"] for e in events] == [str(n) for n in range(50)]
    assert all(e["stream"] == f"trades:{instrument}" for e in events)
    ids = [tuple(map(int, e["id"].split("-"))) for e in events]
    assert ids == sorted(ids) and len(set(ids)) == 50
    assert events[0]["event"] == {
        "kind": "trade",
        "exchange_ts_ns": TS,
        "receive_ts_ns": TS + 1,
        "instrument": instrument,
        "trade_id": "0",
        "price": "100.5",
        "size": "1",
        "side": "buy",
    }


async def test_resume_from_delivers_every_missed_event_once_then_live(
    gateway_url: str, user: Session, publisher: RedisPublisher, instrument: str
) -> None:
    stream = f"trades:{instrument}"
    async with await connect_feed(gateway_url, user) as ws:
        await subscribe(ws, instruments=[instrument], channels=["trades"])
        await publish(publisher, trades(instrument, 0, 10))
        seen = await feed_events(ws, 10)
    last_id = seen[-1]["id"]
    await publish(publisher, trades(instrument, 10, 25))  # missed while disconnected

    async with await connect_feed(gateway_url, user) as ws:
        await subscribe(
            ws, instruments=[instrument], channels=["trades"], resume_from={stream: last_id}
        )
        await publish(publisher, trades(instrument, 35, 5))  # live again
        resumed = await feed_events(ws, 30)

    assert [e["event"]["trade_id"] for e in resumed] == [str(n) for n in range(10, 40)]


async def test_resume_from_a_trimmed_point_says_gap(
    gateway_url: str, user: Session, publisher: RedisPublisher, instrument: str
) -> None:
    await publish(publisher, trades(instrument, 0, 3))

    async with await connect_feed(gateway_url, user) as ws:
        await ws.send(
            json.dumps(
                {
                    "type": "subscribe",
                    "instruments": [instrument],
                    "channels": ["trades"],
                    "resume_from": {f"trades:{instrument}": "1-0"},
                }
            )
        )
        gap = await next_message(ws, "gap")
        await next_message(ws, "subscribed")
        replayed = await feed_events(ws, 3)

    assert gap["stream"] == f"trades:{instrument}"
    assert [e["event"]["trade_id"] for e in replayed] == ["0", "1", "2"]


async def test_watchlist_subscribes_all_its_instruments_in_one_message(
    gateway_url: str, auth_api: AuthApi, user: Session, publisher: RedisPublisher
) -> None:
    instruments = [f"test:W{uuid.uuid4().hex[:8].upper()}" for _ in range(3)]
    created = await auth_api.http.post(
        f"{auth_api.url}/v1/watchlists",
        json={"name": "live", "instruments": instruments},
        headers=user.headers,
    )

    async with await connect_feed(gateway_url, user) as ws:
        ack = await subscribe(ws, watchlist=created.json()["watchlist_id"], channels=["quotes"])
        quotes = [
            Quote(
                instrument=i,
                bid_price="1",
                bid_size="2",
                ask_price="3",
                ask_size="4",
                exchange_ts_ns=TS,
                receive_ts_ns=TS,
            )
            for i in instruments
        ]
        await publish(publisher, quotes)
        events = await feed_events(ws, 3)

    assert ack["streams"] == [f"quotes:{i}" for i in instruments]
    assert sorted(e["event"]["instrument"] for e in events) == sorted(instruments)


async def test_unsubscribed_stream_stops_flowing(
    gateway_url: str, user: Session, publisher: RedisPublisher, instrument: str
) -> None:
    other = f"test:U{uuid.uuid4().hex[:8].upper()}"
    async with await connect_feed(gateway_url, user) as ws:
        await subscribe(ws, instruments=[instrument, other], channels=["trades"])
        await ws.send(json.dumps({"type": "unsubscribe", "instruments": [instrument]}))
        assert (await next_message(ws, "unsubscribed"))["streams"] == [f"trades:{instrument}"]

        await publish(publisher, trades(instrument, 0, 5) + trades(other, 0, 1))
        events = await feed_events(ws, 1)

    assert [e["stream"] for e in events] == [f"trades:{other}"]


async def test_bad_messages_get_errors_and_the_connection_survives(
    gateway_url: str, user: Session
) -> None:
    async with await connect_feed(gateway_url, user) as ws:
        cases = {
            "not json": "invalid_message",
            json.dumps({"type": "launch"}): "invalid_message",
            json.dumps(
                {"type": "subscribe", "instruments": ["no spaces allowed"]}
            ): "invalid_message",
            json.dumps({"type": "subscribe", "channels": ["trades"]}): "invalid_message",
            json.dumps({"type": "subscribe", "watchlist": "nope"}): "watchlist_not_found",
            json.dumps(
                {
                    "type": "subscribe",
                    "instruments": ["test:A"],
                    "resume_from": {"trades:test:B": "1-0"},
                }
            ): "invalid_message",
            "x" * 20_000: "message_too_large",
        }
        for text, code in cases.items():
            await ws.send(text)
            error = await next_message(ws, "error")
            assert error["code"] == code, text[:40]
        await ws.send(json.dumps({"type": "ping"}))
        assert (await next_message(ws, "pong"))["type"] == "pong"


async def test_subscription_and_message_floods_are_refused_politely(
    gateway_url: str, user: Session, gateway_settings: Settings
) -> None:
    many = [f"test:F{n}" for n in range(gateway_settings.live_max_subscriptions // 4 + 1)]
    async with await connect_feed(gateway_url, user) as ws:
        await ws.send(
            json.dumps(
                {
                    "type": "subscribe",
                    "instruments": many,
                    "channels": ["trades", "quotes", "book", "bars"],
                }
            )
        )
        assert (await next_message(ws, "error"))["code"] == "too_many_subscriptions"
        for _ in range(40):
            await ws.send(json.dumps({"type": "ping"}))
        replies = [json.loads(await asyncio.wait_for(ws.recv(), 10)) for _ in range(40)]
        await asyncio.sleep(1.1)
        await ws.send(json.dumps({"type": "ping"}))
        after_pause = await next_message(ws, "pong")

    kinds = [r.get("code", r["type"]) for r in replies if r["type"] != "heartbeat"]
    assert "rate_limited" in kinds and "pong" in kinds
    assert after_pause["type"] == "pong"


async def _refused(ws: ClientConnection) -> int:
    with pytest.raises(websockets.ConnectionClosed) as closed:
        await asyncio.wait_for(ws.recv(), 10)
    assert closed.value.rcvd is not None
    return closed.value.rcvd.code


async def test_connections_per_user_are_counted_over_every_replica(
    gateway_url: str, tight_gateway_url: str, auth_api: AuthApi, gateway_settings: Settings
) -> None:
    # Two applications' replicas share nothing but Redis, like the replicas of one deployment
    # that HAProxy spreads a user's connections over.
    session = await auth_api.signed_up()
    limit = gateway_settings.live_max_connections_per_user
    urls = [gateway_url, tight_gateway_url]
    held = [await connect_feed(urls[i % 2], session) for i in range(limit)]
    try:
        for ws in held:
            await ws.send(json.dumps({"type": "ping"}))
            await next_message(ws, "pong")
        for url in urls:
            assert await _refused(await connect_feed(url, session)) == 4029

        await held.pop().close()

        async def one_more_fits() -> bool:
            ws = await connect_feed(tight_gateway_url, session)
            try:
                await ws.send(json.dumps({"type": "ping"}))
                await next_message(ws, "pong")
            except websockets.ConnectionClosed:
                return False
            held.append(ws)
            return True

        await wait_until(one_more_fits, 10, "the closed connection's place")
        assert await _refused(await connect_feed(gateway_url, session)) == 4029
    finally:
        for ws in held:
            await ws.close()


@pytest.fixture(scope="module")
def tight_gateway_url(serve_port: int, gateway_settings: Settings) -> str:
    """A gateway with a tiny flow-control window and queue, to show a slow client's fate."""
    tight = gateway_settings.model_copy(
        update={"live_window_frames": 2, "live_conflate_at": 100, "live_max_queue": 1_000}
    )
    serve.run(Gateway.bind(tight), name="gateway-tight", route_prefix="/tight")
    return f"http://127.0.0.1:{serve_port}/tight"


class FastReader:
    """A client that reads and acknowledges everything, in the background."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.events: list[dict[str, Any]] = []
        self.task = asyncio.create_task(self._read())

    async def _read(self) -> None:
        async for text in self.ws:
            message = json.loads(text)
            if message["type"] == "data":
                await self.ws.send(json.dumps({"type": "ack", "seq": message["seq"]}))
                self.events += message["events"]

    async def wait_for(self, count: int) -> None:
        async def enough() -> bool:
            return len(self.events) >= count

        await wait_until(enough, 20, f"{count} events at the fast client")


def _quotes(instrument: str, count: int) -> list[Quote]:
    return [
        Quote(
            instrument=instrument,
            bid_price=f"{n}.1",
            bid_size="1",
            ask_price=f"{n}.2",
            ask_size="1",
            exchange_ts_ns=TS + n,
            receive_ts_ns=TS + n,
        )
        for n in range(count)
    ]


async def test_slow_client_is_conflated_then_cut_while_a_fast_one_gets_everything(
    tight_gateway_url: str, user: Session, publisher: RedisPublisher, instrument: str
) -> None:
    slow = await connect_feed(tight_gateway_url, user)
    fast_ws = await connect_feed(tight_gateway_url, user)
    for ws in (slow, fast_ws):
        await subscribe(ws, instruments=[instrument], channels=["trades", "quotes"])
    fast = FastReader(fast_ws)
    # Three frames for the slow client, which acknowledges none: the window (2) closes.
    for n in range(3):
        await publish(publisher, trades(instrument, n, 1))
        await fast.wait_for(n + 1)
    first = [await next_message(slow, "data") for _ in range(2)]

    await publish(publisher, _quotes(instrument, 500))
    await fast.wait_for(503)
    await slow.send(json.dumps({"type": "ack", "seq": first[-1]["seq"]}))
    caught_up = await next_message(slow, "data")

    # Behind by 500 quotes, the slow client got the third trade and only the latest quote.
    assert [e["event"]["kind"] for e in caught_up["events"]] == ["trade", "quote"]
    assert caught_up["events"][1]["event"]["bid_price"] == "499.1"

    # Trades cannot be conflated: 2,000 more overflow the slow client's queue of 1,000.
    await publish(publisher, trades(instrument, 3, 2_000))
    await fast.wait_for(2_503)
    with pytest.raises(websockets.ConnectionClosed) as closed:
        for _ in range(10):  # a few frames and heartbeats may still be on their way
            await asyncio.wait_for(slow.recv(), 10)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 4008
    trade_ids = [e["event"]["trade_id"] for e in fast.events if e["event"]["kind"] == "trade"]
    assert trade_ids == [str(n) for n in range(2_003)]
    await fast_ws.close()
    await fast.task


async def test_many_clients_subscribing_at_once_all_get_every_event(
    gateway_url: str, auth_api: AuthApi, publisher: RedisPublisher, instrument: str
) -> None:
    sessions = [await auth_api.signed_up() for _ in range(4)]
    clients = await asyncio.gather(*(connect_feed(gateway_url, s) for s in sessions * 5))
    try:
        await asyncio.gather(
            *(subscribe(ws, instruments=[instrument], channels=["trades"]) for ws in clients)
        )
        await publish(publisher, trades(instrument, 0, 30))
        received = await asyncio.gather(*(feed_events(ws, 30) for ws in clients))
    finally:
        await asyncio.gather(*(ws.close() for ws in clients))

    for events in received:
        assert [e["event"]["trade_id"] for e in events] == [str(n) for n in range(30)]


async def test_subscribers_to_predictions_get_fresh_forecasts_on_a_schedule(
    gateway_url: str, user: Session, champions: Champions
) -> None:
    async with await connect_feed(gateway_url, user) as ws:
        ack = await subscribe(ws, instruments=["alpaca:IBM"], channels=["predictions"])
        assert ack["streams"] == ["predictions:alpaca:IBM"]
        first, second = await feed_events(ws, 2)

    for item in (first, second):
        assert item["stream"] == "predictions:alpaca:IBM"
        forecast = item["event"]
        assert forecast["kind"] == "forecast" and forecast["instrument"] == "alpaca:IBM"
        assert forecast["returns"]["version"] == champions.returns_version
        assert forecast["returns"]["q10"] <= forecast["returns"]["q90"]
        assert forecast["volatility"]["volatility"] > 0
    # Made afresh each round, with increasing stream ids.
    assert second["event"]["receive_ts_ns"] > first["event"]["receive_ts_ns"]
    assert tuple(map(int, second["id"].split("-"))) > tuple(map(int, first["id"].split("-")))


async def test_subscribers_to_minute_predictions_get_minute_forecasts_only(
    gateway_url: str,
    gateway_settings: Settings,
    user: Session,
    champions: Champions,
    minute_champions: Champions,
) -> None:
    assert gateway_settings.database_url
    instrument = await copy_of_ibm(gateway_settings.database_url, 60, ("1d", "1m"))
    daily, minutes = f"predictions:{instrument}", f"predictions:1m:{instrument}"
    async with (
        await connect_feed(gateway_url, user) as minute_only,
        await connect_feed(gateway_url, user) as both,
    ):
        ack = await subscribe(
            minute_only, instruments=[instrument], channels=["predictions"], intervals=["1m"]
        )
        assert ack["streams"] == [minutes]
        ack = await subscribe(
            both, instruments=[instrument], channels=["predictions"], intervals=["1d", "1m"]
        )
        assert ack["streams"] == [daily, minutes]
        minute_events = await feed_events(minute_only, 3)
        # Each interval's latest has a stream of its own: neither stands for the other.
        mixed = await feed_events(both, 4)

    for item in minute_events:
        assert item["stream"] == minutes
        returns = item["event"]["returns"]
        assert (returns["interval"], returns["version"]) == ("1m", minute_champions.returns_version)
    by_stream = {item["stream"]: item["event"]["returns"] for item in mixed}
    assert by_stream[daily]["interval"] == "1d"
    assert by_stream[daily]["version"] == champions.returns_version
    assert by_stream[minutes]["interval"] == "1m"


async def test_an_interval_not_forecast_here_is_refused_on_the_live_feed(
    gateway_url: str, user: Session
) -> None:
    async with await connect_feed(gateway_url, user) as ws:
        await ws.send(
            json.dumps(
                {
                    "type": "subscribe",
                    "instruments": ["alpaca:IBM"],
                    "channels": ["insights"],
                    "intervals": ["5m"],
                }
            )
        )
        error = await next_message(ws, "error")
        # Market channels have no intervals: asking them with any is no error.
        ack = await subscribe(ws, instruments=["alpaca:IBM"], channels=["bars"], intervals=["5m"])

    assert error["code"] == "interval_not_served"
    assert "5m" in error["message"] and "1d, 1m, 1s" in error["message"]
    assert ack["streams"] == ["bars:alpaca:IBM"]


async def test_new_book_subscriber_gets_the_current_book_then_deltas(
    gateway_url: str, user: Session, publisher: RedisPublisher, instrument: str
) -> None:
    # What a venue sends: one snapshot when its connection subscribed, then only changes.
    snapshot = BookSnapshot(
        instrument=instrument,
        exchange_ts_ns=TS,
        receive_ts_ns=TS,
        bids=[("100.0", "1"), ("99.5", "2")],
        asks=[("100.5", "1"), ("101.0", "3")],
    )
    changes = [
        BookDelta(
            instrument=instrument,
            exchange_ts_ns=TS + 1,
            receive_ts_ns=TS + 1,
            bids=[("100.0", "0"), ("99.8", "4")],
            asks=[],
        ),
        BookDelta(
            instrument=instrument,
            exchange_ts_ns=TS + 2,
            receive_ts_ns=TS + 2,
            bids=[],
            asks=[("100.5", "7")],
        ),
    ]
    await publish(publisher, [snapshot, *changes])
    later = BookDelta(
        instrument=instrument,
        exchange_ts_ns=TS + 3,
        receive_ts_ns=TS + 3,
        bids=[("99.9", "1")],
        asks=[],
    )
    async with await connect_feed(gateway_url, user) as ws:
        await subscribe(ws, instruments=[instrument], channels=["book"])
        await publish(publisher, [later])
        first, then = await feed_events(ws, 2)

    assert first["event"]["kind"] == "book_snapshot"
    assert first["event"]["bids"] == [["99.8", "4"], ["99.5", "2"]]
    assert first["event"]["asks"] == [["100.5", "7"], ["101.0", "3"]]
    assert then["event"]["kind"] == "book_delta" and then["event"]["bids"] == [["99.9", "1"]]
    assert tuple(map(int, then["id"].split("-"))) > tuple(map(int, first["id"].split("-")))


async def test_new_book_subscriber_after_a_gap_gets_no_stale_book(
    gateway_url: str, user: Session, publisher: RedisPublisher, instrument: str
) -> None:
    snapshot = BookSnapshot(
        instrument=instrument,
        exchange_ts_ns=TS,
        receive_ts_ns=TS,
        bids=[("100.0", "1")],
        asks=[("100.5", "1")],
    )
    gap = Gap(
        instrument=instrument, exchange_ts_ns=TS + 1, receive_ts_ns=TS + 1, reason="reconnect"
    )
    await publish(publisher, [snapshot, gap])
    later = Trade(
        instrument=instrument,
        trade_id="1",
        price="100.2",
        size="1",
        side="buy",
        exchange_ts_ns=TS + 2,
        receive_ts_ns=TS + 2,
    )
    async with await connect_feed(gateway_url, user) as ws:
        await subscribe(ws, instruments=[instrument], channels=["book", "trades"])
        await publish(publisher, [later])
        (event,) = await feed_events(ws, 1)
    assert event["event"]["kind"] == "trade"
