"""The Kraken v2 adapter: frames in, events out; then live, in the connection runner, against a
local server speaking Kraken's protocol with real checksums."""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, ClassVar

import httpx
import msgspec
import pytest

from actors.connection import Backoff, ConnectionRunner
from actors.venues import kraken
from actors.venues.base import ConfigError, ConnectionSpec, Output, Problem, VenueConfig
from actors.venues.kraken import KrakenAdapter, book_checksum
from core.events import AnyEvent, BookDelta, BookSnapshot, Gap, PriceLevel, Quote, Trade
from core.timestamps import rfc3339_ns
from tests.actors.venues.kraken_server import KrakenServer, PairSpec, kraken_checksum

BTC = PairSpec(price_precision=1, qty_precision=8)
TS = "2023-10-06T17:35:55.440295Z"
TS_NS = 1_696_613_755_440_295_000
NOW = 1_700_000_000_000_000_000

# Kraken's worked example (docs.kraken.com, "Spot Websockets (v2) Book Checksum").
DOC_ASKS = [
    ("45285.2", "0.00100000"), ("45286.4", "1.54571953"), ("45286.6", "1.54571109"),
    ("45289.6", "1.54560911"), ("45290.2", "0.15890660"), ("45291.8", "1.54553491"),
    ("45294.7", "0.04454749"), ("45296.1", "0.35380000"), ("45297.5", "0.09945542"),
    ("45299.5", "0.18772827"),
]  # fmt: skip
DOC_BIDS = [
    ("45283.5", "0.10000000"), ("45283.4", "1.54582015"), ("45282.1", "0.10000000"),
    ("45281.0", "0.10000000"), ("45280.3", "1.54592586"), ("45279.0", "0.07990000"),
    ("45277.6", "0.03310103"), ("45277.5", "0.30000000"), ("45277.3", "1.54602737"),
    ("45276.6", "0.15445238"),
]  # fmt: skip
DOC_CHECKSUM = 3310070434


# -- helpers ----------------------------------------------------------------------------------


def make_adapter(
    symbols: list[str] | None = None, cls: type[KrakenAdapter] = KrakenAdapter, **kwargs: Any
) -> KrakenAdapter:
    return cls(VenueConfig(venue="kraken", symbols=symbols or ["BTC-USD"], **kwargs))


def conn_of(adapter: KrakenAdapter) -> ConnectionSpec:
    return adapter.connections()[0]


def values(levels: list[PriceLevel]) -> list[tuple[Decimal, Decimal]]:
    return [(Decimal(price), Decimal(size)) for price, size in levels]


def checksum(bids: list[PriceLevel], asks: list[PriceLevel], spec: PairSpec = BTC) -> int:
    """The venue's checksum of a book, computed from values (independently of the adapter)."""
    return kraken_checksum(sorted(values(asks)), sorted(values(bids), reverse=True), spec)


def book_frame(
    kind: str,
    bids: list[PriceLevel],
    asks: list[PriceLevel],
    checksum: int,
    symbol: str = "BTC/USD",
    timestamp: str | None = TS,
) -> str:
    """A book message with prices and quantities as bare JSON numbers, as Kraken sends them."""
    entry: dict[str, Any] = {
        "symbol": symbol,
        "bids": [
            {"price": msgspec.Raw(p.encode()), "qty": msgspec.Raw(q.encode())} for p, q in bids
        ],
        "asks": [
            {"price": msgspec.Raw(p.encode()), "qty": msgspec.Raw(q.encode())} for p, q in asks
        ],
        "checksum": checksum,
    }
    if timestamp is not None:
        entry["timestamp"] = timestamp
    return msgspec.json.encode({"channel": "book", "type": kind, "data": [entry]}).decode()


def events_of(out: Output, kind: type[AnyEvent]) -> list[Any]:
    return [event for event in out.events if isinstance(event, kind)]


def kinds(out: Output) -> list[str]:
    return [problem.kind for problem in out.problems]


def synced_adapter() -> KrakenAdapter:
    """An adapter whose BTC/USD book holds the example book of Kraken's docs."""
    adapter = make_adapter()
    adapter.on_open(conn_of(adapter), NOW)
    frame = book_frame("snapshot", DOC_BIDS, DOC_ASKS, DOC_CHECKSUM)
    out = adapter.on_message(conn_of(adapter), frame, NOW)
    assert events_of(out, BookSnapshot) and not out.problems
    return adapter


def held(
    adapter: KrakenAdapter, symbol: str = "BTC-USD"
) -> tuple[list[PriceLevel], list[PriceLevel]]:
    book = adapter.books[f"kraken:{symbol}"]
    return book.bids(), book.asks()


def test_module_all_with_each_name_is_defined() -> None:
    for name in kraken.__all__:
        assert hasattr(kraken, name), name


# -- configuration and subscribing --------------------------------------------------------------


@pytest.mark.parametrize(
    "symbol", ["BTCUSD", "btc-usd", "BTC/USD", "BTC-", "-USD", "BTC-USD-X", ""]
)
def test_config_with_impossible_symbol_raises_config_error(symbol: str) -> None:
    with pytest.raises(ConfigError):
        make_adapter([symbol])


def test_config_with_bars_channel_raises_config_error() -> None:
    with pytest.raises(ConfigError, match="bars"):
        make_adapter(channels=["trades", "bars"])


@pytest.mark.parametrize("depth", ["0", "11", "deep", "-10"])
def test_config_with_unsupported_book_depth_raises_config_error(depth: str) -> None:
    with pytest.raises(ConfigError, match="depth"):
        make_adapter(options={"depth": depth})


def test_on_open_with_all_channels_sends_one_subscribe_per_channel() -> None:
    adapter = make_adapter(["BTC-USD", "ETH-USD"])
    assert conn_of(adapter).url == "wss://ws.kraken.com/v2"
    frames = [json.loads(text) for text in adapter.on_open(conn_of(adapter), NOW).send]
    assert [frame["params"] for frame in frames] == [
        {"channel": "trade", "symbol": ["BTC/USD", "ETH/USD"], "snapshot": False},
        {
            "channel": "ticker",
            "symbol": ["BTC/USD", "ETH/USD"],
            "event_trigger": "bbo",
            "snapshot": True,
        },
        {"channel": "book", "symbol": ["BTC/USD", "ETH/USD"], "depth": 10, "snapshot": True},
    ]
    assert {frame["method"] for frame in frames} == {"subscribe"}
    assert len({frame["req_id"] for frame in frames}) == 3


def test_on_open_with_book_depth_option_subscribes_that_depth() -> None:
    adapter = make_adapter(channels=["book"], options={"depth": "25"})
    (frame,) = [json.loads(text) for text in adapter.on_open(conn_of(adapter), NOW).send]
    assert frame["params"] == {
        "channel": "book",
        "symbol": ["BTC/USD"],
        "depth": 25,
        "snapshot": True,
    }


def test_config_from_capture_with_subscribe_frames_rebuilds_the_config() -> None:
    adapter = make_adapter(
        ["BTC-USD", "ETH-USD"], channels=["book", "trades"], options={"depth": "25"}
    )
    sent = adapter.on_open(conn_of(adapter), NOW).send + adapter.ping(conn_of(adapter), NOW).send
    config = KrakenAdapter.config_from_capture("wss://ws.kraken.com/v2", sent)
    assert config.symbols == ["BTC-USD", "ETH-USD"]
    assert config.channels == ["book", "trades"]
    assert config.options == {"depth": "25"}
    assert config.ws_url == "wss://ws.kraken.com/v2"


# -- checksum -------------------------------------------------------------------------------------


def test_book_checksum_with_kraken_docs_example_matches_kraken() -> None:
    assert book_checksum(DOC_ASKS, DOC_BIDS) == DOC_CHECKSUM
    assert checksum(DOC_BIDS, DOC_ASKS) == DOC_CHECKSUM


def test_book_checksum_with_random_books_matches_value_based_computation() -> None:
    rng = random.Random(7)
    spec = PairSpec(price_precision=4, qty_precision=8)
    for _ in range(200):
        prices = sorted(rng.sample(range(1, 2_000_000), 30))
        levels = [
            (f"{price / 10_000:.4f}", f"{rng.randint(1, 10**10) / 10**8:.8f}") for price in prices
        ]
        bids, asks = levels[:15][::-1], levels[15:]
        assert book_checksum(asks, bids) == checksum(bids, asks, spec)


def test_book_snapshot_with_kraken_docs_example_passes_checksum_and_keeps_exact_text() -> None:
    adapter = make_adapter()
    adapter.on_open(conn_of(adapter), NOW)
    out = adapter.on_message(
        conn_of(adapter), book_frame("snapshot", DOC_BIDS, DOC_ASKS, DOC_CHECKSUM), NOW
    )
    assert out.problems == []
    (snapshot,) = events_of(out, BookSnapshot)
    assert snapshot.instrument == "kraken:BTC-USD"
    assert snapshot.bids == DOC_BIDS  # "0.10000000" and "45281.0" keep their zeros
    assert snapshot.asks == DOC_ASKS
    assert snapshot.exchange_ts_ns == TS_NS and snapshot.receive_ts_ns == NOW


def test_book_update_with_quantity_short_of_pair_precision_is_padded_to_match_checksum() -> None:
    adapter = synced_adapter()
    # The venue's checksum reads 0.5 as 0.50000000, the precision of the snapshot's numbers.
    bids_after = [("45283.5", "0.5"), *DOC_BIDS[1:]]
    frame = book_frame("update", [("45283.5", "0.5")], [], checksum(bids_after, DOC_ASKS))
    out = adapter.on_message(conn_of(adapter), frame, NOW)
    assert out.problems == []
    assert events_of(out, BookDelta)[0].bids == [("45283.5", "0.50000000")]


# -- book maintenance -----------------------------------------------------------------------------


def test_book_update_with_changed_levels_emits_delta_with_exact_text() -> None:
    adapter = synced_adapter()
    bids = [("45283.6", "2.00000000")]
    asks = [("45285.2", "0.00000000")]
    expected_bids = [("45283.6", "2.00000000"), *DOC_BIDS[:9]]
    expected_asks = DOC_ASKS[1:]
    frame = book_frame("update", bids, asks, checksum(expected_bids, expected_asks))
    out = adapter.on_message(conn_of(adapter), frame, NOW + 1)
    assert out.problems == []
    (delta,) = events_of(out, BookDelta)
    # The new best bid pushed the 10th bid out of the depth-10 view: readers are told.
    assert delta.bids == [("45283.6", "2.00000000"), ("45276.6", "0")]
    assert delta.asks == [("45285.2", "0.00000000")]
    assert delta.exchange_ts_ns == TS_NS and delta.receive_ts_ns == NOW + 1
    assert held(adapter) == (expected_bids, expected_asks)


def test_book_update_with_wrong_checksum_reports_gap_resubscribes_and_publishes_nothing() -> None:
    adapter = synced_adapter()
    frame = book_frame("update", [("45283.6", "2.00000000")], [], 12345)
    out = adapter.on_message(conn_of(adapter), frame, NOW)
    assert kinds(out) == ["checksum_failure"]
    assert out.problems[0].instrument == "kraken:BTC-USD"
    assert [gap.reason for gap in events_of(out, Gap)] == ["checksum_failure"]
    assert events_of(out, BookDelta) == []
    sent = [json.loads(text) for text in out.send]
    assert [(f["method"], f["params"]["channel"], f["params"]["symbol"]) for f in sent] == [
        ("unsubscribe", "book", ["BTC/USD"]),
        ("subscribe", "book", ["BTC/USD"]),
    ]
    assert held(adapter) == ([], [])
    # Updates still in flight before the new snapshot are not applied or published.
    late = adapter.on_message(
        conn_of(adapter), book_frame("update", [("45283.7", "1.0")], [], 1), NOW
    )
    assert late.events == [] and late.problems == []
    resync = adapter.on_message(
        conn_of(adapter), book_frame("snapshot", DOC_BIDS, DOC_ASKS, DOC_CHECKSUM), NOW
    )
    assert events_of(resync, BookSnapshot)[0].bids == DOC_BIDS


def test_book_snapshots_with_repeated_checksum_failures_stop_resubscribing() -> None:
    adapter = make_adapter()
    adapter.on_open(conn_of(adapter), NOW)
    bad = book_frame("snapshot", DOC_BIDS, DOC_ASKS, DOC_CHECKSUM + 1)
    outs = [adapter.on_message(conn_of(adapter), bad, NOW) for _ in range(3)]
    assert [kinds(out) for out in outs] == [
        ["checksum_failure"],
        ["checksum_failure"],
        ["checksum_failure", "exchange_error"],
    ]
    methods = [[json.loads(text)["method"] for text in out.send] for out in outs]
    assert methods == [["unsubscribe", "subscribe"], ["unsubscribe", "subscribe"], ["unsubscribe"]]
    adapter.on_close(conn_of(adapter), "reconnect", NOW)
    (again,) = [json.loads(text) for text in adapter.on_open(conn_of(adapter), NOW).send[2:]]
    assert again["params"]["channel"] == "book"
    good = book_frame("snapshot", DOC_BIDS, DOC_ASKS, DOC_CHECKSUM)
    assert events_of(adapter.on_message(conn_of(adapter), good, NOW), BookSnapshot)


def test_book_update_with_bid_through_the_ask_reports_crossed_book_and_resyncs() -> None:
    adapter = synced_adapter()
    bids_after = [("45290.0", "1.00000000"), *DOC_BIDS[:9]]
    frame = book_frame("update", [("45290.0", "1.00000000")], [], checksum(bids_after, DOC_ASKS))
    out = adapter.on_message(conn_of(adapter), frame, NOW)
    assert kinds(out) == ["crossed_book"]
    assert [gap.reason for gap in events_of(out, Gap)] == ["crossed_book"]
    assert events_of(out, BookDelta) == []
    assert [json.loads(text)["method"] for text in out.send] == ["unsubscribe", "subscribe"]


@pytest.mark.parametrize(
    "level",
    ['{"price":-45283.6,"qty":1.0}', '{"price":45283.6,"qty":-1.0}', '{"price":"abc","qty":1.0}',
     '{"price":0.0,"qty":1.0}', '{"price":"NaN","qty":1.0}', '{"price":45283.6}'],
)  # fmt: skip
def test_book_update_with_invalid_level_reports_parse_error_and_resyncs(level: str) -> None:
    adapter = synced_adapter()
    frame = (
        '{"channel":"book","type":"update","data":[{"symbol":"BTC/USD","bids":[' + level + "],"
        '"asks":[],"checksum":1,"timestamp":"' + TS + '"}]}'
    )
    out = adapter.on_message(conn_of(adapter), frame, NOW)
    assert kinds(out) == ["parse_error"]
    assert out.problems[0].instrument == "kraken:BTC-USD"
    assert [gap.reason for gap in events_of(out, Gap)] == ["parse_error"]
    assert [json.loads(text)["method"] for text in out.send] == ["unsubscribe", "subscribe"]


def test_book_snapshot_with_no_timestamp_uses_receive_time() -> None:
    adapter = make_adapter()
    adapter.on_open(conn_of(adapter), NOW)
    frame = book_frame("snapshot", DOC_BIDS, DOC_ASKS, DOC_CHECKSUM, timestamp=None)
    (snapshot,) = events_of(adapter.on_message(conn_of(adapter), frame, NOW), BookSnapshot)
    assert snapshot.exchange_ts_ns == NOW


def test_on_close_with_synced_book_gaps_it_and_ignores_updates_until_snapshot() -> None:
    adapter = synced_adapter()
    out = adapter.on_close(conn_of(adapter), "ConnectionClosedError", NOW)
    assert [(gap.instrument, gap.reason) for gap in events_of(out, Gap)] == [
        ("kraken:BTC-USD", "ConnectionClosedError")
    ]
    adapter.on_open(conn_of(adapter), NOW)
    stale = adapter.on_message(
        conn_of(adapter), book_frame("update", [("45283.6", "1.0")], [], 1), NOW
    )
    assert stale.events == [] and stale.problems == []


# -- trades and quotes ----------------------------------------------------------------------------


def test_trade_with_json_numbers_emits_trade_with_exact_decimals() -> None:
    adapter = make_adapter()
    frame = (
        '{"channel":"trade","type":"update","data":[{"symbol":"BTC/USD","side":"sell",'
        '"price":45283.40,"qty":0.00050000,"ord_type":"market","trade_id":4665846,'
        '"timestamp":"2023-10-06T17:35:55.440295Z"}]}'
    )
    out = adapter.on_message(conn_of(adapter), frame, NOW)
    assert out.problems == []
    assert out.events == [
        Trade(
            instrument="kraken:BTC-USD",
            exchange_ts_ns=TS_NS,
            receive_ts_ns=NOW,
            trade_id="4665846",
            price="45283.40",
            size="0.00050000",
            side="sell",
        )
    ]


def test_ticker_with_kraken_docs_shape_emits_quote_with_exact_decimals() -> None:
    adapter = make_adapter(["ALGO-USD"])
    frame = (
        '{"channel":"ticker","type":"snapshot","data":[{"symbol":"ALGO/USD","bid":0.10025,'
        '"bid_qty":740.0,"ask":0.10035,"ask_qty":740.0,"last":0.10035,"volume":997038.98383185,'
        '"vwap":0.10148,"low":0.09979,"high":0.10285,"change":-0.00017,"change_pct":-0.17}]}'
    )
    out = adapter.on_message(conn_of(adapter), frame, NOW)
    assert out.problems == []
    assert out.events == [
        Quote(
            instrument="kraken:ALGO-USD",
            exchange_ts_ns=NOW,
            receive_ts_ns=NOW,
            bid_price="0.10025",
            bid_size="740.0",
            ask_price="0.10035",
            ask_size="740.0",
        )
    ]


def test_ticker_with_empty_side_emits_quote_without_that_side() -> None:
    adapter = make_adapter()
    frame = (
        '{"channel":"ticker","type":"update",'
        '"data":[{"symbol":"BTC/USD","ask":45285.2,"ask_qty":1.5}]}'
    )
    (quote,) = adapter.on_message(conn_of(adapter), frame, NOW).events
    assert isinstance(quote, Quote)
    assert (quote.bid_price, quote.bid_size, quote.ask_price, quote.ask_size) == (
        None,
        None,
        "45285.2",
        "1.5",
    )


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2023-10-06T17:35:55.440295Z", TS_NS),
        ("2026-10-06T18:06:02.264627814Z", 1_791_309_962_264_627_814),
        ("2023-10-06T17:35:55Z", TS_NS - 440_295_000),
        ("2023-10-06T19:35:55.440295+02:00", TS_NS),
        ("2023-10-06T15:35:55.440295-02:00", TS_NS),
        ("1970-01-01T00:00:00.000000001Z", 1),
    ],
)
def test_rfc3339_ns_with_kraken_timestamps_is_exact(text: str, expected: int) -> None:
    assert rfc3339_ns(text) == expected


@pytest.mark.parametrize(
    "text",
    ["2023-10-06 17:35", "2023-13-06T17:35:55Z", "2023-10-06T17:35:55.Z", "yesterday"],
)
def test_rfc3339_ns_with_invalid_text_raises_value_error(text: str) -> None:
    with pytest.raises(ValueError):
        rfc3339_ns(text)


# -- bad input and control messages -------------------------------------------------------------


GOOD_TRADE = (
    '{"channel":"trade","type":"update","data":[{"symbol":"BTC/USD","side":"buy","price":45283.5,'
    '"qty":0.1,"ord_type":"limit","trade_id":1,"timestamp":"2023-10-06T17:35:55.440295Z"}]}'
)


@pytest.mark.parametrize(
    ("frame", "kind"),
    [
        ("not json", "parse_error"),
        (b"\xff\xfe", "parse_error"),
        ("[1, 2, 3]", "parse_error"),
        ('{"channel":"trade","type":"update","data":"nope"}', "parse_error"),
        (GOOD_TRADE.replace('"side":"buy",', ""), "parse_error"),
        (GOOD_TRADE.replace('"price":45283.5', '"price":-1'), "parse_error"),
        (GOOD_TRADE.replace('"qty":0.1', '"qty":true'), "parse_error"),
        (GOOD_TRADE.replace('"side":"buy"', '"side":"up"'), "parse_error"),
        (GOOD_TRADE.replace("2023-10-06T17", "2023-10-06X17"), "parse_error"),
        (GOOD_TRADE.replace("BTC/USD", "DOGE/USD"), "unknown_message"),
        ('{"channel":"ohlc","type":"update","data":[]}', "unknown_message"),
        ('{"channel":"book","type":"delta","data":[]}', "unknown_message"),
        ('{"method":"edit_order","success":true}', "unknown_message"),
        ("{}", "unknown_message"),
    ],
)
def test_on_message_with_bad_frame_reports_problem_and_keeps_working(
    frame: str | bytes, kind: str
) -> None:
    adapter = make_adapter()
    out = adapter.on_message(conn_of(adapter), frame, NOW)
    assert kinds(out) == [kind] and out.events == []
    assert isinstance(adapter.on_message(conn_of(adapter), GOOD_TRADE, NOW).events[0], Trade)


def test_trade_batch_with_one_broken_entry_keeps_the_others() -> None:
    adapter = make_adapter()
    entry = json.loads(GOOD_TRADE)["data"][0]
    frame = json.dumps(
        {"channel": "trade", "type": "update", "data": [entry, {"symbol": "BTC/USD"}, entry]}
    )
    out = adapter.on_message(conn_of(adapter), frame, NOW)
    assert kinds(out) == ["parse_error"] and len(events_of(out, Trade)) == 2


def test_subscribe_reply_with_unknown_pair_reports_exchange_error_and_is_not_retried() -> None:
    adapter = make_adapter(["BTC-USD", "XXX-USD"], channels=["trades"])
    (request,) = [json.loads(text) for text in adapter.on_open(conn_of(adapter), NOW).send]
    reply = {
        "error": "Currency pair not supported XXX/USD", "method": "subscribe", "success": False,
        "symbol": "XXX/USD", "time_in": TS, "time_out": TS, "req_id": request["req_id"],
    }  # fmt: skip
    out = adapter.on_message(conn_of(adapter), json.dumps(reply), NOW)
    detail = "subscribe trade XXX/USD refused: Currency pair not supported XXX/USD"
    assert out.problems == [Problem("exchange_error", detail, "kraken:XXX-USD")]
    (again,) = [json.loads(text) for text in adapter.on_open(conn_of(adapter), NOW).send]
    assert again["params"]["symbol"] == ["BTC/USD"]


def test_subscribe_refusal_with_no_symbol_covers_the_whole_request() -> None:
    adapter = make_adapter(["BTC-USD", "ETH-USD"], channels=["book"])
    (request,) = [json.loads(text) for text in adapter.on_open(conn_of(adapter), NOW).send]
    reply = {"error": "Subscription depth not supported", "method": "subscribe", "success": False,
             "req_id": request["req_id"]}  # fmt: skip
    out = adapter.on_message(conn_of(adapter), json.dumps(reply), NOW)
    assert [(p.kind, p.instrument) for p in out.problems] == [
        ("exchange_error", "kraken:BTC-USD"),
        ("exchange_error", "kraken:ETH-USD"),
    ]
    assert adapter.on_open(conn_of(adapter), NOW).send == []


def test_ping_with_pong_heartbeat_status_and_acks_back_is_silent() -> None:
    adapter = make_adapter()
    (ping,) = [json.loads(text) for text in adapter.ping(conn_of(adapter), NOW).send]
    assert ping["method"] == "ping" and isinstance(ping["req_id"], int)
    for frame in (
        json.dumps({"method": "pong", "req_id": ping["req_id"], "time_in": TS, "time_out": TS}),
        '{"channel":"heartbeat"}',
        '{"channel":"status","type":"update","data":[{"api_version":"v2","connection_id":15113583034416118705,'
        '"system":"online","version":"2.0.10"}]}',
        '{"method":"subscribe","result":{"channel":"book","depth":10,"snapshot":true,"symbol":"BTC/USD",'
        '"warnings":["tick_size is deprecated"]},"success":true,"time_in":"'
        + TS
        + '","time_out":"'
        + TS
        + '"}',
    ):
        assert adapter.on_message(conn_of(adapter), frame, NOW) == Output()


def test_status_with_maintenance_reports_exchange_error() -> None:
    adapter = make_adapter()
    frame = (
        '{"channel":"status","type":"update","data":[{"system":"maintenance","version":"2.0.10"}]}'
    )
    assert kinds(adapter.on_message(conn_of(adapter), frame, NOW)) == ["exchange_error"]


# -- live, in the connection runner -------------------------------------------------------------


@dataclass
class Feed:
    """What a running ConnectionRunner emitted."""

    outputs: list[Output] = field(default_factory=list)
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    def emit(self, out: Output) -> None:
        self.outputs.append(out)
        self.changed.set()

    def events(self, kind: type[AnyEvent]) -> list[Any]:
        return [event for out in self.outputs for event in out.events if isinstance(event, kind)]

    def delta_levels(self, side: str) -> list[PriceLevel]:
        return [level for delta in self.events(BookDelta) for level in getattr(delta, side)]

    def problems(self) -> list[Problem]:
        return [problem for out in self.outputs for problem in out.problems]

    async def wait_until(self, condition: Callable[[], bool], timeout: float = 5.0) -> None:
        async with asyncio.timeout(timeout):
            while not condition():
                self.changed.clear()
                await self.changed.wait()


@asynccontextmanager
async def running(adapter: KrakenAdapter) -> AsyncIterator[tuple[Feed, ConnectionRunner]]:
    feed = Feed()
    stop = asyncio.Event()
    async with httpx.AsyncClient() as http:
        runner = ConnectionRunner(
            adapter,
            conn_of(adapter),
            feed.emit,
            http=http,
            backoff=Backoff(base_s=0.01, cap_s=0.05),
        )
        task = asyncio.create_task(runner.run(stop))
        try:
            yield feed, runner
        finally:
            stop.set()
            await asyncio.wait_for(task, timeout=5)


def live_adapter(
    server: KrakenServer, cls: type[KrakenAdapter] = KrakenAdapter, **kwargs: Any
) -> KrakenAdapter:
    return make_adapter(cls=cls, ws_url=server.url, **kwargs)


async def test_runner_with_many_book_updates_keeps_book_equal_to_venue() -> None:
    rng = random.Random(11)
    async with KrakenServer() as server:
        server.set_book("BTC/USD", DOC_BIDS, DOC_ASKS)
        adapter = live_adapter(server, channels=["book"])
        async with running(adapter) as (feed, _):
            await feed.wait_until(lambda: bool(feed.events(BookSnapshot)))
            for _ in range(300):
                # Within 6.0 of the touch on either side: levels come, go and leave the top 10.
                offset = Decimal(rng.randint(0, 60)).scaleb(-1)
                qty = rng.choice(["0", f"{rng.randint(1, 10**9) / 10**8:.8f}"])
                if rng.random() < 0.5:
                    await server.update_book(
                        "BTC/USD", bids=[(str(Decimal("45283.5") - offset), qty)]
                    )
                else:
                    await server.update_book(
                        "BTC/USD", asks=[(str(Decimal("45285.2") + offset), qty)]
                    )
            await server.update_book("BTC/USD", bids=[("45284.0", "7.0")])
            await feed.wait_until(lambda: ("45284.0", "7.00000000") in feed.delta_levels("bids"))
            assert feed.problems() == []
            assert held(adapter) == server.top("BTC/USD")
            assert len(adapter.books["kraken:BTC-USD"].bids()) <= 10


async def test_runner_with_dropped_connection_reconnects_resubscribes_and_resyncs_book() -> None:
    async with KrakenServer() as server:
        server.set_book("BTC/USD", DOC_BIDS, DOC_ASKS)
        adapter = live_adapter(server)
        async with running(adapter) as (feed, runner):
            await feed.wait_until(lambda: bool(feed.events(BookSnapshot)))
            await server.update_book("BTC/USD", bids=[("45283.6", "1.0")])
            await server.send_trade("BTC/USD", "buy", "45285.2", "0.001")
            await feed.wait_until(lambda: bool(feed.events(BookDelta)) and bool(feed.events(Trade)))
            assert (
                feed.events(Trade)[0].price == "45285.2"
                and feed.events(Trade)[0].size == "0.00100000"
            )
            assert feed.events(Quote)[-1].bid_price == "45283.6"

            await server.drop()
            # While the client is away the book moves on; the resync must show it.
            server.set_book("BTC/USD", [("45000.0", "3.0")], [("45001.0", "4.0")])
            await feed.wait_until(lambda: len(feed.events(BookSnapshot)) == 2)
            assert [gap.instrument for gap in feed.events(Gap)] == ["kraken:BTC-USD"]
            assert runner.stats.reconnects == 1 and server.connections_opened == 2
            for channel in ("book", "trade", "ticker"):
                assert len(server.requests("subscribe", channel, "BTC/USD")) == 2
            snapshot = feed.events(BookSnapshot)[-1]
            assert (snapshot.bids, snapshot.asks) == (
                [("45000.0", "3.00000000")],
                [("45001.0", "4.00000000")],
            )
            order = [
                type(e)
                for out in feed.outputs
                for e in out.events
                if isinstance(e, (Gap, BookSnapshot))
            ]
            assert order == [BookSnapshot, Gap, BookSnapshot]

            await server.update_book("BTC/USD", asks=[("45001.0", "0"), ("45002.0", "1.5")])
            await feed.wait_until(lambda: ("45002.0", "1.50000000") in feed.delta_levels("asks"))
            assert feed.problems() == []


async def test_runner_with_wrong_checksum_resubscribes_book_and_recovers() -> None:
    async with KrakenServer() as server:
        server.set_book("BTC/USD", DOC_BIDS, DOC_ASKS)
        adapter = live_adapter(server, channels=["book"])
        async with running(adapter) as (feed, runner):
            await feed.wait_until(lambda: bool(feed.events(BookSnapshot)))
            await server.update_book("BTC/USD", bids=[("45283.6", "1.0")], bad_checksum=True)
            await feed.wait_until(lambda: len(feed.events(BookSnapshot)) == 2)
            assert [p.kind for p in feed.problems()] == ["checksum_failure"]
            assert [gap.reason for gap in feed.events(Gap)] == ["checksum_failure"]
            assert len(server.requests("unsubscribe", "book", "BTC/USD")) == 1
            assert runner.stats.reconnects == 0
            assert feed.events(BookSnapshot)[-1].bids[0] == ("45283.6", "1.00000000")
            assert held(adapter) == server.top("BTC/USD")


async def test_runner_with_unknown_pair_reports_exchange_error_and_streams_the_rest() -> None:
    async with KrakenServer() as server:
        server.set_book("BTC/USD", DOC_BIDS, DOC_ASKS)
        adapter = live_adapter(server, symbols=["BTC-USD", "NOPE-USD"], channels=["book"])
        async with running(adapter) as (feed, runner):
            await feed.wait_until(lambda: bool(feed.events(BookSnapshot)) and bool(feed.problems()))
            (problem,) = feed.problems()
            assert (problem.kind, problem.instrument) == ("exchange_error", "kraken:NOPE-USD")
            assert "Currency pair not supported" in problem.detail
            await server.drop()
            await feed.wait_until(lambda: len(feed.events(BookSnapshot)) == 2)
            assert server.requests("subscribe", "book")[-1]["params"]["symbol"] == ["BTC/USD"]
            assert runner.stats.problems == {"exchange_error": 1}


async def test_runner_with_malformed_frames_counts_them_and_keeps_streaming() -> None:
    async with KrakenServer() as server:
        adapter = live_adapter(server, channels=["trades"])
        async with running(adapter) as (feed, runner):
            await server.wait_until(lambda: server.is_subscribed("trade", "BTC/USD"))
            await server.send_raw("{oops")
            await server.send_raw('{"channel":"spread","type":"update","data":[]}')
            await server.send_trade("BTC/USD", "sell", "45283.5", "0.25")
            await feed.wait_until(lambda: bool(feed.events(Trade)))
            assert runner.stats.problems == {"parse_error": 1, "unknown_message": 1}
            assert runner.stats.reconnects == 0


class FastPingAdapter(KrakenAdapter):
    ping_interval_s: ClassVar[float | None] = 0.05


class ImpatientAdapter(KrakenAdapter):
    silence_timeout_s: ClassVar[float] = 0.6


async def test_runner_with_short_ping_interval_pings_and_consumes_pongs_silently() -> None:
    async with KrakenServer(heartbeat_interval_s=None) as server:
        adapter = live_adapter(server, cls=FastPingAdapter, channels=["trades"])
        async with running(adapter) as (feed, runner):
            await server.wait_until(lambda: len(server.requests("ping")) >= 3)
            assert feed.problems() == []
            assert runner.stats.reconnects == 0


async def test_runner_with_silent_venue_reconnects_by_watchdog_and_gaps() -> None:
    async with KrakenServer(heartbeat_interval_s=0.05) as server:
        server.set_book("BTC/USD", DOC_BIDS, DOC_ASKS)
        adapter = live_adapter(server, cls=ImpatientAdapter, channels=["book"])
        async with running(adapter) as (feed, runner):
            await feed.wait_until(lambda: bool(feed.events(BookSnapshot)))
            # Heartbeats alone keep a quiet connection alive past the watchdog's limit.
            await asyncio.sleep(0.8)
            assert runner.stats.reconnects == 0
            server.go_silent()
            await feed.wait_until(lambda: len(feed.events(BookSnapshot)) == 2)
            assert runner.stats.reconnects == 1
            (gap,) = feed.events(Gap)
            assert gap.reason.endswith("(watchdog)")
