"""The Binance spot adapter: parsing, book sync, faults, recorded traffic and a live socket."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import asynccontextmanager
from dataclasses import replace
from decimal import Decimal
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest

from actors.capture import CaptureWriter, read_capture
from actors.connection import Backoff, ConnectionRunner
from actors.replay import replay_files
from actors.venues.base import (
    ConfigError,
    ConnectionSpec,
    Output,
    RestRequest,
    VenueConfig,
)
from actors.venues.binance import MAX_STREAMS_PER_CONNECTION, BinanceAdapter
from core.events import (
    AnyEvent,
    Bar,
    BookDelta,
    BookSnapshot,
    Gap,
    MarketChannel,
    Quote,
    Trade,
)
from tests.actors.venues.binance_server import BinanceServer
from tests.captures import CAPTURES

INSTRUMENT = "binance:BTC-USDT"
DEPTH = "btcusdt@depth@100ms"
T0 = 1_700_000_000_000_000_000
SECOND = 1_000_000_000
SNAPSHOT_BIDS = [("100.00", "1.0"), ("99.00", "2.0")]
SNAPSHOT_ASKS = [("101.00", "1.0"), ("102.00", "2.0")]
E = TypeVar("E")


# -- helpers ---------------------------------------------------------------------------------


def make_adapter(
    symbols: Iterable[str] = ("BTC-USDT",),
    channels: Iterable[MarketChannel] = ("trades", "quotes", "book", "bars"),
    **options: str,
) -> BinanceAdapter:
    config = VenueConfig(
        venue="binance", symbols=list(symbols), channels=list(channels), options=options
    )
    return BinanceAdapter(config)


def frame(stream: str, data: dict[str, Any]) -> str:
    return json.dumps({"stream": stream, "data": data})


def depth(
    first: int,
    last: int,
    bids: Iterable[tuple[str, str]] = (),
    asks: Iterable[tuple[str, str]] = (),
) -> str:
    data = {
        "e": "depthUpdate",
        "E": 1_700_000_000_123,
        "s": "BTCUSDT",
        "U": first,
        "u": last,
        "b": [list(level) for level in bids],
        "a": [list(level) for level in asks],
    }
    return frame(DEPTH, data)


def snapshot_body(last_update_id: int) -> bytes:
    body = {"lastUpdateId": last_update_id, "bids": SNAPSHOT_BIDS, "asks": SNAPSHOT_ASKS}
    return json.dumps(body).encode()


def of_type(outputs: Output | Iterable[Output], kind: type[E]) -> list[E]:
    outs = [outputs] if isinstance(outputs, Output) else outputs
    return [event for out in outs for event in out.events if isinstance(event, kind)]


def problem_kinds(outputs: Output | Iterable[Output]) -> list[str]:
    outs = [outputs] if isinstance(outputs, Output) else outputs
    return [problem.kind for out in outs for problem in out.problems]


def synced_adapter(**options: str) -> tuple[BinanceAdapter, ConnectionSpec]:
    """An adapter whose BTC-USDT book is synced at update 101 from ``SNAPSHOT_*``."""
    adapter = make_adapter(**options)
    [conn] = adapter.connections()
    adapter.on_open(conn, T0)
    [request] = adapter.on_message(conn, depth(101, 101), T0).rest
    out = adapter.on_rest_reply(request, 200, snapshot_body(101), T0 + 1)
    assert len(of_type(out, BookSnapshot)) == 1
    return adapter, conn


def best(adapter: BinanceAdapter) -> tuple[tuple[str, str] | None, tuple[str, str] | None]:
    book = adapter.books[INSTRUMENT]
    return book.best_bid(), book.best_ask()


# -- connections and configuration -----------------------------------------------------------


def test_connections_with_one_symbol_use_one_combined_stream_url() -> None:
    adapter = BinanceAdapter(VenueConfig(venue="binance", symbols=["BTC-USDT"]))

    [spec] = adapter.connections()

    assert spec.url == (
        "wss://stream.binance.com:9443/stream?streams="
        "btcusdt@trade/btcusdt@bookTicker/btcusdt@depth@100ms"
    )
    assert spec.symbols == ("BTC-USDT",)
    assert spec.max_age_s is not None and 23 * 3600 < spec.max_age_s < 24 * 3600
    assert BinanceAdapter.ping_interval_s is None


def test_connections_with_more_than_1024_streams_split_over_connections() -> None:
    symbols = [f"C{i}-USDT" for i in range(300)]
    adapter = make_adapter(symbols)

    specs = adapter.connections()

    stream_lists = [spec.url.partition("streams=")[2].split("/") for spec in specs]
    assert [len(streams) for streams in stream_lists] == [1024, 176]
    assert all(len(streams) <= MAX_STREAMS_PER_CONNECTION for streams in stream_lists)
    assert [s for spec in specs for s in spec.symbols] == symbols
    assert len({spec.name for spec in specs}) == 2
    assert "c0usdt@kline_1m" in stream_lists[0] and "c299usdt@depth@100ms" in stream_lists[1]


def test_connections_with_custom_urls_and_agg_trades_point_there() -> None:
    config = VenueConfig(
        venue="binance",
        symbols=["ETH-BTC"],
        channels=["trades", "book"],
        ws_url="ws://127.0.0.1:9/",
        rest_url="http://127.0.0.1:9",
        options={"trade_stream": "aggTrade", "depth_speed": "1000ms"},
    )
    adapter = BinanceAdapter(config)
    update = {"e": "depthUpdate", "E": 1, "s": "ETHBTC", "U": 1, "u": 2, "b": [], "a": []}

    [spec] = adapter.connections()
    [request] = adapter.on_message(spec, frame("ethbtc@depth", update), T0).rest

    assert spec.url == "ws://127.0.0.1:9/stream?streams=ethbtc@aggTrade/ethbtc@depth"
    assert request == RestRequest(
        "depth", "ETHBTC", "http://127.0.0.1:9/api/v3/depth?symbol=ETHBTC&limit=1000"
    )


@pytest.mark.parametrize(
    "change",
    [
        {"symbols": []},
        {"symbols": ["BTCUSDT"]},
        {"symbols": ["btc-usdt"]},
        {"symbols": ["BTC/USDT"]},
        {"symbols": ["BTC-"]},
        {"symbols": ["BT-CUSDT", "BTC-USDT"]},
        {"venue": "okx"},
        {"channels": []},
        {"channels": ["candles"]},
        {"options": {"trade_stream": "bookTicker"}},
        {"options": {"speed": "fast"}},
    ],
)
def test_adapter_with_impossible_config_raises_config_error(change: dict[str, Any]) -> None:
    fields: dict[str, Any] = {"venue": "binance", "symbols": ["BTC-USDT"]} | change

    with pytest.raises(ConfigError):
        BinanceAdapter(VenueConfig(**fields))


def test_config_from_capture_with_recorded_url_derives_symbols_channels_and_options() -> None:
    url = (
        "wss://stream.binance.com:9443/stream?streams=nknusdt@depth@100ms/runeeur@depth@100ms/"
        "nknusdt@bookTicker/lrcbtc@kline_1m/blzeth@aggTrade/1inchfdusd@aggTrade"
    )
    sent = ['{"method":"SUBSCRIBE","params":["btcusdt@bookTicker"],"id":1}', "not json"]

    config = BinanceAdapter.config_from_capture(url, sent)
    adapter = BinanceAdapter(config)

    assert config.symbols == [
        "NKN-USDT",
        "RUNE-EUR",
        "LRC-BTC",
        "BLZ-ETH",
        "1INCH-FDUSD",
        "BTC-USDT",
    ]
    assert config.channels == ["trades", "quotes", "book", "bars"]
    assert config.options == {"depth_speed": "100ms", "trade_stream": "aggTrade"}
    assert adapter.rest_key("https://api.binance.com/api/v3/depth?symbol=NKNUSDT&limit=1000") == (
        "depth",
        "NKNUSDT",
    )
    assert adapter.rest_key("https://api.binance.com/api/v3/exchangeInfo") is None


def test_config_from_capture_with_unknown_quote_asset_raises_config_error() -> None:
    with pytest.raises(ConfigError):
        BinanceAdapter.config_from_capture(
            "wss://stream.binance.com:9443/stream?streams=abcxyz@trade", []
        )


# -- trades, quotes, bars --------------------------------------------------------------------


def test_trade_stream_with_trade_frame_produces_trade() -> None:
    adapter = make_adapter()
    [conn] = adapter.connections()
    data = {
        "e": "trade",
        "E": 1700000000100,
        "s": "BTCUSDT",
        "t": 12345,
        "p": "43000.10",
        "q": "0.00120000",
        "b": 88,
        "a": 50,
        "T": 1700000000099,
        "m": True,
        "M": True,
    }

    out = adapter.on_message(conn, frame("btcusdt@trade", data), T0)

    assert out.events == [
        Trade(
            instrument=INSTRUMENT,
            exchange_ts_ns=1700000000099_000_000,
            receive_ts_ns=T0,
            trade_id="12345",
            price="43000.10",
            size="0.00120000",
            side="sell",
        )
    ]
    assert out.problems == []


def test_agg_trade_stream_with_agg_trade_frame_produces_trade() -> None:
    adapter = make_adapter(trade_stream="aggTrade")
    [conn] = adapter.connections()
    data = {
        "e": "aggTrade",
        "E": 1633998523963,
        "s": "BTCUSDT",
        "a": 15683430,
        "p": "0.35280000",
        "q": "58.00000000",
        "f": 19862790,
        "l": 19862790,
        "T": 1633998523963,
        "m": False,
        "M": True,
    }

    [trade] = adapter.on_message(conn, frame("btcusdt@aggTrade", data), T0).events

    assert trade == Trade(
        instrument=INSTRUMENT,
        exchange_ts_ns=1633998523963_000_000,
        receive_ts_ns=T0,
        trade_id="15683430",
        price="0.35280000",
        size="58.00000000",
        side="buy",
    )


def test_book_ticker_with_frame_produces_quote_stamped_at_receive_time() -> None:
    adapter = make_adapter()
    [conn] = adapter.connections()
    full = {
        "u": 400900217,
        "s": "BTCUSDT",
        "b": "25.35190000",
        "B": "31.21000000",
        "a": "25.36520000",
        "A": "40.66000000",
    }
    empty_ask = full | {"u": 400900218, "a": "0.00000000", "A": "0.00000000"}

    [quote] = adapter.on_message(conn, frame("btcusdt@bookTicker", full), T0).events
    [one_sided] = adapter.on_message(conn, frame("btcusdt@bookTicker", empty_ask), T0 + 5).events

    assert quote == Quote(
        instrument=INSTRUMENT,
        exchange_ts_ns=T0,
        receive_ts_ns=T0,
        bid_price="25.35190000",
        bid_size="31.21000000",
        ask_price="25.36520000",
        ask_size="40.66000000",
    )
    assert isinstance(one_sided, Quote)
    assert (one_sided.bid_price, one_sided.ask_price, one_sided.ask_size) == (
        "25.35190000",
        None,
        None,
    )


def test_kline_with_running_then_closed_bar_produces_one_bar() -> None:
    adapter = make_adapter()
    [conn] = adapter.connections()
    kline = {
        "t": 1672515780000,
        "T": 1672515839999,
        "s": "BTCUSDT",
        "i": "1m",
        "f": 100,
        "L": 200,
        "o": "0.0010",
        "c": "0.0020",
        "h": "0.0025",
        "l": "0.0015",
        "v": "1000",
        "n": 100,
        "x": False,
        "q": "1.0000",
        "V": "500",
        "Q": "0.500",
        "B": "123456",
    }
    running = {"e": "kline", "E": 1672515800000, "s": "BTCUSDT", "k": kline}
    closed = running | {"E": 1672515840001, "k": kline | {"x": True}}

    first = adapter.on_message(conn, frame("btcusdt@kline_1m", running), T0)
    second = adapter.on_message(conn, frame("btcusdt@kline_1m", closed), T0 + 1)

    assert first.events == [] and first.problems == []
    assert second.events == [
        Bar(
            instrument=INSTRUMENT,
            exchange_ts_ns=1672515840001_000_000,
            receive_ts_ns=T0 + 1,
            interval="1m",
            start_ts_ns=1672515780000_000_000,
            open="0.0010",
            high="0.0025",
            low="0.0015",
            close="0.0020",
            volume="1000",
            trade_count=100,
        )
    ]


# -- book sync -------------------------------------------------------------------------------


def test_depth_with_events_before_snapshot_publishes_nothing_and_requests_snapshot_once() -> None:
    adapter = make_adapter()
    [conn] = adapter.connections()
    adapter.on_open(conn, T0)

    outs = [adapter.on_message(conn, depth(u, u, [("100.5", "1")]), T0 + u) for u in (5, 6, 7)]

    assert [len(out.rest) for out in outs] == [1, 0, 0]
    assert outs[0].rest[0].url == ("https://api.binance.com/api/v3/depth?symbol=BTCUSDT&limit=1000")
    assert of_type(outs, BookDelta) == [] and of_type(outs, BookSnapshot) == []
    assert problem_kinds(outs) == []


def test_snapshot_with_stale_buffered_events_drops_them_and_applies_the_straddling_one() -> None:
    adapter = make_adapter()
    [conn] = adapter.connections()
    adapter.on_open(conn, T0)
    [request] = adapter.on_message(conn, depth(95, 98, [("100.00", "7.0")]), T0).rest
    adapter.on_message(conn, depth(99, 100, [("99.00", "8.0")]), T0 + 1)
    adapter.on_message(conn, depth(101, 103, [("100.50", "3.0")], [("101.00", "0")]), T0 + 2)
    adapter.on_message(conn, depth(104, 104, [], [("101.50", "4.0")]), T0 + 3)

    out = adapter.on_rest_reply(request, 200, snapshot_body(101), T0 + 4)

    [snapshot] = of_type(out, BookSnapshot)
    # 95..98 and 99..100 are in the snapshot already; 101..103 straddles 102; 104 follows.
    assert snapshot.sequence == 104
    assert snapshot.bids == [("100.50", "3.0"), ("100.00", "1.0"), ("99.00", "2.0")]
    assert snapshot.asks == [("101.50", "4.0"), ("102.00", "2.0")]
    assert best(adapter) == (("100.50", "3.0"), ("101.50", "4.0"))
    assert problem_kinds(out) == []

    [delta] = of_type(
        adapter.on_message(conn, depth(105, 105, [("100.60", "1")]), T0 + 5), BookDelta
    )
    assert delta.bids == [("100.60", "1")] and delta.sequence == 105


def test_snapshot_newer_than_buffer_publishes_it_then_skips_events_it_contains() -> None:
    adapter = make_adapter()
    [conn] = adapter.connections()
    adapter.on_open(conn, T0)
    [request] = adapter.on_message(conn, depth(90, 95), T0).rest

    out = adapter.on_rest_reply(request, 200, snapshot_body(110), T0 + 1)
    stale = adapter.on_message(conn, depth(96, 110, [("50.00", "9")]), T0 + 2)
    straddling = adapter.on_message(conn, depth(108, 112, [("100.00", "5.0")]), T0 + 3)
    following = adapter.on_message(conn, depth(113, 113, [], [("101.00", "0")]), T0 + 4)

    assert [s.sequence for s in of_type(out, BookSnapshot)] == [110]
    assert stale.events == [] and stale.problems == []
    assert [d.sequence for d in of_type([straddling, following], BookDelta)] == [112, 113]
    assert best(adapter) == (("100.00", "5.0"), ("102.00", "2.0"))


def test_snapshot_older_than_buffered_events_is_fetched_again() -> None:
    adapter = make_adapter()
    [conn] = adapter.connections()
    adapter.on_open(conn, T0)
    [request] = adapter.on_message(conn, depth(120, 121), T0).rest

    too_old = adapter.on_rest_reply(request, 200, snapshot_body(110), T0 + 1)
    [again] = too_old.rest
    fresh = adapter.on_rest_reply(again, 200, snapshot_body(121), T0 + 2)

    assert of_type(too_old, BookSnapshot) == []
    assert [s.sequence for s in of_type(fresh, BookSnapshot)] == [121]


def test_depth_with_sequence_gap_emits_gap_and_resyncs_from_new_snapshot() -> None:
    adapter, conn = synced_adapter()
    adapter.on_message(conn, depth(102, 102, [("100.00", "3.0")]), T0 + 2)

    gapped = adapter.on_message(conn, depth(105, 106, [("100.20", "1.0")]), T0 + 3)
    held = adapter.on_message(conn, depth(107, 107, [("100.30", "1.0")]), T0 + 4)
    resynced = adapter.on_rest_reply(gapped.rest[0], 200, snapshot_body(105), T0 + 5)

    [gap] = of_type(gapped, Gap)
    assert gap.instrument == INSTRUMENT and "105" in gap.reason
    assert problem_kinds(gapped) == ["sequence_error"]
    assert [r.symbol for r in gapped.rest] == ["BTCUSDT"]
    assert of_type([gapped, held], BookDelta) == []
    [snapshot] = of_type(resynced, BookSnapshot)
    # The new snapshot (105) plus the buffered 105..106 and 107.
    assert snapshot.sequence == 107
    assert best(adapter) == (("100.30", "1.0"), ("101.00", "1.0"))


def test_depth_with_crossing_update_reports_crossed_book_and_resyncs() -> None:
    adapter, conn = synced_adapter()

    crossed = adapter.on_message(conn, depth(102, 102, [("101.50", "1.0")]), T0 + 2)
    held = adapter.on_message(conn, depth(103, 103, [("99.50", "1.0")]), T0 + 3)

    assert problem_kinds(crossed) == ["crossed_book"]
    assert [gap.instrument for gap in of_type(crossed, Gap)] == [INSTRUMENT]
    assert of_type([crossed, held], BookDelta) == []
    assert len(crossed.rest) == 1
    assert not adapter.books[INSTRUMENT]


def test_snapshot_reply_with_error_status_reports_exchange_error_and_refetches_later() -> None:
    adapter = make_adapter()
    [conn] = adapter.connections()
    adapter.on_open(conn, T0)
    [request] = adapter.on_message(conn, depth(1, 1), T0).rest
    busy = json.dumps({"code": -1003, "msg": "Too many requests."}).encode()

    failed = adapter.on_rest_reply(request, 429, busy, T0)
    soon = adapter.on_message(conn, depth(2, 2), T0 + SECOND // 2)
    later = adapter.on_message(conn, depth(3, 3), T0 + 2 * SECOND)
    garbled = adapter.on_rest_reply(later.rest[0], 200, b"<html>", T0 + 2 * SECOND)
    retried = adapter.on_message(conn, depth(4, 4), T0 + 3 * SECOND)
    backed_off = adapter.on_message(conn, depth(5, 5), T0 + 5 * SECOND)

    assert problem_kinds(failed) == ["exchange_error"] and failed.rest == []
    assert soon.rest == []
    assert len(later.rest) == 1
    assert problem_kinds(garbled) == ["parse_error"]
    assert retried.rest == [] and len(backed_off.rest) == 1
    assert of_type([failed, soon, later, garbled, retried, backed_off], BookSnapshot) == []


def test_snapshot_with_a_bad_level_reports_parse_error_keeps_book_empty_and_refetches() -> None:
    adapter = make_adapter()
    [conn] = adapter.connections()
    adapter.on_open(conn, T0)
    [request] = adapter.on_message(conn, depth(1, 1), T0).rest
    body = json.loads(snapshot_body(5))
    body["asks"].append(["-101.00", "1.0"])

    bad = adapter.on_rest_reply(request, 200, json.dumps(body).encode(), T0)
    after_bad = best(adapter)
    later = adapter.on_message(conn, depth(2, 2), T0 + 2 * SECOND)
    good = adapter.on_rest_reply(later.rest[0], 200, snapshot_body(5), T0 + 2 * SECOND)

    assert problem_kinds(bad) == ["parse_error"] and "-101.00" in bad.problems[0].detail
    assert of_type(bad, BookSnapshot) == [] and after_bad == (None, None)
    assert [s.sequence for s in of_type(good, BookSnapshot)] == [5]
    assert best(adapter) == (("100.00", "1.0"), ("101.00", "1.0"))


def test_snapshot_reply_with_invalid_symbol_stops_subscribing_to_it() -> None:
    adapter = make_adapter(["BTC-USDT", "NOPE-USDT"], ["trades", "book"])
    [conn] = adapter.connections()
    adapter.on_open(conn, T0)
    nope_depth = frame(
        "nopeusdt@depth@100ms",
        {"e": "depthUpdate", "E": 1, "s": "NOPEUSDT", "U": 1, "u": 1, "b": [], "a": []},
    )
    [request] = adapter.on_message(conn, nope_depth, T0).rest
    invalid = json.dumps({"code": -1121, "msg": "Invalid symbol."}).encode()

    out = adapter.on_rest_reply(request, 400, invalid, T0 + 1)
    after = adapter.on_message(conn, nope_depth, T0 + 2)
    reopened = adapter.on_open(conn, T0 + 3)

    [problem] = out.problems
    assert (problem.kind, problem.instrument) == ("exchange_error", "binance:NOPE-USDT")
    [unsubscribe] = [json.loads(text) for text in out.send]
    assert unsubscribe["method"] == "UNSUBSCRIBE"
    assert unsubscribe["params"] == ["nopeusdt@trade", "nopeusdt@depth@100ms"]
    assert after.rest == [] and after.problems == []
    assert [json.loads(text)["method"] for text in reopened.send] == ["UNSUBSCRIBE"]
    assert [spec.symbols for spec in adapter.connections()] == [("BTC-USDT",)]
    ack = adapter.on_message(conn, json.dumps({"result": None, "id": unsubscribe["id"]}), T0 + 4)
    assert ack.problems == [] and ack.events == []


def test_close_with_synced_book_emits_gap_and_needs_a_new_snapshot() -> None:
    adapter, conn = synced_adapter()

    closed = adapter.on_close(conn, "ConnectionClosedError: no close frame", T0 + 2)
    adapter.on_open(conn, T0 + 3)
    after = adapter.on_message(conn, depth(102, 102, [("100.10", "1")]), T0 + 4)

    assert [gap.instrument for gap in of_type(closed, Gap)] == [INSTRUMENT]
    assert not adapter.books[INSTRUMENT]
    assert of_type(after, BookDelta) == [] and len(after.rest) == 1


# -- rotation without a gap ---------------------------------------------------------------


def trade_frame(trade_id: int, price: str = "100.50") -> str:
    data = {
        "e": "trade",
        "E": 1,
        "s": "BTCUSDT",
        "t": trade_id,
        "p": price,
        "q": "1",
        "T": 1,
        "m": False,
    }
    return frame("btcusdt@trade", data)


def ticker_frame(update_id: int, bid: str = "100.00") -> str:
    data = {"u": update_id, "s": "BTCUSDT", "b": bid, "B": "1", "a": "101.00", "A": "1"}
    return frame("btcusdt@bookTicker", data)


def kline_frame(start_ms: int, *, closed: bool = True) -> str:
    kline = {
        "t": start_ms,
        "T": start_ms + 59_999,
        "s": "BTCUSDT",
        "i": "1m",
        "f": 1,
        "L": 1,
        "o": "1",
        "c": "1",
        "h": "1",
        "l": "1",
        "v": "1",
        "n": 1,
        "x": closed,
        "q": "1",
        "V": "0",
        "Q": "0",
        "B": "0",
    }
    return frame(
        "btcusdt@kline_1m", {"e": "kline", "E": start_ms + 60_000, "s": "BTCUSDT", "k": kline}
    )


def test_replacement_frames_repeating_the_old_connection_are_dropped_by_their_ids() -> None:
    adapter, conn = synced_adapter()
    old = [
        depth(102, 102, [("100.10", "1")]),
        trade_frame(7),
        ticker_frame(102),
        kline_frame(60_000),
        depth(103, 104, [("100.20", "1")]),
        trade_frame(8),
        ticker_frame(104),
    ]
    # The replacement began before the old connection's last frames and repeats them, then
    # goes on; a running bar and a closed one already published come again too.
    new = [
        trade_frame(8),
        ticker_frame(104),
        depth(103, 104, [("100.20", "1")]),
        kline_frame(60_000),
        kline_frame(120_000, closed=False),
        depth(105, 105, [], [("101.00", "0")]),
        trade_frame(9),
        ticker_frame(105),
        kline_frame(120_000),
    ]

    before = [adapter.on_message(conn, text, T0 + 2) for text in old]
    opening = adapter.on_replacement_open(conn, T0 + 3)
    after = [adapter.on_message(conn, text, T0 + 4) for text in new]

    outs = [*before, *after]
    assert opening.send == []
    assert [t.trade_id for t in of_type(outs, Trade)] == ["7", "8", "9"]
    assert [d.sequence for d in of_type(outs, BookDelta)] == [102, 104, 105]
    assert len(of_type(outs, Quote)) == 3
    assert [b.start_ts_ns for b in of_type(outs, Bar)] == [60_000 * 1_000_000, 120_000 * 1_000_000]
    assert problem_kinds(outs) == [] and of_type(outs, Gap) == []
    assert best(adapter) == (("100.20", "1"), ("102.00", "2.0"))


def test_replacement_repeating_buffered_depth_updates_before_the_snapshot_syncs_cleanly() -> None:
    adapter = make_adapter()
    [conn] = adapter.connections()
    adapter.on_open(conn, T0)
    [request] = adapter.on_message(conn, depth(101, 101, [("100.10", "1")]), T0).rest
    adapter.on_message(conn, depth(102, 102, [("100.20", "1")]), T0 + 1)
    repeats = [adapter.on_message(conn, depth(u, u, [("100.10", "1")]), T0 + 2) for u in (101, 102)]
    adapter.on_message(conn, depth(103, 103, [("100.30", "1")]), T0 + 3)

    out = adapter.on_rest_reply(request, 200, snapshot_body(100), T0 + 4)

    [snapshot] = of_type(out, BookSnapshot)
    assert snapshot.sequence == 103
    assert problem_kinds([*repeats, out]) == [] and [r.rest for r in repeats] == [[], []]
    assert best(adapter) == (("100.30", "1"), ("101.00", "1.0"))


def test_replacement_open_unsubscribes_rejected_symbols_and_keeps_the_books() -> None:
    adapter = make_adapter(["BTC-USDT", "NOPE-USDT"], ["trades", "book"])
    [conn] = adapter.connections()
    adapter.on_open(conn, T0)
    [btc_request] = adapter.on_message(conn, depth(101, 101), T0).rest
    adapter.on_rest_reply(btc_request, 200, snapshot_body(101), T0)
    nope_depth = frame(
        "nopeusdt@depth@100ms",
        {"e": "depthUpdate", "E": 1, "s": "NOPEUSDT", "U": 1, "u": 1, "b": [], "a": []},
    )
    [nope_request] = adapter.on_message(conn, nope_depth, T0).rest
    invalid = json.dumps({"code": -1121, "msg": "Invalid symbol."}).encode()
    adapter.on_rest_reply(nope_request, 400, invalid, T0 + 1)

    opening = adapter.on_replacement_open(conn, T0 + 2)

    [unsubscribe] = [json.loads(text) for text in opening.send]
    assert unsubscribe["method"] == "UNSUBSCRIBE"
    assert unsubscribe["params"] == ["nopeusdt@trade", "nopeusdt@depth@100ms"]
    assert best(adapter) == (("100.00", "1.0"), ("101.00", "1.0"))
    assert BinanceAdapter.rotation == "overlap"


# -- bad input -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "kind"),
    [
        ("{not json", "parse_error"),
        (b"\xff\xfe", "parse_error"),
        ("[1, 2]", "parse_error"),
        ("{}", "unknown_message"),
        (frame("btcusdt@ticker", {"e": "24hrTicker"}), "unknown_message"),
        (frame("btcusdt@trade", {"e": "24hrMiniTicker", "E": 1}), "unknown_message"),
        (json.dumps({"stream": "btcusdt@trade"}), "parse_error"),
        (frame("btcusdt@trade", {"e": "trade", "t": 1, "p": "1", "q": "1", "T": 1}), "parse_error"),
        (
            frame("btcusdt@trade", {"e": "trade", "t": 1, "p": "-5", "q": "1", "T": 1, "m": True}),
            "parse_error",
        ),
        (
            frame("btcusdt@trade", {"e": "trade", "t": 1, "p": "abc", "q": "1", "T": 1, "m": True}),
            "parse_error",
        ),
        (
            frame("btcusdt@bookTicker", {"u": 1, "b": "1", "B": "1", "a": "x", "A": "1"}),
            "parse_error",
        ),
        (frame("btcusdt@kline_1m", {"e": "kline", "E": 1, "k": {"x": True}}), "parse_error"),
        (depth(102, 102, [("100", "NaN")]), "parse_error"),
        (depth(102, 102, [("0", "1")]), "parse_error"),
    ],
)
def test_frame_with_bad_content_is_counted_and_skipped_while_adapter_keeps_working(
    raw: str | bytes, kind: str
) -> None:
    adapter, conn = synced_adapter()
    trade = {"e": "trade", "E": 1, "s": "BTCUSDT", "t": 7, "p": "1.5", "q": "2", "T": 1, "m": False}

    bad = adapter.on_message(conn, raw, T0 + 2)
    good_trade = adapter.on_message(conn, frame("btcusdt@trade", trade), T0 + 3)
    good_depth = adapter.on_message(conn, depth(102, 102, [("100.10", "1")]), T0 + 4)

    assert problem_kinds(bad) == [kind] and bad.events == [] and bad.rest == []
    assert [t.trade_id for t in of_type(good_trade, Trade)] == ["7"]
    assert [d.sequence for d in of_type(good_depth, BookDelta)] == [102]
    assert best(adapter) == (("100.10", "1"), ("101.00", "1.0"))


@pytest.mark.parametrize(
    "reply",
    [
        {"code": 2, "msg": "Invalid request: request ID must be an unsigned integer"},
        {"error": {"code": 2, "msg": "Invalid request: invalid stream"}, "id": 1},
        {"code": 3, "msg": "Invalid JSON: expected value at line 1 column 1", "id": 4},
    ],
)
def test_error_reply_in_either_shape_becomes_exchange_error(reply: dict[str, Any]) -> None:
    adapter = make_adapter()
    [conn] = adapter.connections()

    out = adapter.on_message(conn, json.dumps(reply), T0)

    assert problem_kinds(out) == ["exchange_error"]
    assert out.problems[0].detail.startswith(f"error {reply.get('code', 2)}:")
    assert out.reconnect is None


def test_server_shutdown_notice_asks_for_reconnect() -> None:
    adapter = make_adapter()
    [conn] = adapter.connections()
    notice = {"e": "serverShutdown", "E": 1700000000000}

    raw = adapter.on_message(conn, json.dumps(notice), T0)
    combined = adapter.on_message(conn, frame("!serverShutdown", notice), T0)

    assert raw.reconnect and combined.reconnect
    assert problem_kinds([raw, combined]) == []


# -- recorded traffic ------------------------------------------------------------------------


def _independent_final_books(ws_file: Path, http_file: Path) -> dict[str, tuple[str, str]]:
    """Best bid/ask per venue symbol from the recorded snapshot plus every later diff, with
    the documented rules and Decimal dictionaries: no code shared with the adapter."""
    snapshots = {
        line.url.partition("symbol=")[2].partition("&")[0]: json.loads(line.text)
        for line in read_capture(http_file)
    }
    books = {
        symbol: (
            {Decimal(p): (p, q) for p, q in snap["bids"]},
            {Decimal(p): (p, q) for p, q in snap["asks"]},
        )
        for symbol, snap in snapshots.items()
    }
    last = {symbol: snap["lastUpdateId"] for symbol, snap in snapshots.items()}
    applied: set[str] = set()
    for line in read_capture(ws_file):
        if line.kind != "received":
            continue
        data = json.loads(line.text)["data"]
        if data.get("e") != "depthUpdate" or data["u"] <= last[data["s"]]:
            continue
        symbol = data["s"]
        if symbol in applied:
            assert data["U"] == last[symbol] + 1
        else:
            assert data["U"] <= last[symbol] + 1 <= data["u"]
            applied.add(symbol)
        for side, levels in zip(books[symbol], (data["b"], data["a"]), strict=True):
            for price, size in levels:
                if Decimal(size) == 0:
                    side.pop(Decimal(price), None)
                else:
                    side[Decimal(price)] = (price, size)
        last[symbol] = data["u"]
    return {s: (bids[max(bids)][0], asks[min(asks)][0]) for s, (bids, asks) in books.items()}


def _published_books_at_tickers(events: list[AnyEvent], tickers: dict[str, dict[int, str]]) -> int:
    """Rebuild each book from the published snapshots and deltas; wherever a recorded
    bookTicker has the same update id as a delta, the rebuilt top must equal the ticker's."""
    books: dict[str, tuple[dict[Decimal, str], dict[Decimal, str]]] = {}
    matched = 0
    for event in events:
        if isinstance(event, BookSnapshot):
            books[event.instrument] = ({}, {})
        if isinstance(event, BookSnapshot | BookDelta):
            bids, asks = books[event.instrument]
            for side, levels in ((bids, event.bids), (asks, event.asks)):
                for price, size in levels:
                    if Decimal(size) == 0:
                        side.pop(Decimal(price), None)
                    else:
                        side[Decimal(price)] = price
            ticker = tickers.get(event.instrument, {}).get(event.sequence or -1)
            if ticker is not None:
                assert f"{bids[max(bids)]}/{asks[min(asks)]}" == ticker
                matched += 1
    return matched


def test_replay_with_recorded_binance_session_keeps_every_book_consistent() -> None:
    ws_file = CAPTURES / "BINANCE.ws.1.0"
    http_file = CAPTURES / "BINANCE.http.0.0"
    if not (ws_file.exists() and http_file.exists()):
        pytest.skip(f"recorded captures not found under {CAPTURES}")
    frames = [json.loads(line.text) for line in read_capture(ws_file) if line.kind == "received"]
    agg_trades = [f["data"] for f in frames if f["stream"].endswith("@aggTrade")]
    events: list[AnyEvent] = []

    adapter, summary = replay_files(BinanceAdapter, ws_file, [http_file], sink=events.extend)

    instruments = {s.replace("-", ""): f"binance:{s}" for s in adapter.config.symbols}
    tickers: dict[str, dict[int, str]] = {}
    for f in frames:
        if f["stream"].endswith("@bookTicker"):
            data = f["data"]
            tickers.setdefault(instruments[data["s"]], {})[data["u"]] = f"{data['b']}/{data['a']}"

    report = summary.as_dict(adapter)
    assert report["frames"] == 265
    assert (report["sequence_errors"], report["parse_errors"], report["unknown_messages"]) == (
        0,
        0,
        0,
    )
    assert report["other_problems"] == {} and report["gaps"] == 0
    assert report["unanswered_requests"] == []
    trades = [event for event in events if isinstance(event, Trade)]
    assert len(trades) == len(agg_trades) == 2
    assert [(t.trade_id, t.price, t.size) for t in trades] == [
        (str(a["a"]), a["p"], a["q"]) for a in agg_trades
    ]
    expected = _independent_final_books(ws_file, http_file)
    assert sorted(expected) == ["BLZETH", "LRCBTC", "NKNUSDT", "RUNEEUR"]
    for symbol, (bid, ask) in expected.items():
        instrument = instruments[symbol]
        assert report["instruments"][instrument]["best_bid"] == bid
        assert report["instruments"][instrument]["best_ask"] == ask
        assert report["instruments"][instrument]["events"]["book_snapshot"] == 1
        assert Decimal(bid) < Decimal(ask)
    assert _published_books_at_tickers(events, tickers) > 0


# -- a live socket ---------------------------------------------------------------------------


class Collector:
    """The ``emit`` of a runner: keeps every Output for the test to inspect."""

    def __init__(self) -> None:
        self.outputs: list[Output] = []

    def __call__(self, out: Output) -> None:
        self.outputs.append(out)

    def events(self, kind: type[E]) -> list[E]:
        return of_type(self.outputs, kind)

    def problems(self) -> list[str]:
        return problem_kinds(self.outputs)


async def wait_until(predicate: Callable[[], bool], timeout_s: float = 5.0) -> None:
    async with asyncio.timeout(timeout_s):
        while not predicate():
            await asyncio.sleep(0.005)


@asynccontextmanager
async def running(
    adapter: BinanceAdapter,
    *,
    max_age_s: float | None = None,
    capture: CaptureWriter | None = None,
) -> AsyncIterator[tuple[ConnectionRunner, Collector]]:
    """A runner on the adapter's connection; ``max_age_s`` shortens its age limit."""
    [spec] = adapter.connections()
    if max_age_s is not None:
        spec = replace(spec, max_age_s=max_age_s)
    collector = Collector()
    stop = asyncio.Event()
    async with httpx.AsyncClient() as http:
        runner = ConnectionRunner(
            adapter,
            spec,
            collector,
            http=http,
            backoff=Backoff(base_s=0.01, cap_s=0.05),
            capture=capture,
        )
        task = asyncio.create_task(runner.run(stop))
        try:
            yield runner, collector
        finally:
            stop.set()
            await asyncio.wait_for(task, timeout=5)


def live_adapter(
    server: BinanceServer,
    symbols: Iterable[str] = ("BTC-USDT",),
    adapter_type: type[BinanceAdapter] = BinanceAdapter,
    **options: str,
) -> BinanceAdapter:
    config = VenueConfig(
        venue="binance",
        symbols=list(symbols),
        channels=["trades", "quotes", "book", "bars"],
        ws_url=server.ws_url,
        rest_url=server.rest_url,
        options=options,
    )
    return adapter_type(config)


async def test_runner_with_dropped_connection_reconnects_resubscribes_and_resyncs() -> None:
    async with BinanceServer() as server:
        server.add_market("BTCUSDT", SNAPSHOT_BIDS, SNAPSHOT_ASKS, update_id=500)
        adapter = live_adapter(server)
        async with running(adapter) as (runner, collector):
            first = await server.wait_for_sessions(1)
            await server.depth_update("BTCUSDT", [("100.50", "1.5")], [])
            await wait_until(lambda: len(collector.events(BookSnapshot)) == 1)
            await server.depth_update("BTCUSDT", [], [("101.00", "0")])
            await server.trade("BTCUSDT", 1, "100.75", "0.5")
            await server.kline("BTCUSDT", 1_700_000_040_000, ("100", "101", "99", "100.75", "7"))
            await server.book_ticker("BTCUSDT")
            await wait_until(lambda: collector.events(Quote) != [])
            assert best(adapter) == (("100.50", "1.5"), ("102.00", "2.0"))
            [quote] = collector.events(Quote)
            assert (quote.bid_price, quote.ask_price) == ("100.50", "102.00")
            assert [t.price for t in collector.events(Trade)] == ["100.75"]
            assert [b.close for b in collector.events(Bar)] == ["100.75"]

            await server.drop_connections()
            second = await server.wait_for_sessions(2)
            await server.depth_update("BTCUSDT", [("100.60", "2")], [])
            await wait_until(lambda: len(collector.events(BookSnapshot)) == 2)
            await server.depth_update("BTCUSDT", [], [("101.90", "0.1")])
            await wait_until(lambda: collector.events(BookDelta)[-1].asks == [("101.90", "0.1")])

            assert (
                second.streams
                == first.streams
                == {
                    "btcusdt@trade",
                    "btcusdt@bookTicker",
                    "btcusdt@depth@100ms",
                    "btcusdt@kline_1m",
                }
            )
            assert runner.stats.reconnects == 1
            assert [gap.instrument for gap in collector.events(Gap)] == [INSTRUMENT]
            assert server.snapshot_requests == ["BTCUSDT", "BTCUSDT"]
            assert best(adapter) == server.best("BTCUSDT") == (("100.60", "2"), ("101.90", "0.1"))
            assert collector.problems() == []


async def test_runner_with_sequence_gap_and_garbage_resyncs_without_reconnecting() -> None:
    async with BinanceServer() as server:
        server.add_market("BTCUSDT", SNAPSHOT_BIDS, SNAPSHOT_ASKS)
        adapter = live_adapter(server, trade_stream="aggTrade")
        async with running(adapter) as (runner, collector):
            await server.wait_for_sessions(1)
            await server.depth_update("BTCUSDT", [("100.50", "1.5")], [])
            await wait_until(lambda: len(collector.events(BookSnapshot)) == 1)

            await server.send_raw("{garbage")
            await server.send_raw(json.dumps({"stream": "btcusdt@depth@100ms", "data": 5}))
            await server.send_raw(json.dumps({"stream": "ethusdt@trade", "data": {}}))
            await server.depth_update("BTCUSDT", [("100.70", "1")], [], skip=3)
            await wait_until(lambda: len(collector.events(BookSnapshot)) == 2)
            await server.depth_update("BTCUSDT", [], [("100.90", "4")])
            await server.trade("BTCUSDT", 9, "100.80", "0.25", aggregate=True, buyer_is_maker=True)
            await wait_until(lambda: collector.events(Trade) != [])

            assert sorted(collector.problems()) == [
                "parse_error",
                "parse_error",
                "sequence_error",
                "unknown_message",
            ]
            assert runner.stats.problems["sequence_error"] == 1
            assert runner.stats.reconnects == 0 and len(server.sessions) == 1
            assert [gap.instrument for gap in collector.events(Gap)] == [INSTRUMENT]
            assert best(adapter) == server.best("BTCUSDT") == (("100.70", "1"), ("100.90", "4"))
            [trade] = collector.events(Trade)
            assert (trade.trade_id, trade.side) == ("9", "sell")


async def test_runner_with_unknown_symbol_unsubscribes_it_and_keeps_the_rest() -> None:
    async with BinanceServer() as server:
        server.add_market("BTCUSDT", SNAPSHOT_BIDS, SNAPSHOT_ASKS)
        server.add_market("NOPEUSDT", [("1", "1")], [("2", "1")])
        adapter = live_adapter(server, ["BTC-USDT", "NOPE-USDT"])
        async with running(adapter) as (_, collector):
            session = await server.wait_for_sessions(1)
            # Binance would not know it; the server only pretends to have its stream.
            server.fail_snapshot("NOPEUSDT", 400, {"code": -1121, "msg": "Invalid symbol."})
            await server.depth_update("NOPEUSDT", [("1", "2")], [])
            await wait_until(lambda: "nopeusdt@depth@100ms" not in session.streams)
            await server.depth_update("BTCUSDT", [("100.50", "1.5")], [])
            await wait_until(lambda: len(collector.events(BookSnapshot)) == 1)

            assert [p.instrument for o in collector.outputs for p in o.problems] == [
                "binance:NOPE-USDT"
            ]
            assert session.streams == {
                "btcusdt@trade",
                "btcusdt@bookTicker",
                "btcusdt@depth@100ms",
                "btcusdt@kline_1m",
            }
            assert [json.loads(t)["method"] for t in session.sent] == ["UNSUBSCRIBE"]
            assert [s.symbols for s in adapter.connections()] == [("BTC-USDT",)]


async def test_runner_with_error_reply_to_unsubscribe_counts_exchange_error() -> None:
    async with BinanceServer() as server:
        server.add_market("BTCUSDT", SNAPSHOT_BIDS, SNAPSHOT_ASKS)
        adapter = live_adapter(server, ["BTC-USDT", "NOPE-USDT"])
        async with running(adapter) as (runner, collector):
            await server.wait_for_sessions(1)
            server.fail_next_request(2, "Invalid request: too many parameters")
            server.add_market("NOPEUSDT", [("1", "1")], [("2", "1")])
            server.fail_snapshot("NOPEUSDT", 400, {"code": -1121, "msg": "Invalid symbol."})
            await server.depth_update("NOPEUSDT", [("1", "2")], [])
            await wait_until(lambda: runner.stats.problems["exchange_error"] == 2)

            details = [p.detail for o in collector.outputs for p in o.problems]
            assert "too many parameters" in details[1]


class QuickWatchdogAdapter(BinanceAdapter):
    silence_timeout_s = 0.3


async def test_runner_with_silent_venue_reconnects_through_the_watchdog() -> None:
    async with BinanceServer() as server:
        server.add_market("BTCUSDT", SNAPSHOT_BIDS, SNAPSHOT_ASKS)
        adapter = live_adapter(server, adapter_type=QuickWatchdogAdapter)
        async with running(adapter) as (runner, collector):
            await server.wait_for_sessions(1)
            await server.depth_update("BTCUSDT", [("100.50", "1.5")], [])
            await wait_until(lambda: len(collector.events(BookSnapshot)) == 1)

            server.silent = True
            await server.wait_for_sessions(2)
            server.silent = False
            await server.depth_update("BTCUSDT", [("100.40", "1")], [])
            await wait_until(lambda: len(collector.events(BookSnapshot)) == 2)

            [gap] = collector.events(Gap)
            assert "watchdog" in gap.reason
            assert runner.stats.reconnects >= 1
            assert best(adapter) == server.best("BTCUSDT")


# -- rotation at the age limit ---------------------------------------------------------------


async def busy_market(server: BinanceServer, done: asyncio.Event) -> int:
    """Publish on every BTCUSDT stream every couple of milliseconds until ``done``: a depth
    update, a trade (ids 1, 2, ...), the book ticker, and a closed bar every tenth round.
    Returns how many rounds (and trades) there were."""
    rounds = 0
    while not done.is_set():
        rounds += 1
        await server.depth_update("BTCUSDT", [(f"100.{rounds % 50:02d}", str(rounds))], [])
        await server.trade("BTCUSDT", rounds, "100.75", "0.5")
        await server.book_ticker("BTCUSDT")
        if rounds % 10 == 0:
            await server.kline("BTCUSDT", rounds * 60_000, ("100", "101", "99", "100.5", "3"))
        await asyncio.sleep(0.002)
    return rounds


async def test_runner_at_max_age_rotates_make_before_break_without_gap_or_repeat(
    tmp_path: Path,
) -> None:
    capture = CaptureWriter(tmp_path / "binance-0.ws")
    async with BinanceServer() as server:
        server.add_market("BTCUSDT", SNAPSHOT_BIDS, SNAPSHOT_ASKS, update_id=500)
        adapter = live_adapter(server)
        async with running(adapter, max_age_s=0.3, capture=capture) as (runner, collector):
            await server.wait_for_sessions(1)
            done = asyncio.Event()
            market = asyncio.create_task(busy_market(server, done))
            # Two rotations, the second one complete.
            await wait_until(
                lambda: len(server.sessions) >= 3 and len(server.open_sessions) == 1, 10
            )
            done.set()
            rounds = await market
            await wait_until(lambda: collector.events(Trade)[-1].trade_id == str(rounds))

            sessions = list(server.sessions)
            closed = [s for s in sessions if s.connection.close_code is not None]
            [snapshot] = collector.events(BookSnapshot)
            deltas = collector.events(BookDelta)
            assert collector.events(Gap) == [] and collector.problems() == []
            assert [t.trade_id for t in collector.events(Trade)] == [
                str(n) for n in range(1, rounds + 1)
            ]
            assert len(collector.events(Quote)) == rounds
            assert [b.start_ts_ns for b in collector.events(Bar)] == [
                n * 60_000 * 1_000_000 for n in range(10, rounds + 1, 10)
            ]
            last_update_id = server.snapshot("BTCUSDT")["lastUpdateId"]
            assert [d.sequence for d in deltas] == list(
                range(snapshot.sequence + 1, last_update_id + 1)
            )
            assert best(adapter) == server.best("BTCUSDT")
            assert server.snapshot_requests == ["BTCUSDT"]
            # The completed switches count as rotations, none as a reconnect.
            assert runner.stats.reconnects == 0
            assert 2 <= runner.stats.rotations < len(server.sessions)
        capture.close()

    # The old connections were closed (normally) after the switch, and each handed over to one
    # that had been sent some of the same frames: what the adapter dropped.
    assert len(closed) >= 2 and closed == sessions[: len(closed)]
    assert {s.connection.close_code for s in closed} == {1000}
    for old, new in zip(closed, sessions[1:], strict=False):
        assert set(old.published) & set(new.published)
    # The recording replays as one connection: the same trades, no gap.
    replayed: list[AnyEvent] = []
    _, summary = replay_files(BinanceAdapter, capture.path, [capture.path], sink=replayed.extend)
    assert summary.as_dict(adapter)["gaps"] == 0
    assert [e.trade_id for e in replayed if isinstance(e, Trade)] == [
        str(n) for n in range(1, rounds + 1)
    ]


async def test_runner_whose_old_connection_never_answers_the_rotation_close_resyncs() -> None:
    """Only the venue's answer to the closing handshake proves the old connection delivered all
    it had: without one the replacement cannot continue it without a gap."""
    async with BinanceServer() as server:
        server.add_market("BTCUSDT", SNAPSHOT_BIDS, SNAPSHOT_ASKS)
        adapter = live_adapter(server)
        async with running(adapter, max_age_s=1.0) as (runner, collector):
            old = await server.wait_for_sessions(1)
            await server.depth_update("BTCUSDT", [("100.50", "1.5")], [])
            await wait_until(lambda: len(collector.events(BookSnapshot)) == 1)
            # From now on the old connection's venue ignores what it receives: the runner's close
            # frame at the rotation goes unanswered (the socket stays open until it gives up).
            assert len(server.sessions) == 1
            old.connection.data_received = lambda data: None  # type: ignore[method-assign]
            done = asyncio.Event()
            market = asyncio.create_task(busy_market(server, done))
            await wait_until(lambda: collector.events(Gap) != [], 15)
            await wait_until(lambda: len(collector.events(BookSnapshot)) == 2, 10)
            done.set()
            await market

            assert collector.events(Gap)[0].reason == "rotation"
            assert runner.stats.reconnects >= 1
            assert best(adapter) == server.best("BTCUSDT")


class ReconnectingAdapter(BinanceAdapter):
    rotation = "reconnect"


async def test_runner_at_max_age_of_adapter_without_overlap_reconnects_with_a_gap() -> None:
    async with BinanceServer() as server:
        server.add_market("BTCUSDT", SNAPSHOT_BIDS, SNAPSHOT_ASKS)
        adapter = live_adapter(server, adapter_type=ReconnectingAdapter)
        async with running(adapter, max_age_s=0.3) as (runner, collector):
            first = await server.wait_for_sessions(1)
            await server.depth_update("BTCUSDT", [("100.50", "1.5")], [])
            await wait_until(lambda: len(collector.events(BookSnapshot)) == 1)
            await server.wait_for_sessions(2)
            await server.depth_update("BTCUSDT", [("100.60", "1")], [])
            await wait_until(lambda: len(collector.events(BookSnapshot)) == 2)

            assert collector.events(Gap)[0].reason == "rotation"
            assert first.connection.close_code == 1000
            assert runner.stats.reconnects >= 1 and runner.stats.rotations == 0


async def test_runner_whose_replacement_is_refused_rotates_with_a_gap_and_resyncs() -> None:
    async with BinanceServer() as server:
        server.add_market("BTCUSDT", SNAPSHOT_BIDS, SNAPSHOT_ASKS)
        adapter = live_adapter(server)
        async with running(adapter, max_age_s=0.3) as (_, collector):
            await server.wait_for_sessions(1)
            await server.depth_update("BTCUSDT", [("100.50", "1.5")], [])
            await wait_until(lambda: len(collector.events(BookSnapshot)) == 1)
            server.refuse_connections = True
            await wait_until(lambda: collector.events(Gap) != [])
            server.refuse_connections = False
            await server.wait_for_sessions(2)
            await server.depth_update("BTCUSDT", [("100.60", "1")], [])
            await wait_until(lambda: len(collector.events(BookSnapshot)) == 2)

            assert collector.events(Gap)[0].reason == "rotation"
            assert best(adapter) == server.best("BTCUSDT")


async def test_runner_stopped_while_its_replacement_is_quiet_closes_both_promptly() -> None:
    async with BinanceServer() as server:
        server.add_market("BTCUSDT", SNAPSHOT_BIDS, SNAPSHOT_ASKS)
        adapter = live_adapter(server)
        # Nothing is published: the replacement waits for a first frame (up to 30 s) when the
        # runner is stopped, and leaving ``running`` allows 5 s.
        async with running(adapter, max_age_s=0.2) as (runner, collector):
            await server.wait_for_sessions(2)
        await wait_until(lambda: server.open_sessions == [])

        assert [gap.reason for gap in collector.events(Gap)] == ["stopped"]
        assert runner.stats.state == "stopped"
