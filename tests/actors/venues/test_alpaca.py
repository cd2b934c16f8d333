"""The Alpaca adapter: sans-IO against hand-made frames, then live through ConnectionRunner
against the local protocol server in ``alpaca_server``."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import httpx
import pytest
from websockets.asyncio.client import ClientConnection, connect

from actors.connection import Backoff, ConnectionRunner
from actors.venues.alpaca import AlpacaAdapter
from actors.venues.base import ConfigError, ConnectionSpec, Output, VenueConfig
from core.events import AnyEvent, Bar, Gap, Quote, Trade, TradeCancel, TradeCorrection
from tests.actors.venues.alpaca_server import (
    AlpacaServer,
    Message,
    bar,
    cancel,
    correction,
    encode_frame,
    error,
    quote,
    trade,
)

KEY, SECRET = "test-key", "test-secret"
# 2024-01-02T14:30:00Z
MINUTE_NS = 1_704_205_800 * 1_000_000_000
RECEIVED_NS = MINUTE_NS + 5_000_000_000


def make_adapter(
    symbols: tuple[str, ...] = ("AAPL",),
    *,
    channels: tuple[str, ...] = ("trades", "quotes", "bars"),
    ws_url: str | None = None,
    options: dict[str, str] | None = None,
) -> AlpacaAdapter:
    return AlpacaAdapter(
        VenueConfig(
            venue="alpaca",
            symbols=list(symbols),
            channels=list(channels),  # type: ignore[arg-type]
            ws_url=ws_url,
            api_key=KEY,
            api_secret=SECRET,
            options=options or {},
        )
    )


def connection(adapter: AlpacaAdapter) -> ConnectionSpec:
    [spec] = adapter.connections()
    return spec


def feed(adapter: AlpacaAdapter, *messages: Message) -> Output:
    return adapter.on_message(connection(adapter), encode_frame(list(messages)), RECEIVED_NS)


def authenticated(adapter: AlpacaAdapter) -> AlpacaAdapter:
    conn = connection(adapter)
    adapter.on_open(conn, RECEIVED_NS)
    feed(adapter, {"T": "success", "msg": "connected"})
    feed(adapter, {"T": "success", "msg": "authenticated"})
    return adapter


def without(message: Message, key: str) -> Message:
    return {k: v for k, v in message.items() if k != key}


def problem_kinds(out: Output) -> Counter[str]:
    return Counter(problem.kind for problem in out.problems)


# -- configuration ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("api_key", "api_secret", "named"),
    [(None, None, "api_key and api_secret"), (KEY, None, "api_secret"), ("", SECRET, "api_key")],
)
def test_adapter_with_missing_keys_raises_config_error_naming_the_settings(
    api_key: str | None, api_secret: str | None, named: str
) -> None:
    config = VenueConfig(venue="alpaca", symbols=["AAPL"], api_key=api_key, api_secret=api_secret)
    with pytest.raises(ConfigError, match=f"set {named} for the alpaca venue"):
        AlpacaAdapter(config)


def test_adapter_with_default_options_connects_to_the_iex_feed() -> None:
    adapter = make_adapter(("AAPL", "MSFT"))
    [spec] = adapter.connections()
    assert spec.url == "wss://stream.data.alpaca.markets/v2/iex"
    assert spec.symbols == ("AAPL", "MSFT")


@pytest.mark.parametrize("feed_name", ["sip", "delayed_sip"])
def test_adapter_with_feed_option_connects_to_that_feed(feed_name: str) -> None:
    adapter = make_adapter(options={"feed": feed_name})
    assert connection(adapter).url == f"wss://stream.data.alpaca.markets/v2/{feed_name}"


@pytest.mark.parametrize("options", [{"feed": "nasdaq"}, {"feed": "SIP"}, {"fed": "sip"}])
def test_adapter_with_unknown_feed_or_option_raises_config_error(options: dict[str, str]) -> None:
    with pytest.raises(ConfigError, match="alpaca: "):
        make_adapter(options=options)


@pytest.mark.parametrize("symbol", ["BTC-USD", "aapl", "*", "", "AAPL ", "TOOLONGTICKER"])
def test_adapter_with_implausible_ticker_raises_config_error(symbol: str) -> None:
    with pytest.raises(ConfigError, match="by uppercase ticker"):
        make_adapter(("AAPL", symbol))


def test_adapter_with_only_book_channel_raises_config_error() -> None:
    with pytest.raises(ConfigError, match="trades, quotes and bars"):
        make_adapter(channels=("book",))


def test_adapter_with_default_channels_subscribes_trades_and_quotes_but_no_book() -> None:
    adapter = AlpacaAdapter(
        VenueConfig(venue="alpaca", symbols=["AAPL"], api_key=KEY, api_secret=SECRET)
    )
    adapter.on_open(connection(adapter), RECEIVED_NS)
    out = feed(adapter, {"T": "success", "msg": "authenticated"})
    assert [json.loads(text) for text in out.send] == [
        {"action": "subscribe", "trades": ["AAPL"], "quotes": ["AAPL"]}
    ]


# -- handshake --------------------------------------------------------------------------------


def test_on_open_sends_the_auth_frame_and_no_subscription_yet() -> None:
    adapter = make_adapter()
    out = adapter.on_open(connection(adapter), RECEIVED_NS)
    assert [json.loads(text) for text in out.send] == [
        {"action": "auth", "key": KEY, "secret": SECRET}
    ]
    assert feed(adapter, {"T": "success", "msg": "connected"}) == Output()


def test_authenticated_reply_sends_the_subscription_for_every_channel() -> None:
    adapter = make_adapter(("AAPL", "BRK.B"))
    adapter.on_open(connection(adapter), RECEIVED_NS)
    out = feed(adapter, {"T": "success", "msg": "authenticated"})
    assert [json.loads(text) for text in out.send] == [
        {
            "action": "subscribe",
            "trades": ["AAPL", "BRK.B"],
            "quotes": ["AAPL", "BRK.B"],
            "bars": ["AAPL", "BRK.B"],
        }
    ]
    assert out.problems == [] and out.reconnect is None


def test_subscription_reply_missing_a_symbol_reports_exchange_error() -> None:
    adapter = authenticated(make_adapter(("AAPL", "MSFT"), channels=("trades",)))
    out = feed(adapter, {"T": "subscription", "trades": ["AAPL"], "quotes": [], "bars": []})
    assert [p.kind for p in out.problems] == ["exchange_error"]
    assert "MSFT" in out.problems[0].detail
    assert feed(adapter, {"T": "subscription", "trades": ["AAPL", "MSFT"]}).problems == []


# -- data -------------------------------------------------------------------------------------


def test_trade_keeps_the_digits_as_written_and_the_nanoseconds() -> None:
    adapter = authenticated(make_adapter())
    out = feed(adapter, trade("AAPL", "187.230", 100, "2024-01-02T14:30:00.123456789Z"))
    assert out.events == [
        Trade(
            instrument="alpaca:AAPL",
            exchange_ts_ns=MINUTE_NS + 123_456_789,
            receive_ts_ns=RECEIVED_NS,
            trade_id="V-52983525029461",
            price="187.230",
            size="100",
        )
    ]
    assert out.problems == []


def test_trade_with_exponent_numbers_writes_plain_decimals() -> None:
    adapter = authenticated(make_adapter())
    frame = (
        '[{"T":"t","S":"AAPL","i":1,"x":"V","p":1.875E+2,"s":1e-3,'
        '"c":["@"],"t":"2024-01-02T14:30:00Z","z":"C"}]'
    )
    [event] = adapter.on_message(connection(adapter), frame, RECEIVED_NS).events
    assert isinstance(event, Trade)
    assert (event.price, event.size) == ("187.5", "0.001")


@pytest.mark.parametrize(
    ("text", "ns"),
    [
        ("2024-01-02T14:30:00Z", MINUTE_NS),
        ("2024-01-02T14:30:00.208Z", MINUTE_NS + 208_000_000),
        ("2024-01-02T14:30:00.000000001Z", MINUTE_NS + 1),
        ("2024-01-02T15:30:00.5+01:00", MINUTE_NS + 500_000_000),
        ("2024-01-02T09:30:00-05:00", MINUTE_NS),
        ("2021-02-22T15:51:44.208Z", 1_614_009_104_208_000_000),
    ],
)
def test_trade_time_in_any_rfc3339_spelling_becomes_exact_nanoseconds(text: str, ns: int) -> None:
    adapter = authenticated(make_adapter())
    [event] = feed(adapter, trade("AAPL", "1", 1, text)).events
    assert event.exchange_ts_ns == ns


@pytest.mark.parametrize(
    "text",
    [
        "2024-01-02T14:30:00",
        "2024-13-02T14:30:00Z",
        "2024-02-30T14:30:00Z",
        "2024-01-02T14:30:00.1_0Z",
        "2024-01-02T14:30:00.\u0661Z",
        "yesterday",
    ],
)
def test_trade_with_bad_time_is_skipped_as_parse_error(text: str) -> None:
    adapter = authenticated(make_adapter())
    out = feed(adapter, trade("AAPL", "1", 1, text))
    assert out.events == []
    assert [(p.kind, p.instrument) for p in out.problems] == [("parse_error", "alpaca:AAPL")]


def test_quote_carries_best_bid_and_offer_as_written() -> None:
    adapter = authenticated(make_adapter())
    out = feed(adapter, quote("AAPL", ("187.20", 2), ("187.25", 1)))
    assert out.events == [
        Quote(
            instrument="alpaca:AAPL",
            exchange_ts_ns=MINUTE_NS + 123_456_789,
            receive_ts_ns=RECEIVED_NS,
            bid_price="187.20",
            bid_size="2",
            ask_price="187.25",
            ask_size="1",
        )
    ]


def test_quote_with_an_empty_side_reports_that_side_as_none() -> None:
    adapter = authenticated(make_adapter())
    [event] = feed(adapter, quote("AAPL", (0, 0), ("187.25", 3))).events
    assert isinstance(event, Quote)
    assert (event.bid_price, event.bid_size) == (None, None)
    assert (event.ask_price, event.ask_size) == ("187.25", "3")


def test_bar_becomes_a_one_minute_bar_with_vwap_and_trade_count() -> None:
    adapter = authenticated(make_adapter())
    ohlc = ("187.1", "187.5", "186.90", "187.25")
    out = feed(adapter, bar("AAPL", ohlc, 4200, trade_count=37, vwap="187.2031"))
    assert out.events == [
        Bar(
            instrument="alpaca:AAPL",
            exchange_ts_ns=MINUTE_NS,
            receive_ts_ns=RECEIVED_NS,
            interval="1m",
            start_ts_ns=MINUTE_NS,
            open="187.1",
            high="187.5",
            low="186.90",
            close="187.25",
            volume="4200",
            trade_count=37,
            vwap="187.2031",
        )
    ]


def test_bar_with_close_above_high_is_skipped_as_parse_error() -> None:
    adapter = authenticated(make_adapter())
    out = feed(adapter, bar("AAPL", ("187", "187.5", "186", "188"), 10))
    assert out.events == []
    assert problem_kinds(out) == {"parse_error": 1}


def test_frame_with_several_messages_yields_every_event_in_order() -> None:
    adapter = authenticated(make_adapter(("AAPL", "MSFT")))
    out = feed(
        adapter,
        trade("AAPL", "187.23", 100, trade_id=1),
        trade("MSFT", "370.6", 5, trade_id=2),
        quote("AAPL", ("187.2", 2), ("187.25", 1)),
        bar("MSFT", ("370", "371", "369.5", "370.6"), 900),
    )
    assert [(type(e).__name__, e.instrument) for e in out.events] == [  # type: ignore[union-attr]
        ("Trade", "alpaca:AAPL"),
        ("Trade", "alpaca:MSFT"),
        ("Quote", "alpaca:AAPL"),
        ("Bar", "alpaca:MSFT"),
    ]
    assert out.problems == []


def test_correction_names_the_original_and_the_corrected_trade_as_written() -> None:
    adapter = authenticated(make_adapter())
    out = feed(
        adapter,
        correction(
            "AAPL",
            original=(52983525033527, "39.1582", 440000),
            corrected=(52983525034326, "39.1809", 440000),
            t="2024-01-02T14:30:05.5Z",
            exchange="M",
        ),
    )
    assert out.events == [
        TradeCorrection(
            instrument="alpaca:AAPL",
            exchange_ts_ns=MINUTE_NS + 5_500_000_000,
            receive_ts_ns=RECEIVED_NS,
            original_trade_id="M-52983525033527",
            original_price="39.1582",
            original_size="440000",
            corrected_trade_id="M-52983525034326",
            corrected_price="39.1809",
            corrected_size="440000",
        )
    ]
    assert out.problems == []


@pytest.mark.parametrize(("action", "reason"), [("C", "cancel"), ("E", "error")])
def test_cancel_or_error_names_the_withdrawn_trade_and_why(action: str, reason: str) -> None:
    adapter = authenticated(make_adapter())
    out = feed(adapter, cancel("AAPL", 465, "105.310", 300, action=action, exchange="D"))
    assert out.events == [
        TradeCancel(
            instrument="alpaca:AAPL",
            exchange_ts_ns=MINUTE_NS + 6_500_000_000,
            receive_ts_ns=RECEIVED_NS,
            trade_id="D-465",
            price="105.310",
            size="300",
            reason=reason,  # type: ignore[arg-type]
        )
    ]
    assert out.problems == []


def test_revisions_name_trades_as_the_trades_themselves_do() -> None:
    adapter = authenticated(make_adapter())
    out = feed(
        adapter,
        trade("AAPL", "187.23", 100, trade_id=7, exchange="K"),
        correction("AAPL", original=(7, "187.23", 100), corrected=(8, "187.32", 100), exchange="K"),
        cancel("AAPL", 8, "187.32", 100, exchange="K"),
    )
    [traded, corrected, canceled] = out.events
    assert isinstance(traded, Trade) and isinstance(corrected, TradeCorrection)
    assert isinstance(canceled, TradeCancel)
    assert corrected.original_trade_id == traded.trade_id
    assert canceled.trade_id == corrected.corrected_trade_id


@pytest.mark.parametrize(
    "message",
    [
        correction("AAPL", original=(1, "1.5", 10), corrected=(2, "-1.6", 10)),
        correction("AAPL", original=(1, "1.5", 10), corrected=(2, "1.6", 0)),
        correction("AAPL", original=(1, "1.5", 10), corrected=(2, "1.6", 10)) | {"op": "abc"},
        without(correction("AAPL", original=(1, "1.5", 10), corrected=(2, "1.6", 10)), "ci"),
        correction("AAPL", original=(1, "1.5", 10), corrected=(2, "1.6", 10), t="yesterday"),
        cancel("AAPL", 1, "0", 10),
        cancel("AAPL", 1, "1.5", 10, action="Z"),
        cancel("AAPL", 1, "1.5", 10) | {"i": "one"},
    ],
)
def test_revision_with_bad_field_is_skipped_as_parse_error_and_the_rest_kept(
    message: Message,
) -> None:
    adapter = authenticated(make_adapter())
    out = feed(adapter, message, trade("AAPL", "187.23", 100))
    assert [type(e).__name__ for e in out.events] == ["Trade"]
    assert [(p.kind, p.instrument) for p in out.problems] == [("parse_error", "alpaca:AAPL")]


def test_revision_of_an_unsubscribed_symbol_is_an_unknown_message() -> None:
    adapter = authenticated(make_adapter())
    out = feed(adapter, cancel("TSLA", 1, "250", 1))
    assert out.events == []
    assert [(p.kind, p.instrument) for p in out.problems] == [("unknown_message", "alpaca:TSLA")]


# -- bad input --------------------------------------------------------------------------------


@pytest.mark.parametrize("frame", ["not json", '[{"T":"t",', '{"T":"t","S":"AAPL"}', "5", b"\xff"])
def test_malformed_frame_is_one_parse_error_and_the_next_frame_still_parses(
    frame: str | bytes,
) -> None:
    adapter = authenticated(make_adapter())
    out = adapter.on_message(connection(adapter), frame, RECEIVED_NS)
    assert out.events == [] and problem_kinds(out) == {"parse_error": 1}
    assert len(feed(adapter, trade("AAPL", "1", 1)).events) == 1


def test_frame_with_bad_items_keeps_the_good_items_beside_them() -> None:
    adapter = authenticated(make_adapter())
    missing_price = trade("AAPL", "1", 1)
    del missing_price["p"]
    text_price = trade("AAPL", "1", 1) | {"p": "abc"}
    out = feed(
        adapter,
        trade("AAPL", "187.23", 100, trade_id=1),
        missing_price,
        text_price,
        trade("AAPL", "-1.5", 100),
        trade("AAPL", "187.24", 0),
        quote("AAPL", ("-1", 1), ("187.25", 1)),
        {"T": "zz", "S": "AAPL"},
        {"S": "AAPL"},
        "a string",  # type: ignore[arg-type]
        trade("TSLA", "250", 1),
        trade("AAPL", "187.25", 50, trade_id=2),
    )
    assert [e.trade_id for e in out.events] == ["V-1", "V-2"]  # type: ignore[union-attr]
    assert problem_kinds(out) == {"parse_error": 7, "unknown_message": 2}
    assert {p.instrument for p in out.problems if p.kind == "unknown_message"} == {
        "alpaca:AAPL",
        "alpaca:TSLA",
    }


def test_unknown_success_message_is_an_unknown_message() -> None:
    adapter = authenticated(make_adapter())
    assert problem_kinds(feed(adapter, {"T": "success", "msg": "welcome"})) == {
        "unknown_message": 1
    }


# -- exchange errors --------------------------------------------------------------------------


def test_auth_failure_tells_which_settings_to_fix_and_stops_for_good() -> None:
    adapter = make_adapter()
    adapter.on_open(connection(adapter), RECEIVED_NS)
    out = feed(adapter, error(402, "auth failed"))
    [problem] = out.problems
    assert problem.kind == "exchange_error"
    assert "402" in problem.detail and "api_key and api_secret" in problem.detail
    assert out.fatal == problem.detail and out.send == [] and out.events == []


def test_recording_of_the_auth_frame_masks_the_keys() -> None:
    adapter = make_adapter()
    [auth] = adapter.on_open(connection(adapter), RECEIVED_NS).send
    recorded = adapter.redact_outbound(auth)
    assert KEY not in recorded and SECRET not in recorded
    assert json.loads(recorded)["action"] == "auth"


@pytest.mark.parametrize(
    ("code", "msg", "reconnects", "hint"),
    [
        (406, "connection limit exceeded", True, "one per feed"),
        (409, "insufficient subscription", False, "does not include this feed"),
        (404, "auth timeout", True, "took too long"),
        (401, "not authenticated", True, "before authenticating"),
        (407, "slow client", True, "too slow"),
        (500, "internal error", True, "internal"),
        (405, "symbol limit exceeded", False, "more symbols than"),
        (400, "invalid syntax", False, "could not read the subscribe"),
        (403, "already authenticated", False, "twice"),
        (410, "invalid subscribe action for this feed", False, "channels"),
    ],
)
def test_error_reply_is_an_exchange_error_and_reconnects_when_the_connection_is_unusable(
    code: int, msg: str, reconnects: bool, hint: str
) -> None:
    adapter = authenticated(make_adapter(options={"feed": "sip"}))
    out = feed(adapter, error(code, msg))
    [problem] = out.problems
    assert problem.kind == "exchange_error"
    assert f"{code} {msg!r} on feed sip" in problem.detail and hint in problem.detail
    assert (out.reconnect is not None) is reconnects
    assert (out.fatal is not None) is (code == 409)


def test_unknown_error_code_reconnects_only_before_authentication() -> None:
    adapter = make_adapter()
    adapter.on_open(connection(adapter), RECEIVED_NS)
    assert feed(adapter, error(499, "new")).reconnect is not None
    authenticated(adapter)
    after = feed(adapter, error(499, "new"))
    assert after.reconnect is None and problem_kinds(after) == {"exchange_error": 1}


# -- replay -----------------------------------------------------------------------------------


def test_config_from_capture_rebuilds_feed_symbols_and_channels_without_recorded_keys() -> None:
    sent = [
        '{"action":"auth","key":"PKREAL","secret":"real-secret"}',
        '{"action":"subscribe","trades":["AAPL","MSFT"],"bars":["AAPL"]}',
    ]
    config = AlpacaAdapter.config_from_capture("wss://stream.data.alpaca.markets/v2/sip", sent)
    assert (config.symbols, config.channels, config.options) == (
        ["AAPL", "MSFT"],
        ["trades", "bars"],
        {"feed": "sip"},
    )
    assert "real-secret" not in (config.api_secret or "")
    assert connection(AlpacaAdapter(config)).url == "wss://stream.data.alpaca.markets/v2/sip"


# -- live, through ConnectionRunner and the local server ---------------------------------------


class Collected:
    """Everything a runner emitted, in order."""

    def __init__(self) -> None:
        self.outputs: list[Output] = []

    def emit(self, out: Output) -> None:
        self.outputs.append(out)

    @property
    def events(self) -> list[AnyEvent]:
        return [event for out in self.outputs for event in out.events]

    def market(self) -> list[AnyEvent]:
        kinds = Trade | TradeCorrection | TradeCancel | Quote | Bar | Gap
        return [e for e in self.events if isinstance(e, kinds)]


@asynccontextmanager
async def running(adapter: AlpacaAdapter) -> AsyncIterator[tuple[ConnectionRunner, Collected]]:
    collected = Collected()
    stop = asyncio.Event()
    async with httpx.AsyncClient() as http:
        runner = ConnectionRunner(
            adapter,
            connection(adapter),
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


def trades_seen(collected: Collected) -> Callable[[], int]:
    return lambda: sum(isinstance(e, Trade) for e in collected.events)


async def test_runner_with_dropped_connection_reconnects_resubscribes_and_marks_a_gap() -> None:
    async with AlpacaServer(key=KEY, secret=SECRET) as server:
        adapter = make_adapter(ws_url=server.url)
        async with running(adapter) as (runner, collected):
            await server.wait_for(lambda: len(server.subscribed()) == 1, what="subscription")
            assert await server.publish([trade("AAPL", "187.23", 100, trade_id=1)]) == 1
            await server.wait_for(lambda: trades_seen(collected)() == 1, what="first trade")

            await server.drop()
            await server.wait_for(lambda: server.connections == 2 and len(server.subscribed()) == 1)
            assert await server.publish([trade("AAPL", "187.24", 50, trade_id=2)]) == 1
            await server.wait_for(lambda: trades_seen(collected)() == 2, what="second trade")

    market = collected.market()
    # The last gap is the runner stopping.
    assert [type(e).__name__ for e in market] == ["Trade", "Gap", "Trade", "Gap"]
    assert [e.price for e in market if isinstance(e, Trade)] == ["187.23", "187.24"]
    drop_gap = market[1]
    assert isinstance(drop_gap, Gap) and drop_gap.instrument == "alpaca:AAPL"
    assert drop_gap.reason != "stopped"
    assert server.actions() == ["auth", "subscribe", "auth", "subscribe"]
    assert runner.stats.reconnects >= 1 and not runner.stats.problems


async def test_runner_streams_corrections_and_cancels_in_order_after_their_trades() -> None:
    async with AlpacaServer(key=KEY, secret=SECRET) as server:
        adapter = make_adapter(ws_url=server.url, channels=("trades",))
        async with running(adapter) as (runner, collected):
            await server.wait_for(lambda: len(server.subscribed()) == 1, what="subscription")
            await server.publish([trade("AAPL", "187.23", 100, trade_id=1)])
            await server.publish(
                [
                    correction("AAPL", original=(1, "187.23", 100), corrected=(2, "187.32", 100)),
                    correction("AAPL", original=(2, "187.32", 100), corrected=(3, "-1", 100)),
                    cancel("AAPL", 2, "187.32", 100, action="E"),
                ]
            )
            await server.wait_for(
                lambda: any(isinstance(e, TradeCancel) for e in collected.events), what="cancel"
            )
    seen = [e for e in collected.market() if not isinstance(e, Gap)]
    assert [type(e).__name__ for e in seen] == ["Trade", "TradeCorrection", "TradeCancel"]
    _, corrected, canceled = seen
    assert isinstance(corrected, TradeCorrection) and isinstance(canceled, TradeCancel)
    assert (corrected.original_trade_id, corrected.corrected_trade_id) == ("V-1", "V-2")
    assert (corrected.corrected_price, canceled.trade_id, canceled.reason) == (
        "187.32",
        "V-2",
        "error",
    )
    # The correction to a negative price is refused and counted, and the stream goes on.
    assert runner.stats.problems == {"parse_error": 1}


async def test_runner_with_garbage_frames_counts_them_and_keeps_streaming() -> None:
    async with AlpacaServer(key=KEY, secret=SECRET) as server:
        adapter = make_adapter(ws_url=server.url)
        async with running(adapter) as (runner, collected):
            await server.wait_for(lambda: len(server.subscribed()) == 1, what="subscription")
            await server.send_raw("}{ not json")
            await server.send_raw('[{"T":"mystery"}]')
            await server.publish([trade("AAPL", "187.23", 100)])
            await server.wait_for(lambda: trades_seen(collected)() == 1, what="trade")
    assert runner.stats.problems == {"parse_error": 1, "unknown_message": 1}
    assert server.connections == 1


async def test_runner_with_wrong_keys_reports_the_auth_failure_and_streams_nothing() -> None:
    async with AlpacaServer(key=KEY, secret="another-secret") as server:
        adapter = make_adapter(ws_url=server.url)
        async with running(adapter) as (runner, collected):
            # Wrong keys never fix themselves: the feed gives up and says so (waited for here:
            # leaving the block stops the runner, which would then report "stopped").
            await server.wait_for(lambda: runner.stats.state == "failed", what="failed state")
            await asyncio.sleep(0.3)
    assert runner.stats.problems["exchange_error"] >= 1
    details = [p.detail for out in collected.outputs for p in out.problems]
    assert "402" in details[0] and "api_key and api_secret" in details[0]
    assert server.actions()[:1] == ["auth"] and "subscribe" not in server.actions()
    # One attempt only.
    assert server.connections == 1 and runner.stats.state == "failed"
    assert not [e for e in collected.events if isinstance(e, Trade | Quote | Bar)]


async def test_runner_on_a_feed_outside_the_plan_reports_insufficient_subscription() -> None:
    async with AlpacaServer(key=KEY, secret=SECRET, plan_feeds=frozenset({"iex"})) as server:
        adapter = make_adapter(ws_url=server.url_for("sip"), options={"feed": "sip"})
        async with running(adapter) as (runner, collected):
            await server.wait_for(lambda: runner.stats.problems["exchange_error"] >= 1)
    first = next(p for out in collected.outputs for p in out.problems)
    assert "409" in first.detail and "does not include this feed" in first.detail


class QuickWatchdogAlpaca(AlpacaAdapter):
    silence_timeout_s = 0.2


async def test_runner_with_silent_server_reconnects_after_the_watchdog_and_resumes() -> None:
    async with AlpacaServer(key=KEY, secret=SECRET) as server:
        adapter = QuickWatchdogAlpaca(make_adapter(ws_url=server.url).config)
        async with running(adapter) as (runner, collected):
            await server.wait_for(lambda: len(server.subscribed()) == 1, what="subscription")
            server.silent = True
            await server.wait_for(lambda: server.connections >= 2, what="watchdog reconnect")
            server.silent = False
            await server.wait_for(lambda: len(server.subscribed()) == 1, what="resubscription")
            await server.publish([trade("AAPL", "187.23", 100)])
            await server.wait_for(lambda: trades_seen(collected)() == 1, what="trade")
    reasons = [e.reason for e in collected.events if isinstance(e, Gap)]
    assert "watchdog" in reasons[0] and reasons[-1] == "stopped"


async def test_runner_beside_another_connection_with_the_same_keys_reports_the_limit() -> None:
    async with AlpacaServer(key=KEY, secret=SECRET) as server:
        first, second = make_adapter(ws_url=server.url), make_adapter(ws_url=server.url)
        async with running(first):
            await server.wait_for(lambda: len(server.subscribed()) == 1, what="subscription")
            async with running(second) as (runner, collected):
                await server.wait_for(lambda: runner.stats.problems["exchange_error"] >= 1)
            assert len(server.subscribed()) == 1
    first_problem = next(p for out in collected.outputs for p in out.problems)
    assert "406" in first_problem.detail and "one per feed" in first_problem.detail


# -- the local server itself, as a raw client sees it ------------------------------------------


async def receive(ws: ClientConnection) -> list[Message]:
    reply: list[Message] = json.loads(await asyncio.wait_for(ws.recv(), timeout=5))
    return reply


async def test_server_answers_protocol_misuse_with_alpaca_error_codes() -> None:
    async with AlpacaServer(key=KEY, secret=SECRET, symbol_limit=2) as server:
        async with connect(server.url) as ws:
            assert await receive(ws) == [{"T": "success", "msg": "connected"}]
            await ws.send('{"action":"subscribe","trades":["AAPL"]}')
            assert await receive(ws) == [error(401, "not authenticated")]
            await ws.send("hello")
            assert await receive(ws) == [error(400, "invalid syntax")]
            await ws.send(json.dumps({"action": "auth", "key": KEY, "secret": SECRET}))
            assert await receive(ws) == [{"T": "success", "msg": "authenticated"}]
            await ws.send(json.dumps({"action": "auth", "key": KEY, "secret": SECRET}))
            assert await receive(ws) == [error(403, "already authenticated")]
            await ws.send('{"action":"subscribe","trades":["AAPL","MSFT"],"quotes":["TSLA"]}')
            assert await receive(ws) == [error(405, "symbol limit exceeded")]
            await ws.send('{"action":"subscribe","trades":["aapl"]}')
            assert await receive(ws) == [error(400, "invalid syntax")]
            await ws.send('{"action":"subscribe","trades":["AAPL"],"bars":["*"]}')
            [subscription] = await receive(ws)
            assert subscription["trades"] == subscription["corrections"] == ["AAPL"]
            assert subscription["bars"] == ["*"] and subscription["quotes"] == []


async def test_server_without_auth_in_time_answers_auth_timeout_and_closes() -> None:
    async with AlpacaServer(auth_timeout_s=0.05) as server:
        async with connect(server.url) as ws:
            assert await receive(ws) == [{"T": "success", "msg": "connected"}]
            assert await receive(ws) == [error(404, "auth timeout")]
            await asyncio.wait_for(ws.wait_closed(), timeout=5)
