"""The Coinbase Advanced Trade adapter: frames in, events out, and live against a local server."""

from __future__ import annotations

import asyncio
import calendar
import json
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from typing import Any, ClassVar, TypeVar

import httpx
import pytest
import websockets

from actors.connection import Backoff, ConnectionRunner
from actors.venues.base import ConfigError, ConnectionSpec, Output, VenueConfig
from actors.venues.coinbase import MESSAGES_PER_S_PER_IP, CoinbaseAdapter
from core.events import AnyEvent, BookDelta, BookSnapshot, Gap, Quote, Trade
from tests.actors.venues.coinbase_server import CoinbaseServer

BTC, ETH, SOL = "BTC-USD", "ETH-USD", "SOL-USD"
STAMP = "2023-02-09T20:32:50.714964855Z"
STAMP_NS = calendar.timegm((2023, 2, 9, 20, 32, 50)) * 10**9 + 714_964_855
OPENED_NS = 1_700_000_000_000_000_000
RECEIVED_NS = 1_700_000_000_500_000_000

E = TypeVar("E", bound=AnyEvent)


def make_adapter(
    symbols: tuple[str, ...] = (BTC,),
    channels: tuple[str, ...] = ("trades", "quotes", "book"),
    **config: Any,
) -> CoinbaseAdapter:
    return CoinbaseAdapter(
        VenueConfig(venue="coinbase", symbols=list(symbols), channels=list(channels), **config)
    )


def level(side: str, price: str, size: str, at: str = STAMP) -> dict[str, str]:
    return {"side": side, "event_time": at, "price_level": price, "new_quantity": size}


def l2(kind: str, product: str, *levels: dict[str, str]) -> dict[str, Any]:
    return {"type": kind, "product_id": product, "updates": list(levels)}


def market_trade(
    trade_id: str,
    price: str = "21921.73",
    size: str = "0.5",
    side: str = "BUY",
    at: str = STAMP,
    product: str = BTC,
) -> dict[str, str]:
    return {
        "trade_id": trade_id,
        "product_id": product,
        "price": price,
        "size": size,
        "side": side,
        "time": at,
    }


@dataclass
class Feed:
    """One connection's worth of Coinbase traffic, numbered as the venue numbers it."""

    adapter: CoinbaseAdapter
    conn: ConnectionSpec = field(init=False)
    sequence: int = 0

    def __post_init__(self) -> None:
        self.conn = self.adapter.connections()[0]

    def open(self) -> Output:
        self.sequence = 0
        return self.adapter.on_open(self.conn, OPENED_NS)

    def send(
        self, channel: str, events: list[Any], *, timestamp: str = STAMP, skip: int = 0
    ) -> Output:
        self.sequence += skip
        message = {
            "channel": channel,
            "client_id": "",
            "timestamp": timestamp,
            "sequence_num": self.sequence,
            "events": events,
        }
        self.sequence += 1
        return self.raw(json.dumps(message))

    def raw(self, frame: str) -> Output:
        return self.adapter.on_message(self.conn, frame, RECEIVED_NS)

    def heartbeat(self, counter: int | str) -> Output:
        return self.send("heartbeats", [{"current_time": STAMP, "heartbeat_counter": counter}])

    def synced(
        self, bids: list[tuple[str, str]], asks: list[tuple[str, str]], product: str = BTC
    ) -> Output:
        levels = [level("bid", p, s) for p, s in bids] + [level("offer", p, s) for p, s in asks]
        return self.send("l2_data", [l2("snapshot", product, *levels)])


def opened(adapter: CoinbaseAdapter | None = None) -> Feed:
    feed = Feed(adapter or make_adapter())
    feed.open()
    feed.send("subscriptions", [{"subscriptions": {"level2": [BTC]}}])
    return feed


def of_type(out: Output, kind: type[E]) -> list[E]:
    return [event for event in out.events if isinstance(event, kind)]


def kinds(out: Output) -> list[str]:
    return [problem.kind for problem in out.problems]


# -- configuration and subscribing -----------------------------------------------------------


def test_on_open_with_three_channels_sends_heartbeats_and_one_channel_per_subscribe() -> None:
    out = Feed(make_adapter((BTC, ETH))).open()

    frames = [json.loads(text) for text in out.send]
    assert frames == [
        {"type": "subscribe", "channel": "heartbeats"},
        {"type": "subscribe", "product_ids": [BTC, ETH], "channel": "market_trades"},
        {"type": "subscribe", "product_ids": [BTC, ETH], "channel": "ticker"},
        {"type": "subscribe", "product_ids": [BTC, ETH], "channel": "level2"},
    ]
    assert not out.events and not out.problems


def test_connections_with_more_products_than_the_cap_split_over_connections() -> None:
    symbols = tuple(f"C{n}-USD" for n in range(45))

    default = make_adapter(symbols).connections()
    capped = make_adapter((BTC, ETH, SOL), options={"products_per_connection": "2"}).connections()

    assert [len(spec.symbols) for spec in default] == [20, 20, 5]
    assert [spec.symbols for spec in capped] == [(BTC, ETH), (SOL,)]
    assert len({spec.name for spec in default}) == 3
    assert {spec.url for spec in default} == {"wss://advanced-trade-ws.coinbase.com"}


@pytest.mark.parametrize("channels", [("trades", "quotes", "book"), ("trades",)])
def test_connections_open_staggered_so_subscribes_keep_within_half_the_ip_allowance(
    channels: tuple[str, ...],
) -> None:
    adapter = make_adapter(tuple(f"C{n}-USD" for n in range(100)), channels)

    specs = adapter.connections()

    openings = [(spec.open_delay_s, len(adapter.on_open(spec, OPENED_NS).send)) for spec in specs]
    delays = [at for at, _ in openings]
    assert len(specs) == 5 and delays[0] == 0 and delays == sorted(set(delays))
    for start in delays:
        in_a_second = sum(sent for at, sent in openings if start <= at < start + 1.0)
        assert in_a_second <= MESSAGES_PER_S_PER_IP // 2


@pytest.mark.parametrize("symbol", ["btc-usd", "BTCUSD", "BTC_USD", "BTC-", "BTC-USDC", ""])
def test_adapter_with_impossible_symbol_raises_config_error(symbol: str) -> None:
    with pytest.raises(ConfigError):
        make_adapter((symbol,))


@pytest.mark.parametrize(
    ("channels", "options"),
    [(("bars",), {}), ((), {}), (("book",), {"products_per_connection": "0"})],
)
def test_adapter_with_impossible_channels_or_options_raises_config_error(
    channels: tuple[str, ...], options: dict[str, str]
) -> None:
    with pytest.raises(ConfigError):
        make_adapter((BTC,), channels, options=options)


def test_adapter_with_usdc_products_streamed_on_market_channels_accepts_them() -> None:
    assert make_adapter(("USDT-USDC", "EURC-USDC")).connections()[0].symbols == (
        "USDT-USDC",
        "EURC-USDC",
    )


def test_config_from_capture_with_sent_subscriptions_recovers_products_and_channels() -> None:
    sent = [
        '{"type":"subscribe","channel":"heartbeats"}',
        '{"type":"subscribe","product_ids":["BTC-USD","ETH-USD"],"channel":"market_trades"}',
        '{"type":"subscribe","product_ids":["BTC-USD","ETH-USD"],"channel":"level2"}',
        '{"type":"unsubscribe","product_ids":["BTC-USD"],"channel":"level2"}',
    ]

    config = CoinbaseAdapter.config_from_capture("wss://advanced-trade-ws.coinbase.com", sent)

    assert config.symbols == [BTC, ETH]
    assert config.channels == ["trades", "book"]
    assert config.ws_url == "wss://advanced-trade-ws.coinbase.com"


# -- trades and quotes -----------------------------------------------------------------------


def test_market_trades_update_becomes_trade_with_exact_nanoseconds_and_taker_side() -> None:
    feed = opened()

    out = feed.send(
        "market_trades",
        [{"type": "update", "trades": [market_trade("1001", "21921.730", "0.06317902", "BUY")]}],
    )

    assert out.events == [
        Trade(
            instrument="coinbase:BTC-USD",
            exchange_ts_ns=STAMP_NS,
            receive_ts_ns=RECEIVED_NS,
            trade_id="1001",
            price="21921.730",
            size="0.06317902",
            side="sell",
        )
    ]


@pytest.mark.parametrize(
    ("text", "expected_ns"),
    [
        ("2023-02-09T20:32:50Z", STAMP_NS - 714_964_855),
        ("2023-02-09T20:32:50.7Z", STAMP_NS - 14_964_855),
        ("2023-02-09T21:32:50.714964855+01:00", STAMP_NS),
        ("2023-02-09T19:02:50.714964855-01:30", STAMP_NS),
        ("2023-02-09T20:32:50.7149648559999Z", STAMP_NS),
    ],
)
def test_trade_time_with_any_rfc3339_spelling_parses_to_exact_nanoseconds(
    text: str, expected_ns: int
) -> None:
    out = opened().send(
        "market_trades", [{"type": "update", "trades": [market_trade("7", at=text)]}]
    )

    assert [trade.exchange_ts_ns for trade in of_type(out, Trade)] == [expected_ns]


def test_market_trades_snapshot_after_first_subscribe_publishes_no_history() -> None:
    feed = opened()

    out = feed.send(
        "market_trades", [{"type": "snapshot", "trades": [market_trade("12"), market_trade("11")]}]
    )
    later = feed.send("market_trades", [{"type": "update", "trades": [market_trade("13")]}])

    assert out.events == [] and out.problems == []
    assert [trade.trade_id for trade in of_type(later, Trade)] == ["13"]


def test_market_trades_snapshot_after_reconnect_publishes_only_missed_trades_oldest_first() -> None:
    feed = opened()
    feed.send("market_trades", [{"type": "snapshot", "trades": [market_trade("10")]}])
    feed.send("market_trades", [{"type": "update", "trades": [market_trade("11")]}])
    feed.adapter.on_close(feed.conn, "dropped", RECEIVED_NS)
    feed.open()

    snapshot = [market_trade(trade_id) for trade_id in ("14", "13", "12", "11", "10")]
    out = feed.send("market_trades", [{"type": "snapshot", "trades": snapshot}])

    assert [trade.trade_id for trade in of_type(out, Trade)] == ["12", "13", "14"]


def test_ticker_update_becomes_quote_stamped_with_message_time() -> None:
    ticker = {
        "type": "ticker",
        "product_id": BTC,
        "price": "21932.98",
        "best_bid": "21931.93",
        "best_bid_quantity": "0.20000000",
        "best_ask": "21932.98",
        "best_ask_quantity": "0.01250000",
    }

    out = opened().send("ticker", [{"type": "update", "tickers": [ticker]}])

    assert out.events == [
        Quote(
            instrument="coinbase:BTC-USD",
            exchange_ts_ns=STAMP_NS,
            receive_ts_ns=RECEIVED_NS,
            bid_price="21931.93",
            bid_size="0.20000000",
            ask_price="21932.98",
            ask_size="0.01250000",
        )
    ]


def test_ticker_with_empty_ask_side_gives_quote_without_ask() -> None:
    ticker = {
        "type": "ticker",
        "product_id": BTC,
        "best_bid": "1.5",
        "best_bid_quantity": "2",
        "best_ask": "",
    }

    (quote,) = of_type(opened().send("ticker", [{"type": "snapshot", "tickers": [ticker]}]), Quote)

    assert (quote.bid_price, quote.bid_size, quote.ask_price, quote.ask_size) == (
        "1.5",
        "2",
        None,
        None,
    )


# -- the book --------------------------------------------------------------------------------


def test_level2_snapshot_and_updates_publish_snapshot_then_deltas_as_sent() -> None:
    feed = opened()
    late = "2023-02-09T20:32:51.000000001Z"

    snapshot = feed.synced([("21921.73", "0.06317902"), ("21921.00", "1.0")], [("21922.50", "0.5")])
    delta = feed.send(
        "l2_data",
        [
            l2(
                "update",
                BTC,
                level("bid", "21921.730", "0"),
                level("offer", "21922.40", "2.50"),
                level("offer", "21922.45", "1", late),
            )
        ],
    )

    assert of_type(snapshot, BookSnapshot) == [
        BookSnapshot(
            instrument="coinbase:BTC-USD",
            exchange_ts_ns=STAMP_NS,
            receive_ts_ns=RECEIVED_NS,
            bids=[("21921.73", "0.06317902"), ("21921.00", "1.0")],
            asks=[("21922.50", "0.5")],
        )
    ]
    assert delta.events == [
        BookDelta(
            instrument="coinbase:BTC-USD",
            exchange_ts_ns=STAMP_NS - 714_964_855 + 1_000_000_001,
            receive_ts_ns=RECEIVED_NS,
            bids=[("21921.730", "0")],
            asks=[("21922.40", "2.50"), ("21922.45", "1")],
        )
    ]
    book = feed.adapter.books["coinbase:BTC-USD"]
    assert book.bids() == [("21921.00", "1.0")]
    assert book.asks() == [("21922.40", "2.50"), ("21922.45", "1"), ("21922.50", "0.5")]


def test_level2_update_before_any_snapshot_is_not_published() -> None:
    feed = opened()

    out = feed.send("l2_data", [l2("update", BTC, level("bid", "100", "1"))])

    assert out.events == [] and out.problems == []
    assert not feed.adapter.books["coinbase:BTC-USD"]


def test_level2_update_crossing_the_book_reports_crossed_book_gaps_and_resyncs() -> None:
    feed = opened()
    feed.synced([("100", "1")], [("101", "1")])

    out = feed.send("l2_data", [l2("update", BTC, level("bid", "101.5", "1"))])
    after = feed.send("l2_data", [l2("update", BTC, level("bid", "99", "1"))])

    assert kinds(out) == ["crossed_book"]
    assert [gap.instrument for gap in of_type(out, Gap)] == ["coinbase:BTC-USD"]
    assert not of_type(out, BookDelta)
    assert [json.loads(text) for text in out.send] == [
        {"type": "unsubscribe", "product_ids": [BTC], "channel": "level2"},
        {"type": "subscribe", "product_ids": [BTC], "channel": "level2"},
    ]
    assert after.events == []
    assert not feed.adapter.books["coinbase:BTC-USD"]


@pytest.mark.parametrize(
    "bad_level",
    [
        level("bid", "-100", "1"),
        level("bid", "abc", "1"),
        level("bid", "100", "-1"),
        level("ask", "100", "1"),
        level("bid", "100", "1", at="yesterday"),
    ],
)
def test_level2_update_with_bad_level_reports_parse_error_and_resyncs_that_book(
    bad_level: dict[str, str],
) -> None:
    feed = opened(make_adapter((BTC, ETH)))
    feed.synced([("100", "1")], [("101", "1")])
    feed.synced([("10", "1")], [("11", "1")], product=ETH)

    out = feed.send("l2_data", [l2("update", BTC, level("offer", "100.5", "1"), bad_level)])
    eth = feed.send("l2_data", [l2("update", ETH, level("bid", "10.5", "2"))])

    assert [(p.kind, p.instrument) for p in out.problems] == [("parse_error", "coinbase:BTC-USD")]
    assert [gap.instrument for gap in of_type(out, Gap)] == ["coinbase:BTC-USD"]
    assert not of_type(out, BookDelta)
    assert len(of_type(eth, BookDelta)) == 1


# -- continuity ------------------------------------------------------------------------------


def test_sequence_num_gap_emits_problem_gaps_and_resubscribes_level2_until_a_new_snapshot() -> None:
    feed = opened(make_adapter((BTC, ETH)))
    feed.synced([("100", "1")], [("101", "1")])

    out = feed.send("l2_data", [l2("update", BTC, level("bid", "100", "2"))], skip=3)
    stale_update = feed.send("l2_data", [l2("update", BTC, level("bid", "99", "2"))])
    resynced = feed.synced([("100", "3")], [("101", "1")])

    assert kinds(out) == ["sequence_error"]
    assert sorted(gap.instrument for gap in of_type(out, Gap)) == [
        "coinbase:BTC-USD",
        "coinbase:ETH-USD",
    ]
    assert not of_type(out, BookDelta)
    assert [json.loads(text) for text in out.send] == [
        {"type": "unsubscribe", "product_ids": [BTC, ETH], "channel": "level2"},
        {"type": "subscribe", "product_ids": [BTC, ETH], "channel": "level2"},
    ]
    assert stale_update.events == []
    assert of_type(resynced, BookSnapshot)[0].bids == [("100", "3")]


def test_sequence_num_lower_than_seen_is_skipped_without_gap() -> None:
    feed = opened()
    feed.send("market_trades", [{"type": "update", "trades": [market_trade("5")]}])
    feed.sequence -= 1

    out = feed.send("market_trades", [{"type": "update", "trades": [market_trade("5")]}])
    after = feed.send("market_trades", [{"type": "update", "trades": [market_trade("6")]}])

    assert kinds(out) == ["sequence_error"]
    assert out.events == []
    assert [trade.trade_id for trade in of_type(after, Trade)] == ["6"]
    assert after.problems == []


def test_heartbeat_counter_gap_emits_gap_and_resyncs_the_book() -> None:
    feed = opened()
    feed.synced([("100", "1")], [("101", "1")])
    feed.heartbeat(41)

    steady = feed.heartbeat("42")
    out = feed.heartbeat(44)
    next_beat = feed.heartbeat(45)

    assert steady.events == [] and steady.problems == []
    assert kinds(out) == ["sequence_error"]
    assert [gap.instrument for gap in of_type(out, Gap)] == ["coinbase:BTC-USD"]
    assert len(out.send) == 2
    assert next_beat.problems == []


def test_heartbeat_lost_with_its_sequence_num_is_reported_once() -> None:
    feed = opened()
    feed.heartbeat(1)

    out = feed.send("heartbeats", [{"current_time": STAMP, "heartbeat_counter": 3}], skip=1)

    assert kinds(out) == ["sequence_error"]
    assert len(of_type(out, Gap)) == 1


# -- bad input -------------------------------------------------------------------------------


def test_malformed_and_unknown_frames_are_counted_while_the_feed_keeps_working() -> None:
    feed = opened()
    feed.synced([("100", "1")], [("101", "1")])

    outs = [
        feed.raw("not json {"),
        feed.raw("[1, 2, 3]"),
        feed.raw('{"type": "pong"}'),
        feed.send("candles", [{"type": "update", "candles": []}]),
        feed.send("market_trades", [{"type": "update"}]),
        feed.send("market_trades", [{"type": "update", "trades": [market_trade("9", price="-1")]}]),
        feed.send(
            "ticker",
            [
                {
                    "type": "update",
                    "tickers": [{"product_id": BTC, "best_bid": "x", "best_bid_quantity": "1"}],
                }
            ],
        ),
        feed.send("l2_data", [{"type": "bogus", "product_id": BTC, "updates": []}]),
        feed.send("l2_data", [l2("update", SOL, level("bid", "1", "1"))]),
    ]
    good = feed.send("l2_data", [l2("update", BTC, level("bid", "100.5", "1"))])

    assert [kinds(out) for out in outs] == [
        ["parse_error"],
        ["unknown_message"],
        ["unknown_message"],
        ["unknown_message"],
        ["parse_error"],
        ["parse_error"],
        ["parse_error"],
        ["unknown_message"],
        ["unknown_message"],
    ]
    assert all(not out.events and not out.send for out in outs)
    assert good.problems == []
    assert of_type(good, BookDelta)[0].bids == [("100.5", "1")]


def test_unreadable_l2_data_message_resyncs_every_book_on_the_connection() -> None:
    feed = opened(make_adapter((BTC, ETH)))
    feed.synced([("100", "1")], [("101", "1")])

    out = feed.send("l2_data", [{"type": "update", "product_id": BTC, "updates": "garbage"}])

    assert kinds(out) == ["parse_error"]
    assert sorted(gap.instrument for gap in of_type(out, Gap)) == [
        "coinbase:BTC-USD",
        "coinbase:ETH-USD",
    ]
    assert json.loads(out.send[-1]) == {
        "type": "subscribe",
        "product_ids": [BTC, ETH],
        "channel": "level2",
    }


def test_error_reply_naming_a_product_reports_it_and_stops_subscribing_to_it() -> None:
    feed = opened(make_adapter((BTC, "NOPE-USD")))

    out = feed.raw(
        '{"type": "error", "message": "failure to subscribe: NOPE-USD is not a valid product"}'
    )
    closed = feed.adapter.on_close(feed.conn, "dropped", RECEIVED_NS)
    reopened = feed.open()

    assert [(p.kind, p.instrument) for p in out.problems] == [
        ("exchange_error", "coinbase:NOPE-USD")
    ]
    assert [json.loads(text)["product_ids"] for text in out.send] == [[BTC], [BTC], [BTC]]
    assert [gap.instrument for gap in of_type(closed, Gap)] == ["coinbase:BTC-USD"]
    assert all("NOPE-USD" not in text for text in reopened.send)


def test_error_reply_about_nothing_we_stream_is_reported_without_instrument() -> None:
    out = opened().raw('{"type": "error", "message": "rate limit exceeded"}')

    assert [(p.kind, p.instrument, p.detail) for p in out.problems] == [
        ("exchange_error", None, "rate limit exceeded")
    ]
    assert out.send == []


# -- live, against the local server ----------------------------------------------------------


@dataclass
class Collected:
    outputs: list[Output] = field(default_factory=list)

    def emit(self, out: Output) -> None:
        self.outputs.append(out)

    @property
    def events(self) -> list[AnyEvent]:
        return [event for out in self.outputs for event in out.events]

    def count(self, kind: type[AnyEvent]) -> int:
        return sum(isinstance(event, kind) for event in self.events)

    def problems(self) -> list[str]:
        return [problem.kind for out in self.outputs for problem in out.problems]

    async def wait_for(self, condition: Callable[[], bool], timeout_s: float = 5.0) -> None:
        async with asyncio.timeout(timeout_s):
            while not condition():
                await asyncio.sleep(0.005)


@asynccontextmanager
async def running(adapter: CoinbaseAdapter) -> AsyncIterator[tuple[ConnectionRunner, Collected]]:
    collected = Collected()
    stop = asyncio.Event()
    async with httpx.AsyncClient() as http:
        runner = ConnectionRunner(
            adapter,
            adapter.connections()[0],
            collected.emit,
            http=http,
            backoff=Backoff(base_s=0.01, cap_s=0.05),
        )
        task = asyncio.create_task(runner.run(stop))
        try:
            yield runner, collected
        finally:
            stop.set()
            await asyncio.wait_for(task, timeout=5)


def live_adapter(server: CoinbaseServer, *symbols: str) -> CoinbaseAdapter:
    return make_adapter(symbols or (BTC,), ws_url=server.url)


async def subscribed_everywhere(server: CoinbaseServer, sessions: int = 1) -> None:
    for channel in ("heartbeats", "market_trades", "ticker", "level2"):
        await server.wait_subscribed(channel, sessions=sessions)


async def test_runner_subscribes_to_every_channel_within_5_s_one_channel_per_message() -> None:
    async with (
        CoinbaseServer(heartbeat_interval_s=None) as server,
        running(live_adapter(server, BTC, ETH)),
    ):
        await subscribed_everywhere(server)
        (session,) = server.sessions
        requests = session.requests()

    assert max(at for at, _ in session.received) < 5.0
    assert sorted(request["channel"] for request in requests) == [
        "heartbeats",
        "level2",
        "market_trades",
        "ticker",
    ]
    assert all("channels" not in request and request["type"] == "subscribe" for request in requests)


async def test_runner_with_dropped_connection_reconnects_resubscribes_and_resyncs_book() -> None:
    async with CoinbaseServer(heartbeat_interval_s=None) as server:
        server.set_book(BTC, bids=[("100.00", "1")], asks=[("101.00", "2")])
        adapter = live_adapter(server)
        async with running(adapter) as (runner, collected):
            await subscribed_everywhere(server)
            await collected.wait_for(lambda: collected.count(BookSnapshot) == 1)
            await server.update_book(BTC, bids=[("100.50", "3")])
            await server.trade(BTC, "100.75", "0.1", "SELL")
            await server.ticker(BTC)
            await collected.wait_for(lambda: collected.count(Quote) == 2)

            server.drop()
            server.set_book(BTC, bids=[("99.00", "4")], asks=[("100.00", "5")])
            await subscribed_everywhere(server, sessions=2)
            await collected.wait_for(lambda: collected.count(BookSnapshot) == 2)

        snapshots = [e for e in collected.events if isinstance(e, BookSnapshot)]
        trades = [e for e in collected.events if isinstance(e, Trade)]
        gaps = [e for e in collected.events if isinstance(e, Gap)]

    assert collected.count(BookDelta) == 1
    assert [(trade.price, trade.side) for trade in trades] == [("100.75", "buy")]
    assert gaps and gaps[0].instrument == "coinbase:BTC-USD"
    assert collected.events.index(gaps[0]) < collected.events.index(snapshots[1])
    assert snapshots[1].bids == [("99.00", "4")] and snapshots[1].asks == [("100.00", "5")]
    assert runner.stats.reconnects >= 1
    assert adapter.books["coinbase:BTC-USD"].best_bid() is None  # cleared when the runner stopped


async def test_runner_with_skipped_sequence_num_resyncs_the_book_over_the_same_connection() -> None:
    async with CoinbaseServer(heartbeat_interval_s=None) as server:
        server.set_book(BTC, bids=[("100", "1")], asks=[("101", "1")])
        async with running(live_adapter(server)) as (runner, collected):
            await subscribed_everywhere(server)
            await collected.wait_for(lambda: collected.count(BookSnapshot) == 1)

            server.skip_sequence()
            await server.update_book(BTC, bids=[("100", "7")])
            await collected.wait_for(lambda: collected.count(BookSnapshot) == 2)
            await server.update_book(BTC, asks=[("100.5", "1")])
            await collected.wait_for(lambda: collected.count(BookDelta) == 1)

        (session,) = server.sessions
        snapshot = [e for e in collected.events if isinstance(e, BookSnapshot)][1]

    assert "sequence_error" in collected.problems()
    assert collected.count(Gap) >= 1
    assert snapshot.bids == [("100", "7")]
    assert [r["type"] for r in session.requests() if r["channel"] == "level2"] == [
        "subscribe",
        "unsubscribe",
        "subscribe",
    ]
    assert runner.stats.reconnects == 0


async def test_runner_with_skipped_heartbeat_reports_sequence_error_and_gap() -> None:
    async with (
        CoinbaseServer(heartbeat_interval_s=None) as server,
        running(live_adapter(server)) as (_, collected),
    ):
        await subscribed_everywhere(server)
        await server.heartbeat()
        server.skip_heartbeat()
        await server.heartbeat()
        await collected.wait_for(lambda: collected.count(Gap) == 1)

    assert collected.problems().count("sequence_error") == 1


async def test_runner_with_unknown_product_reports_exchange_error_and_streams_the_rest() -> None:
    async with (
        CoinbaseServer(products=[BTC], heartbeat_interval_s=None) as server,
        running(live_adapter(server, BTC, "NOPE-USD")) as (_, collected),
    ):
        await collected.wait_for(lambda: "exchange_error" in collected.problems())
        await server.wait_subscribed("level2", BTC)
        await server.trade(BTC, "1.5", "2")
        await collected.wait_for(lambda: collected.count(Trade) == 1)

    errors = [p for out in collected.outputs for p in out.problems if p.kind == "exchange_error"]
    assert {problem.instrument for problem in errors} == {"coinbase:NOPE-USD"}


async def test_runner_with_garbage_frames_counts_them_and_keeps_streaming() -> None:
    async with (
        CoinbaseServer(heartbeat_interval_s=None) as server,
        running(live_adapter(server)) as (runner, collected),
    ):
        await subscribed_everywhere(server)
        await server.send_raw("}{ not json")
        await server.send_message("status", [{"type": "snapshot", "products": []}])
        await server.trade(BTC, "1.5", "2")
        await collected.wait_for(lambda: collected.count(Trade) == 1)

    assert runner.stats.problems == {"parse_error": 1, "unknown_message": 1}
    assert runner.stats.reconnects == 0


class QuickWatchdogAdapter(CoinbaseAdapter):
    silence_timeout_s: ClassVar[float] = 0.3


async def test_runner_with_silent_server_reconnects_by_watchdog_and_gaps() -> None:
    async with CoinbaseServer(heartbeat_interval_s=None) as server:
        adapter = QuickWatchdogAdapter(
            VenueConfig(venue="coinbase", symbols=[BTC], ws_url=server.url)
        )
        async with running(adapter) as (runner, collected):
            await subscribed_everywhere(server)
            server.go_silent()
            await collected.wait_for(lambda: collected.count(Gap) >= 1)
            server.go_silent(False)
            await subscribed_everywhere(server, sessions=2)

    assert runner.stats.reconnects >= 1


async def test_server_without_subscribe_in_time_closes_the_connection() -> None:
    async with (
        CoinbaseServer(subscribe_timeout_s=0.2) as server,
        websockets.connect(server.url) as ws,
    ):
        async with asyncio.timeout(5):
            with pytest.raises(websockets.ConnectionClosed):
                await ws.recv()

    assert ws.close_code == 1008


async def test_runners_of_separate_feeds_open_staggered_each_subscribing_within_5_s() -> None:
    products = (BTC, ETH, SOL)
    options = {"products_per_connection": "1"}
    delays = [spec.open_delay_s for spec in make_adapter(products, options=options).connections()]
    async with (
        CoinbaseServer(products, heartbeat_interval_s=None) as server,
        httpx.AsyncClient() as http,
    ):
        stop = asyncio.Event()
        tasks = []
        # One adapter per runner, as in feed actors: nothing shared between the connections.
        for index in range(len(products)):
            adapter = make_adapter(products, ws_url=server.url, options=options)
            spec = adapter.connections()[index]
            runner = ConnectionRunner(adapter, spec, Collected().emit, http=http)
            tasks.append(asyncio.create_task(runner.run(stop)))
        await subscribed_everywhere(server, sessions=len(products))
        stop.set()
        await asyncio.wait_for(asyncio.gather(*tasks), timeout=5)

    opened = sorted(session.opened for session in server.sessions)
    apart = [later - earlier for earlier, later in zip(opened, opened[1:], strict=False)]
    planned = [later - earlier for earlier, later in zip(delays, delays[1:], strict=False)]
    assert all(gap >= want - 0.05 for gap, want in zip(apart, planned, strict=True))
    assert all(at < 5.0 for session in server.sessions for at, _ in session.received)
    # Unstaggered, the three would send 12 subscribes at once.
    sent_at = sorted(
        session.opened + at for session in server.sessions for at, _ in session.received
    )
    assert len(sent_at) == 12
    for start in sent_at:
        assert sum(start <= at < start + 1.0 for at in sent_at) <= MESSAGES_PER_S_PER_IP


async def test_runner_stopped_while_waiting_to_open_never_connects() -> None:
    async with CoinbaseServer() as server, httpx.AsyncClient() as http:
        adapter = live_adapter(server)
        spec = replace(adapter.connections()[0], open_delay_s=60.0)
        collected = Collected()
        runner = ConnectionRunner(adapter, spec, collected.emit, http=http)
        stop = asyncio.Event()
        task = asyncio.create_task(runner.run(stop))
        await collected.wait_for(lambda: runner.stats.state == "connecting")
        stop.set()
        await asyncio.wait_for(task, timeout=1)

    assert server.sessions == [] and runner.stats.state == "stopped"
