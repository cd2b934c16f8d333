"""OKX v5 public adapter: subscriptions, parsing, checksummed books, resyncs, live reconnects."""

from __future__ import annotations

import asyncio
import json
import zlib
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from typing import ClassVar, TypeVar

import httpx
import pytest

from actors.book import okx_checksum
from actors.connection import Backoff, ConnectionRunner
from actors.replay import replay_files
from actors.simulated.okx import (
    OkxMarket,
    OkxServer,
    no_such_instrument,
    okx_book_checksum,
)
from actors.venues.base import ConfigError, ConnectionSpec, Output, VenueConfig
from actors.venues.okx import OkxAdapter
from core.events import AnyEvent, BookDelta, BookSnapshot, Channel, Gap, Quote, Trade
from tests.captures import CAPTURES

OKX_CAPTURE = CAPTURES / "OKX.ws.1.0"
SYMBOL = "BTC-USDT"
INSTRUMENT = "okx:BTC-USDT"
NOW_NS = 1_700_000_000_000_000_000
WAIT_S = 10.0

T = TypeVar("T")


def open_adapter(
    symbols: Sequence[str] = (SYMBOL,),
    channels: Sequence[Channel] = ("trades", "quotes", "book"),
) -> tuple[OkxAdapter, ConnectionSpec, Output]:
    adapter = OkxAdapter(VenueConfig(venue="okx", symbols=list(symbols), channels=list(channels)))
    conn = adapter.connections()[0]
    return adapter, conn, adapter.on_open(conn, NOW_NS)


def feed(adapter: OkxAdapter, conn: ConnectionSpec, *frames: str) -> Output:
    out = Output()
    for frame in frames:
        out.extend(adapter.on_message(conn, frame, NOW_NS))
    return out


def subscribed(frames: list[str]) -> set[tuple[str, str, str]]:
    return {
        (request["op"], arg["channel"], arg["instId"])
        for request in map(json.loads, frames)
        for arg in request["args"]
    }


def kinds(out: Output) -> list[str]:
    return [problem.kind for problem in out.problems]


def of_type(events: Sequence[AnyEvent], kind: type[T]) -> list[T]:
    return [event for event in events if isinstance(event, kind)]


def synced_book(
    market: OkxMarket | None = None,
) -> tuple[OkxAdapter, ConnectionSpec, OkxMarket]:
    market = market or OkxMarket([SYMBOL])
    adapter, conn, _ = open_adapter()
    out = feed(adapter, conn, market.snapshot_frame(SYMBOL))
    assert of_type(out.events, BookSnapshot) and not out.problems
    return adapter, conn, market


def assert_resubscribed(out: Output, kind: str) -> None:
    assert kinds(out) == [kind]
    assert [type(event) for event in out.events] == [Gap]
    assert [json.loads(text) for text in out.send] == [
        {"op": "unsubscribe", "args": [{"channel": "books", "instId": SYMBOL}]},
        {"op": "subscribe", "args": [{"channel": "books", "instId": SYMBOL}]},
    ]


# -- configuration and subscriptions ------------------------------------------------------


def test_subscribe_with_all_channels_sends_one_request_for_every_channel() -> None:
    _, _, out = open_adapter(symbols=["BTC-USDT", "UNI-USD-SWAP"])

    assert len(out.send) == 1
    assert subscribed(out.send) == {
        ("subscribe", channel, symbol)
        for channel in ("trades", "tickers", "books")
        for symbol in ("BTC-USDT", "UNI-USD-SWAP")
    }


def test_subscribe_with_book_only_asks_for_books_alone() -> None:
    _, _, out = open_adapter(symbols=["BTC-USD-220527"], channels=["book"])

    assert subscribed(out.send) == {("subscribe", "books", "BTC-USD-220527")}


def test_connections_with_250_symbols_split_into_connections_under_okx_limits() -> None:
    symbols = [f"C{number}-USDT-SWAP" for number in range(250)]
    adapter = OkxAdapter(VenueConfig(venue="okx", symbols=symbols))

    connections = adapter.connections()

    assert [len(conn.symbols) for conn in connections] == [100, 100, 50]
    assert [s for conn in connections for s in conn.symbols] == symbols
    assert len({conn.name for conn in connections}) == 3
    for conn in connections:
        (request,) = adapter.on_open(conn, NOW_NS).send
        assert len(request.encode()) < 64 * 1024


@pytest.mark.parametrize("symbol", ["btc-usdt", "BTCUSDT", "BTC/USDT", "", "BTC-USDT "])
def test_config_with_impossible_symbol_raises_config_error(symbol: str) -> None:
    with pytest.raises(ConfigError):
        OkxAdapter(VenueConfig(venue="okx", symbols=[symbol]))


def test_config_with_bars_channel_raises_config_error() -> None:
    with pytest.raises(ConfigError, match="bars"):
        OkxAdapter(VenueConfig(venue="okx", symbols=[SYMBOL], channels=["trades", "bars"]))


def test_config_with_no_symbols_raises_config_error() -> None:
    with pytest.raises(ConfigError):
        OkxAdapter(VenueConfig(venue="okx", symbols=[]))


def test_config_from_capture_with_recorded_subscribes_returns_symbols_and_channels() -> None:
    sent = [
        '{"op":"subscribe","args":[{"channel":"tickers","instId":"BTC-USD-220527"}]}',
        '{"op":"subscribe","args":[{"channel":"tickers","instId":"BTC-USD-220527"},'
        '{"channel":"trades","instId":"UNI-USD-SWAP"},{"channel":"books","instId":"BTC-USDT"}]}',
        "ping",
    ]

    config = OkxAdapter.config_from_capture("wss://ws.okx.com:8443/ws/v5/public", sent)

    assert config.venue == "okx"
    assert config.symbols == ["BTC-USD-220527", "UNI-USD-SWAP", "BTC-USDT"]
    assert config.channels == ["trades", "quotes", "book"]
    assert config.ws_url == "wss://ws.okx.com:8443/ws/v5/public"


# -- trades and tickers -------------------------------------------------------------------


def test_trades_with_okx_frame_become_trades_with_the_exchange_strings() -> None:
    adapter, conn, _ = open_adapter()
    frame = (
        '{"arg":{"channel":"trades","instId":"BTC-USDT"},"data":['
        '{"instId":"BTC-USDT","tradeId":"338476307","px":"30236","sz":"0.0002","side":"buy",'
        '"ts":"1652459224818"},'
        '{"instId":"BTC-USDT","tradeId":"338476308","px":"30243.5","sz":"0.00000938",'
        '"side":"sell","ts":"1652459226050"}]}'
    )

    out = feed(adapter, conn, frame)

    assert not out.problems
    assert out.events == [
        Trade(
            instrument=INSTRUMENT,
            exchange_ts_ns=1_652_459_224_818_000_000,
            receive_ts_ns=NOW_NS,
            trade_id="338476307",
            price="30236",
            size="0.0002",
            side="buy",
        ),
        Trade(
            instrument=INSTRUMENT,
            exchange_ts_ns=1_652_459_226_050_000_000,
            receive_ts_ns=NOW_NS,
            trade_id="338476308",
            price="30243.5",
            size="0.00000938",
            side="sell",
        ),
    ]


def test_tickers_with_okx_frame_become_quotes() -> None:
    adapter, conn, _ = open_adapter()
    frame = (
        '{"arg":{"channel":"tickers","instId":"BTC-USDT"},"data":[{"instType":"SPOT",'
        '"instId":"BTC-USDT","last":"30236","lastSz":"0.0002","askPx":"30228.7",'
        '"askSz":"1.55896972","bidPx":"30228.6","bidSz":"0.23393","open24h":"29700.4",'
        '"ts":"1652459224818"}]}'
    )

    out = feed(adapter, conn, frame)

    assert out.events == [
        Quote(
            instrument=INSTRUMENT,
            exchange_ts_ns=1_652_459_224_818_000_000,
            receive_ts_ns=NOW_NS,
            bid_price="30228.6",
            bid_size="0.23393",
            ask_price="30228.7",
            ask_size="1.55896972",
        )
    ]


def test_tickers_with_an_empty_side_quote_that_side_as_none() -> None:
    adapter, conn, _ = open_adapter()
    frame = (
        '{"arg":{"channel":"tickers","instId":"BTC-USDT"},"data":[{"askPx":"","askSz":"",'
        '"bidPx":"30228.6","bidSz":"0.5","ts":"1652459224818"}]}'
    )

    (quote,) = feed(adapter, conn, frame).events

    assert isinstance(quote, Quote)
    assert (quote.bid_price, quote.ask_price, quote.ask_size) == ("30228.6", None, None)


# -- books and checksums ------------------------------------------------------------------


def signed_crc32(text: str) -> int:
    value = zlib.crc32(text.encode())
    return value - 2**32 if value >= 2**31 else value


def test_checksum_with_sides_of_unequal_length_continues_with_the_longer_side() -> None:
    two = [("3366.1", "7"), ("3366", "6")]
    one = [("3366.8", "9")]

    # OKX: levels interleave bid:ask while both sides last, then the rest of the longer side.
    assert okx_checksum(two, one) == signed_crc32("3366.1:7:3366.8:9:3366:6")
    assert okx_checksum(one, two) == signed_crc32("3366.8:9:3366.1:7:3366:6")
    assert okx_checksum([], []) == 0


def test_checksum_with_more_than_25_levels_covers_the_best_25_of_each_side() -> None:
    bids = [(str(1000 - level), "1") for level in range(30)]
    asks = [(str(2000 + level), "2") for level in range(30)]
    text = ":".join(
        f"{b}:1:{a}:2" for b, a in zip(range(1000, 975, -1), range(2000, 2025), strict=True)
    )

    assert okx_checksum(bids, asks) == signed_crc32(text)


def test_checksum_with_synthetic_books_matches_an_independent_implementation() -> None:
    market = OkxMarket([SYMBOL], seed=7, depth=60)
    for _ in range(300):
        market.update_frame(SYMBOL)
        bids, asks = market.bids(SYMBOL), market.asks(SYMBOL)
        ours = okx_checksum([(p, s) for p, s, *_ in bids], [(p, s) for p, s, *_ in asks])
        assert ours == okx_book_checksum(bids, asks)


def test_books_with_snapshot_and_updates_publish_snapshot_then_deltas_as_sent() -> None:
    market = OkxMarket([SYMBOL], seed=3)
    adapter, conn, _ = open_adapter(channels=["book"])
    updates = [market.update_frame(SYMBOL) for _ in range(200)]
    snapshot_market = OkxMarket([SYMBOL], seed=3)

    out = feed(adapter, conn, snapshot_market.snapshot_frame(SYMBOL), *updates)

    assert not out.problems
    snapshot, *rest = out.events
    deltas = of_type(rest, BookDelta)
    assert isinstance(snapshot, BookSnapshot)
    assert snapshot.bids == [(p, s) for p, s, *_ in snapshot_market.bids(SYMBOL)]
    assert snapshot.asks == [(p, s) for p, s, *_ in snapshot_market.asks(SYMBOL)]
    assert len(deltas) == len(rest) == 200
    first = json.loads(updates[0])["data"][0]
    assert deltas[0].bids == [(p, s) for p, s, *_ in first["bids"]]
    assert deltas[0].asks == [(p, s) for p, s, *_ in first["asks"]]
    assert deltas[0].sequence == first["seqId"]
    assert adapter.checksums_verified == 201
    book = adapter.books[INSTRUMENT]
    assert book.best_bid() == tuple(market.bids(SYMBOL)[0][:2])
    assert book.best_ask() == tuple(market.asks(SYMBOL)[0][:2])


def test_books_with_wrong_checksum_emit_gap_resubscribe_and_wait_for_a_new_snapshot() -> None:
    adapter, conn, market = synced_book()

    out = feed(adapter, conn, market.update_frame(SYMBOL, bad_checksum=True))

    assert_resubscribed(out, "checksum_failure")
    assert not adapter.books[INSTRUMENT]
    stale = feed(adapter, conn, *(market.update_frame(SYMBOL) for _ in range(5)))
    assert not stale.events and not stale.problems
    resynced = feed(adapter, conn, market.snapshot_frame(SYMBOL), market.update_frame(SYMBOL))
    assert [type(event) for event in resynced.events] == [BookSnapshot, BookDelta]
    assert not resynced.problems


def test_books_with_sequence_gap_emit_gap_and_resubscribe() -> None:
    adapter, conn, market = synced_book()
    assert feed(adapter, conn, market.update_frame(SYMBOL)).events

    market.lose_update(SYMBOL)
    out = feed(adapter, conn, market.update_frame(SYMBOL))

    assert_resubscribed(out, "sequence_error")
    resynced = feed(adapter, conn, market.snapshot_frame(SYMBOL), market.update_frame(SYMBOL))
    assert [type(event) for event in resynced.events] == [BookSnapshot, BookDelta]


def test_books_with_keepalive_publish_nothing_and_stay_in_sync() -> None:
    adapter, conn, market = synced_book()

    quiet = feed(adapter, conn, market.keepalive_frame(SYMBOL), market.keepalive_frame(SYMBOL))
    after = feed(adapter, conn, market.update_frame(SYMBOL))

    assert not quiet.events and not quiet.problems
    assert [type(event) for event in after.events] == [BookDelta] and not after.problems


def test_books_with_sequence_reset_after_maintenance_stay_in_sync() -> None:
    adapter, conn, market = synced_book()

    out = feed(adapter, conn, market.update_frame(SYMBOL, next_seq=5), market.update_frame(SYMBOL))

    assert not out.problems
    assert [event.sequence for event in of_type(out.events, BookDelta)][0] == 5


def test_books_without_sequence_ids_are_checked_by_checksum_alone() -> None:
    market = OkxMarket([SYMBOL], with_seq=False)
    adapter, conn, _ = synced_book(market)

    good = feed(adapter, conn, *(market.update_frame(SYMBOL) for _ in range(50)))
    bad = feed(adapter, conn, market.update_frame(SYMBOL, bad_checksum=True))

    assert len(good.events) == 50 and not good.problems
    assert kinds(bad) == ["checksum_failure"]


def test_books_with_crossing_update_report_crossed_book_and_resync() -> None:
    adapter, conn, market = synced_book()
    best_ask = market.best_ask(SYMBOL)

    out = feed(adapter, conn, market.update_frame(SYMBOL, bids=[[best_ask, "1"]]))

    assert_resubscribed(out, "crossed_book")
    assert not adapter.books[INSTRUMENT]


def test_books_in_any_json_spelling_give_the_same_events() -> None:
    market = OkxMarket([SYMBOL], seed=5)
    compact = [market.snapshot_frame(SYMBOL), *(market.update_frame(SYMBOL) for _ in range(50))]
    assert all(frame.startswith('{"arg":{"channel":"books",') for frame in compact)
    # The same frames with spaces and the fields in another order.
    respelled = [
        json.dumps({"data": parsed["data"], "action": parsed["action"], "arg": parsed["arg"]})
        for parsed in map(json.loads, compact)
    ]

    as_sent = feed(*open_adapter(channels=["book"])[:2], *compact)
    other = feed(*open_adapter(channels=["book"])[:2], *respelled)

    assert not as_sent.problems and not other.problems
    assert as_sent.events == other.events and len(as_sent.events) == 51


def test_books_frame_broken_after_a_well_formed_start_is_counted_and_missed() -> None:
    adapter, conn, market = synced_book()
    frame = market.update_frame(SYMBOL)

    broken = feed(adapter, conn, frame[: len(frame) // 2])
    after = feed(adapter, conn, market.update_frame(SYMBOL))

    assert kinds(broken) == ["parse_error"] and not broken.events
    assert_resubscribed(after, "sequence_error")


def test_books_with_malformed_update_emit_gap_and_resubscribe() -> None:
    adapter, conn, market = synced_book()
    frame = json.loads(market.update_frame(SYMBOL))
    frame["data"][0]["bids"] = [["30000.1", "-3", "0", "1"]]

    out = feed(adapter, conn, json.dumps(frame))

    assert_resubscribed(out, "parse_error")


def test_resyncs_with_hourly_request_allowance_spent_ask_for_a_reconnect() -> None:
    market = OkxMarket([SYMBOL], depth=3)
    adapter, conn, _ = open_adapter(channels=["book"])
    outs = []
    # on_open spent one request; every resync spends two (unsubscribe, subscribe) of 480.
    for _ in range(240):
        outs.append(
            feed(
                adapter,
                conn,
                market.snapshot_frame(SYMBOL),
                market.update_frame(SYMBOL, bad_checksum=True),
            )
        )

    assert all(len(out.send) == 2 and out.reconnect is None for out in outs[:239])
    assert outs[239].send == [] and outs[239].reconnect is not None
    assert adapter.on_open(conn, NOW_NS).send


# -- control frames, errors and garbage ---------------------------------------------------


def test_ping_with_okx_sends_text_ping_and_pong_replies_are_consumed_silently() -> None:
    adapter, conn, _ = open_adapter()

    assert adapter.ping(conn, NOW_NS).send == ["ping"]
    assert OkxAdapter.ping_interval_s is not None and OkxAdapter.ping_interval_s < 30
    pong = feed(adapter, conn, "pong")
    assert pong == Output()


GARBAGE = [
    ("{not json", "parse_error"),
    ("[1, 2]", "parse_error"),
    (
        '{"arg":{"channel":"trades","instId":"BTC-USDT"},"data":[{"tradeId":"1","px":"abc",'
        '"sz":"1","side":"buy","ts":"1"}]}',
        "parse_error",
    ),
    (
        '{"arg":{"channel":"trades","instId":"BTC-USDT"},"data":[{"tradeId":"1","px":"-5",'
        '"sz":"1","side":"buy","ts":"1"}]}',
        "parse_error",
    ),
    (
        '{"arg":{"channel":"trades","instId":"BTC-USDT"},"data":[{"px":"5","sz":"1",'
        '"side":"buy","ts":"1"}]}',
        "parse_error",
    ),
    (
        '{"arg":{"channel":"trades","instId":"BTC-USDT"},"data":[{"tradeId":"1","px":"5",'
        '"sz":"1","side":"short","ts":"1"}]}',
        "parse_error",
    ),
    (
        '{"arg":{"channel":"tickers","instId":"BTC-USDT"},"data":[{"bidPx":"NaN","bidSz":"1",'
        '"askPx":"2","askSz":"1","ts":"1"}]}',
        "parse_error",
    ),
    ('{"arg":{"channel":"candle1m","instId":"BTC-USDT"},"data":[["1"]]}', "unknown_message"),
    ('{"arg":{"channel":"trades","instId":"ETH-USDT"},"data":[]}', "unknown_message"),
    (
        '{"arg":{"channel":"books","instId":"BTC-USDT"},"action":"partial","data":[]}',
        "unknown_message",
    ),
    ('{"event":"login","code":"0","msg":""}', "unknown_message"),
    ('{"hello":"world"}', "unknown_message"),
]


@pytest.mark.parametrize(("frame", "kind"), GARBAGE)
def test_messages_with_garbage_are_counted_and_the_adapter_keeps_working(
    frame: str, kind: str
) -> None:
    adapter, conn, market = synced_book()

    out = feed(adapter, conn, frame)
    after = feed(adapter, conn, market.update_frame(SYMBOL), market.trade_frame(SYMBOL))

    assert kinds(out) == [kind] and not out.events and not out.send
    assert [type(event) for event in after.events] == [BookDelta, Trade] and not after.problems


def test_error_reply_with_unknown_instrument_reports_it_and_stops_subscribing_to_it() -> None:
    adapter, conn, first = open_adapter(symbols=[SYMBOL, "FOO-BAR"])
    assert ("subscribe", "books", "FOO-BAR") in subscribed(first.send)

    out = feed(adapter, conn, no_such_instrument("books", "FOO-BAR"))

    assert [(p.kind, p.instrument) for p in out.problems] == [("exchange_error", "okx:FOO-BAR")]
    assert "60018" in out.problems[0].detail
    again = subscribed(adapter.on_open(conn, NOW_NS).send)
    assert {inst for _, _, inst in again} == {SYMBOL}


def test_error_reply_without_an_instrument_reports_it_and_keeps_subscriptions() -> None:
    adapter, conn, _ = open_adapter()

    out = feed(adapter, conn, '{"event":"error","code":"60012","msg":"Invalid request"}')

    assert [(p.kind, p.instrument) for p in out.problems] == [("exchange_error", None)]
    assert subscribed(adapter.on_open(conn, NOW_NS).send)


def test_notice_with_service_upgrade_asks_for_a_reconnect() -> None:
    adapter, conn, _ = open_adapter()
    notice = (
        '{"event":"notice","code":"64008","msg":"The connection will soon be closed for a '
        'service upgrade. Please reconnect.","connId":"a4d3ae55"}'
    )

    out = feed(adapter, conn, notice)

    assert out.reconnect is not None and not out.problems


# -- the real recording ---------------------------------------------------------------------


@pytest.mark.skipif(not OKX_CAPTURE.exists(), reason="../shared/captures is not here")
def test_replay_with_okx_capture_verifies_every_checksum_and_counts_every_trade() -> None:
    checksummed = trades = 0
    for line in OKX_CAPTURE.read_text().splitlines():
        text = line.partition(": ")[2]
        if not line[:1].isdigit() or '"arg"' not in text or '"data"' not in text:
            continue
        message = json.loads(text)
        channel = message["arg"]["channel"]
        if channel == "books":
            checksummed += sum("checksum" in item for item in message["data"])
        elif channel == "trades":
            trades += len(message["data"])

    adapter, summary = replay_files(OkxAdapter, OKX_CAPTURE)
    report = summary.as_dict(adapter)

    assert isinstance(adapter, OkxAdapter)
    assert checksummed == 290 and adapter.checksums_verified == checksummed
    assert report["checksum_failures"] == 0 and report["sequence_errors"] == 0
    assert report["parse_errors"] == 0 and report["unknown_messages"] == 0
    assert report["gaps"] == 0 and not report["other_problems"]
    assert summary.events["trade"] == trades
    assert set(report["instruments"]) == {"okx:BTC-USDT", "okx:BTC-USD-220527", "okx:UNI-USD-SWAP"}
    for instrument, state in report["instruments"].items():
        assert float(state["best_bid"]) < float(state["best_ask"]), instrument


# -- live, over a WebSocket -----------------------------------------------------------------


class Collector:
    """The runner's ``emit``: keeps every Output."""

    def __init__(self) -> None:
        self.outputs: list[Output] = []

    def __call__(self, out: Output) -> None:
        self.outputs.append(out)

    def events(self, kind: type[T], instrument: str | None = None) -> list[T]:
        return [
            event
            for out in self.outputs
            for event in out.events
            if isinstance(event, kind)
            and (instrument is None or getattr(event, "instrument", None) == instrument)
        ]

    def problems(self, kind: str | None = None) -> list[str]:
        return [
            p.kind for out in self.outputs for p in out.problems if kind is None or p.kind == kind
        ]

    async def wait_until(self, condition: Callable[[], bool], timeout_s: float = WAIT_S) -> None:
        async with asyncio.timeout(timeout_s):
            while not condition():
                await asyncio.sleep(0.005)


@asynccontextmanager
async def running(adapter: OkxAdapter) -> AsyncIterator[tuple[Collector, ConnectionRunner]]:
    collector = Collector()
    async with httpx.AsyncClient() as http:
        runner = ConnectionRunner(
            adapter,
            adapter.connections()[0],
            collector,
            http=http,
            backoff=Backoff(base_s=0.01, cap_s=0.05),
        )
        stop = asyncio.Event()
        task = asyncio.create_task(runner.run(stop))
        try:
            yield collector, runner
        finally:
            stop.set()
            await asyncio.wait_for(task, timeout=WAIT_S)


def live_adapter(server: OkxServer, symbols: Sequence[str]) -> OkxAdapter:
    return OkxAdapter(VenueConfig(venue="okx", symbols=list(symbols), ws_url=server.url))


async def test_runner_with_dropped_connection_reconnects_resubscribes_and_resyncs() -> None:
    symbols = [SYMBOL, "ETH-USDT"]
    market = OkxMarket(symbols)
    async with OkxServer(market, auto_interval_s=0.005) as server:
        adapter = live_adapter(server, symbols)
        async with running(adapter) as (seen, runner):
            await seen.wait_until(
                lambda: (
                    all(seen.events(BookSnapshot, f"okx:{s}") for s in symbols)
                    and len(seen.events(BookDelta)) >= 20
                    and bool(seen.events(Trade))
                    and bool(seen.events(Quote))
                )
            )
            deltas_before = len(seen.events(BookDelta))

            server.drop()

            await seen.wait_until(
                lambda: (
                    all(len(seen.events(BookSnapshot, f"okx:{s}")) == 2 for s in symbols)
                    and len(seen.events(BookDelta)) > deltas_before + 20
                )
            )
            assert {gap.instrument for gap in seen.events(Gap)} == {f"okx:{s}" for s in symbols}
            assert runner.stats.reconnects == 1
    assert server.connections == 2
    assert all(server.requests("subscribe", "books", s) == 2 for s in symbols)
    assert not seen.problems()
    assert adapter.checksums_verified >= len(seen.events(BookDelta))


async def test_runner_with_silent_server_pings_then_reconnects_on_the_watchdog() -> None:
    class QuickOkx(OkxAdapter):
        ping_interval_s: ClassVar[float | None] = 0.05
        silence_timeout_s: ClassVar[float] = 0.4

    async with OkxServer(OkxMarket([SYMBOL]), auto_interval_s=0.01) as server:
        adapter = QuickOkx(VenueConfig(venue="okx", symbols=[SYMBOL], ws_url=server.url))
        async with running(adapter) as (seen, _):
            await seen.wait_until(lambda: bool(seen.events(BookSnapshot)))
            await server.wait_until(lambda: "ping" in (text for _, text in server.received))

            server.go_silent()

            await seen.wait_until(lambda: len(seen.events(BookSnapshot)) == 2)
            assert any("silent" in gap.reason for gap in seen.events(Gap))
    assert server.connections == 2
    assert not seen.problems()


async def test_runner_with_checksum_fault_and_lost_update_resyncs_over_the_wire() -> None:
    async with OkxServer(OkxMarket([SYMBOL])) as server:
        adapter = live_adapter(server, [SYMBOL])
        async with running(adapter) as (seen, _):
            await seen.wait_until(lambda: len(seen.events(BookSnapshot)) == 1)

            server.push_book_update(SYMBOL, bad_checksum=True)
            await seen.wait_until(lambda: len(seen.events(BookSnapshot)) == 2)
            server.lose_book_update(SYMBOL)
            server.push_book_update(SYMBOL)
            await seen.wait_until(lambda: len(seen.events(BookSnapshot)) == 3)
            server.push_book_update(SYMBOL)
            await seen.wait_until(lambda: len(seen.events(BookDelta)) == 1)

            assert seen.problems() == ["checksum_failure", "sequence_error"]
            assert len(seen.events(Gap)) == 2
            book = adapter.books[INSTRUMENT]
            assert book.best_bid() == tuple(server.market.bids(SYMBOL)[0][:2])
    assert server.connections == 1
    assert server.requests("unsubscribe", "books", SYMBOL) == 2


async def test_runner_with_unknown_instrument_reports_it_and_leaves_it_out_after_reconnect() -> (
    None
):
    async with OkxServer(OkxMarket([SYMBOL])) as server:
        adapter = live_adapter(server, [SYMBOL, "FOO-BAR"])
        async with running(adapter) as (seen, _):
            await seen.wait_until(
                lambda: (
                    len(seen.problems("exchange_error")) == 3 and bool(seen.events(BookSnapshot))
                )
            )

            server.drop()

            await server.wait_until(lambda: server.requests("subscribe", "books", SYMBOL) == 2)
            await seen.wait_until(lambda: len(seen.events(BookSnapshot)) == 2)
    assert server.requests("subscribe", None, "FOO-BAR") == 3
    assert seen.problems() == ["exchange_error"] * 3


async def test_runner_with_garbage_frames_counts_them_and_keeps_streaming() -> None:
    async with OkxServer(OkxMarket([SYMBOL])) as server:
        adapter = live_adapter(server, [SYMBOL])
        async with running(adapter) as (seen, runner):
            await seen.wait_until(lambda: bool(seen.events(BookSnapshot)))

            server.broadcast("{truncated")
            server.broadcast('{"arg":{"channel":"mystery","instId":"BTC-USDT"},"data":[]}')
            server.push_trade(SYMBOL)
            server.push_book_update(SYMBOL)

            await seen.wait_until(lambda: bool(seen.events(Trade)) and bool(seen.events(BookDelta)))
            assert runner.stats.problems == {"parse_error": 1, "unknown_message": 1}
    assert server.connections == 1
