"""Coinbase Advanced Trade market data: trades, best bid/offer and the L2 book.

The protocol rules this adapter relies on (docs.cdp.coinbase.com, Advanced Trade WebSocket
overview, channels and rate-limit pages):

- subscribe within 5 s of connecting or be disconnected, one channel per subscribe message;
- every message carries ``sequence_num``, one more than the previous message on the same
  connection: a jump means messages were dropped, a lower number is a late copy to ignore;
- the ``heartbeats`` channel sends a ``heartbeat_counter`` every second and keeps quiet
  subscriptions open (they close after 60-90 s without updates); a jump in it means loss too;
- ``level2`` replies on channel ``l2_data``: a snapshot after each subscribe, then updates
  whose ``new_quantity`` is the new size of the level ("0" removes it); so unsubscribing and
  subscribing again resyncs a book without reconnecting;
- ``market_trades`` begins with a snapshot of recent trades, then sends updates;
- unauthenticated clients may send 8 messages per second per IP, and open 8 connections per
  second per IP ("Advanced Trade WebSocket Rate Limits"; earlier versions of that page allowed
  750 connections per second, and during the beta one every 4 s).

Connections run in separate feed processes that share nothing, so they keep to the message
allowance by when they open: each is given an opening delay from its index (``open_delay_s``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from typing import ClassVar

import msgspec

from actors.venues.base import (
    ConfigError,
    ConnectionSpec,
    Output,
    Problem,
    VenueAdapter,
    VenueConfig,
)
from actors.venues.common import QuoteSide
from core.events import (
    BookDelta,
    BookSnapshot,
    Gap,
    MarketChannel,
    PriceLevel,
    Quote,
    Side,
    Trade,
    checked_decimal,
)
from core.timestamps import rfc3339_ns

__all__ = ["CoinbaseAdapter", "MESSAGES_PER_S_PER_IP"]

# Our channels and the Coinbase channels that carry them.
_SUBSCRIPTIONS: dict[MarketChannel, str] = {
    "trades": "market_trades",
    "quotes": "ticker",
    "book": "level2",
}
_HEARTBEATS = "heartbeats"
_KNOWN_REPLY_CHANNELS = frozenset(
    {"l2_data", "market_trades", "ticker", "heartbeats", "subscriptions"}
)

MESSAGES_PER_S_PER_IP = 8
# The docs name no cap on products per connection. Each connection costs one subscribe message
# per channel against the 8 messages/s per IP allowance, while every product on it adds to the
# snapshot burst after subscribing and to the load one reader must keep up with; 20 balances both.
DEFAULT_PRODUCTS_PER_CONNECTION = 20

_PRODUCT = re.compile(r"[A-Z0-9]+(?:-[A-Z0-9]+)+")
# "-USDC" products stream only on the user channel; market data channels answer them with the
# "-USD" product's data. These two are the documented exceptions.
_USDC_ON_MARKET_DATA = frozenset({"USDT-USDC", "EURC-USDC"})
_PRODUCT_TOKEN = re.compile(r"[A-Za-z0-9]+(?:-[A-Za-z0-9]+)+")

# Public market_trades carry the side of the resting (maker) order; our trades carry the side
# of the order that took liquidity, so it flips.
_TAKER_SIDE: dict[str, Side] = {"BUY": "sell", "SELL": "buy"}
_MAX_TRADE_ID_DIGITS = 30


# -- what Coinbase sends -------------------------------------------------------------------


class _L2Update(msgspec.Struct):
    side: str
    event_time: str
    price_level: str
    new_quantity: str


class _L2Event(msgspec.Struct):
    type: str
    product_id: str
    updates: list[_L2Update]


class _MarketTrade(msgspec.Struct):
    trade_id: str
    product_id: str
    price: str
    size: str
    side: str
    time: str


class _TradesEvent(msgspec.Struct):
    type: str
    trades: list[_MarketTrade]


class _Ticker(msgspec.Struct):
    product_id: str
    # An empty side of the book shows as a missing or empty best price.
    best_bid: str = ""
    best_bid_quantity: str = ""
    best_ask: str = ""
    best_ask_quantity: str = ""


class _TickerEvent(msgspec.Struct):
    type: str
    tickers: list[_Ticker]


class _HeartbeatEvent(msgspec.Struct):
    # An integer on the wire, a string in older documentation: both are accepted.
    heartbeat_counter: int | str


class _L2Message(msgspec.Struct, tag_field="channel", tag="l2_data"):
    timestamp: str
    sequence_num: int
    events: list[_L2Event]


class _TradesMessage(msgspec.Struct, tag_field="channel", tag="market_trades"):
    sequence_num: int
    events: list[_TradesEvent]


class _TickerMessage(msgspec.Struct, tag_field="channel", tag="ticker"):
    timestamp: str
    sequence_num: int
    events: list[_TickerEvent]


class _HeartbeatMessage(msgspec.Struct, tag_field="channel", tag="heartbeats"):
    sequence_num: int
    events: list[_HeartbeatEvent]


class _SubscriptionsMessage(msgspec.Struct, tag_field="channel", tag="subscriptions"):
    sequence_num: int


class _Envelope(msgspec.Struct):
    """What every data message has, even one whose events cannot be read."""

    channel: str
    sequence_num: int


class _Reply(msgspec.Struct):
    type: str = ""
    message: str = ""
    reason: str = ""


class _SentFrame(msgspec.Struct):
    type: str
    channel: str
    product_ids: list[str] = msgspec.field(default_factory=list)


_Message = _L2Message | _TradesMessage | _TickerMessage | _HeartbeatMessage | _SubscriptionsMessage
_decoder = msgspec.json.Decoder(_Message)
_envelope_decoder = msgspec.json.Decoder(_Envelope)
_reply_decoder = msgspec.json.Decoder(_Reply)
_sent_decoder = msgspec.json.Decoder(_SentFrame)
_encoder = msgspec.json.Encoder()


# -- helpers -------------------------------------------------------------------------------


def _frame(kind: str, channel: str, product_ids: list[str] | None) -> str:
    request: dict[str, object] = {"type": kind}
    if product_ids is not None:
        request["product_ids"] = product_ids
    request["channel"] = channel
    return _encoder.encode(request).decode()


def _check_product(symbol: str) -> None:
    if _PRODUCT.fullmatch(symbol) is None:
        raise ConfigError(
            f"coinbase products read BASE-QUOTE in capitals (BTC-USD), got {symbol!r}"
        )
    if symbol.endswith("-USDC") and symbol not in _USDC_ON_MARKET_DATA:
        raise ConfigError(
            f"coinbase streams {symbol} market data as {symbol[:-1]}: subscribe to that instead"
        )


def _products_per_connection(options: dict[str, str]) -> int:
    text = options.get("products_per_connection", str(DEFAULT_PRODUCTS_PER_CONNECTION))
    if not text.isascii() or not text.isdigit() or int(text) < 1:
        raise ConfigError(f"products_per_connection must be a positive integer, got {text!r}")
    return int(text)


def _trade_number(trade_id: str) -> int | None:
    """Coinbase trade ids count up per product; None for an id that is not such a number."""
    if trade_id.isascii() and trade_id.isdigit() and len(trade_id) <= _MAX_TRADE_ID_DIGITS:
        return int(trade_id)
    return None


def _ticker_side(price: str, size: str) -> QuoteSide:
    # Coinbase marks an empty side by an empty price; a size beside a price is kept as sent,
    # zero or missing, unlike the zero-size rule of ``quote_side``.
    if not price:
        return None, None
    return checked_decimal(price), checked_decimal(size, allow_zero=True) if size else None


def _levels(
    updates: list[_L2Update], *, timed: bool
) -> tuple[list[PriceLevel], list[PriceLevel], int]:
    """Bids, asks and the latest event_time (0 unless ``timed``); ValueError on any bad level,
    so a book is changed by a whole event or not at all."""
    bids: list[PriceLevel] = []
    asks: list[PriceLevel] = []
    latest = 0
    for update in updates:
        level = (
            checked_decimal(update.price_level),
            checked_decimal(update.new_quantity, allow_zero=True),
        )
        if update.side == "bid":
            bids.append(level)
        elif update.side == "offer":
            asks.append(level)
        else:
            raise ValueError(f"unknown book side {update.side!r}")
        if timed:
            latest = max(latest, rfc3339_ns(update.event_time))
    return bids, asks, latest


@dataclass(slots=True)
class _Connection:
    """What one connection carries and how far its message numbering has got."""

    products: set[str]
    sequence: int | None = None
    heartbeat: int | None = None
    # Books waiting for a snapshot: updates for them refer to a book we do not hold.
    unsynced: set[str] = field(default_factory=set)


class CoinbaseAdapter(VenueAdapter):
    venue: ClassVar[str] = "coinbase"
    default_ws_url: ClassVar[str] = "wss://advanced-trade-ws.coinbase.com"
    # Heartbeats arrive every second, so ten silent seconds mean the connection is dead.
    silence_timeout_s: ClassVar[float] = 10.0

    def __init__(self, config: VenueConfig) -> None:
        super().__init__(config)
        symbols = list(dict.fromkeys(config.symbols))
        if not symbols:
            raise ConfigError("coinbase needs at least one product")
        for symbol in symbols:
            _check_product(symbol)
        channels = list(dict.fromkeys(config.channels))
        unsupported = [channel for channel in channels if channel not in _SUBSCRIPTIONS]
        if unsupported or not channels:
            raise ConfigError(f"coinbase streams {', '.join(_SUBSCRIPTIONS)}; asked for {channels}")
        self._symbols = symbols
        self._channels = [_SUBSCRIPTIONS[channel] for channel in channels]
        self._trades = "trades" in channels
        self._quotes = "quotes" in channels
        self._book = "book" in channels
        self._per_connection = _products_per_connection(config.options)
        self._instruments = {symbol: self.instrument(symbol) for symbol in symbols}
        self._connections: dict[str, _Connection] = {}
        # Products the venue refused: never subscribed again while this adapter lives.
        self._rejected: set[str] = set()
        self._last_trade: dict[str, int] = {}

    # -- what to connect to ---------------------------------------------------------------

    def connections(self) -> list[ConnectionSpec]:
        # Opening, a connection sends a subscribe per channel and one for heartbeats. Spaced by
        # index so openings use half the allowance in any second: the rest absorbs handshakes of
        # uneven length and resyncs (two messages each) on connections already open.
        opening_messages = 1 + len(self._channels)
        spacing_s = opening_messages / (MESSAGES_PER_S_PER_IP / 2)
        specs = self.split_connections(self._symbols, self._per_connection)
        return [replace(spec, open_delay_s=index * spacing_s) for index, spec in enumerate(specs)]

    # -- protocol events ------------------------------------------------------------------

    def on_open(self, conn: ConnectionSpec, now_ns: int) -> Output:
        state = self._start(conn)
        products = sorted(state.products)
        # Heartbeats need no products and go first: they keep every other subscription open.
        send = [_frame("subscribe", _HEARTBEATS, None)]
        if products:
            send.extend(_frame("subscribe", channel, products) for channel in self._channels)
        return Output(send=send)

    def on_close(self, conn: ConnectionSpec, reason: str, now_ns: int) -> Output:
        self._connections.pop(conn.name, None)
        carried = tuple(symbol for symbol in conn.symbols if symbol not in self._rejected)
        return super().on_close(replace(conn, symbols=carried), reason, now_ns)

    def on_message(self, conn: ConnectionSpec, frame: str | bytes, receive_ts_ns: int) -> Output:
        state = self._connections.get(conn.name) or self._start(conn)
        try:
            message = _decoder.decode(frame)
        except msgspec.DecodeError as error:
            return self._on_other(state, frame, error, receive_ts_ns)
        out = Output()
        if not self._in_sequence(state, message.sequence_num, receive_ts_ns, out):
            return out
        if isinstance(message, _L2Message):
            self._on_level2(state, message, receive_ts_ns, out)
        elif isinstance(message, _TradesMessage):
            self._on_trades(state, message, receive_ts_ns, out)
        elif isinstance(message, _TickerMessage):
            self._on_ticker(state, message, receive_ts_ns, out)
        elif isinstance(message, _HeartbeatMessage):
            self._on_heartbeats(state, message, receive_ts_ns, out)
        return out

    # -- replay ---------------------------------------------------------------------------

    @classmethod
    def config_from_capture(cls, url: str, sent: list[str]) -> VenueConfig:
        ours = {coinbase: channel for channel, coinbase in _SUBSCRIPTIONS.items()}
        symbols: dict[str, None] = {}
        channels: dict[MarketChannel, None] = {}
        for text in sent:
            try:
                request = _sent_decoder.decode(text)
            except msgspec.DecodeError:
                continue
            channel = ours.get(request.channel)
            if request.type != "subscribe" or channel is None:
                continue
            channels[channel] = None
            symbols.update(dict.fromkeys(request.product_ids))
        if not symbols:
            raise ValueError(f"no coinbase market data subscription among {len(sent)} sent frames")
        return VenueConfig(
            venue=cls.venue, symbols=list(symbols), channels=list(channels), ws_url=url
        )

    # -- continuity -----------------------------------------------------------------------

    def _start(self, conn: ConnectionSpec) -> _Connection:
        products = {symbol for symbol in conn.symbols if symbol not in self._rejected}
        if self._book:
            for symbol in products:
                self.book(symbol).clear()
        state = _Connection(products=products, unsynced=set(products) if self._book else set())
        self._connections[conn.name] = state
        return state

    def _in_sequence(self, state: _Connection, sequence: int, ts: int, out: Output) -> bool:
        """Track sequence_num; False when the message is a late copy to skip."""
        last = state.sequence
        if last is None or sequence == last + 1:
            state.sequence = sequence
            return True
        if sequence <= last:
            out.problems.append(
                Problem(
                    "sequence_error", f"sequence_num {sequence} after {last}: late copy skipped"
                )
            )
            return False
        state.sequence = sequence
        self._lost(state, f"sequence_num jumped from {last} to {sequence}", ts, out)
        return True

    def _lost(self, state: _Connection, detail: str, ts: int, out: Output) -> None:
        """Messages of this connection went missing: whatever they were about is in doubt."""
        out.problems.append(Problem("sequence_error", detail))
        # The next heartbeat shows the same loss again; it must not count twice.
        state.heartbeat = None
        self._break(state, state.products, detail, ts, out)

    def _break(
        self, state: _Connection, products: set[str], reason: str, ts: int, out: Output
    ) -> None:
        """Gap ``products`` and fetch fresh book snapshots for them."""
        for product in sorted(products):
            out.events.append(
                Gap(
                    instrument=self._instruments[product],
                    exchange_ts_ns=ts,
                    receive_ts_ns=ts,
                    reason=reason,
                )
            )
        if not self._book or not products:
            return
        for product in products:
            self.book(product).clear()
        state.unsynced.update(products)
        # Unsubscribing first makes the subscribe send a snapshot; updates still in flight for
        # these books are dropped until it arrives.
        ids = sorted(products)
        out.send.append(_frame("unsubscribe", "level2", ids))
        out.send.append(_frame("subscribe", "level2", ids))

    def _carries(
        self, state: _Connection, product: str, wanted: bool, channel: str, out: Output
    ) -> bool:
        if wanted and product in state.products:
            return True
        out.problems.append(
            Problem("unknown_message", f"{channel} for {product!r}, not subscribed here")
        )
        return False

    # -- channels -------------------------------------------------------------------------

    def _on_level2(
        self, state: _Connection, message: _L2Message, receive_ts_ns: int, out: Output
    ) -> None:
        for event in message.events:
            product = event.product_id
            if not self._carries(state, product, self._book, "level2", out):
                continue
            instrument = self._instruments[product]
            if event.type == "update":
                if product in state.unsynced:
                    continue
                try:
                    bids, asks, event_ns = _levels(event.updates, timed=True)
                except ValueError as error:
                    out.problems.append(
                        Problem("parse_error", f"level2 update: {error}", instrument)
                    )
                    self._break(state, {product}, "unreadable book update", receive_ts_ns, out)
                    continue
                if not bids and not asks:
                    continue
                book = self.book(product)
                book.apply(bids, asks)
                if self._crossed(state, product, receive_ts_ns, out):
                    continue
                out.events.append(
                    BookDelta(
                        instrument=instrument,
                        exchange_ts_ns=event_ns,
                        receive_ts_ns=receive_ts_ns,
                        bids=bids,
                        asks=asks,
                    )
                )
            elif event.type == "snapshot":
                try:
                    # Snapshot levels are as of the message's time; their event_time is unused.
                    snapshot_ns = rfc3339_ns(message.timestamp)
                    bids, asks, _ = _levels(event.updates, timed=False)
                except ValueError as error:
                    out.problems.append(
                        Problem("parse_error", f"level2 snapshot: {error}", instrument)
                    )
                    self._break(state, {product}, "unreadable book snapshot", receive_ts_ns, out)
                    continue
                book = self.book(product)
                book.replace(bids, asks)
                state.unsynced.discard(product)
                if self._crossed(state, product, receive_ts_ns, out):
                    continue
                out.events.append(
                    BookSnapshot(
                        instrument=instrument,
                        exchange_ts_ns=snapshot_ns,
                        receive_ts_ns=receive_ts_ns,
                        bids=book.bids(),
                        asks=book.asks(),
                    )
                )
            else:
                out.problems.append(
                    Problem("unknown_message", f"level2 event type {event.type!r}", instrument)
                )

    def _crossed(self, state: _Connection, product: str, ts: int, out: Output) -> bool:
        book = self.book(product)
        if not book.is_crossed():
            return False
        detail = f"best bid {book.best_bid()} >= best ask {book.best_ask()}"
        out.problems.append(Problem("crossed_book", detail, self._instruments[product]))
        self._break(state, {product}, f"crossed book: {detail}", ts, out)
        return True

    def _on_trades(
        self, state: _Connection, message: _TradesMessage, receive_ts_ns: int, out: Output
    ) -> None:
        for event in message.events:
            if event.type not in ("snapshot", "update"):
                out.problems.append(
                    Problem("unknown_message", f"market_trades event type {event.type!r}")
                )
                continue
            parsed: list[tuple[int | None, Trade]] = []
            for trade in event.trades:
                product = trade.product_id
                if not self._carries(state, product, self._trades, "market_trades", out):
                    continue
                instrument = self._instruments[product]
                try:
                    if not trade.trade_id:
                        raise ValueError("empty trade_id")
                    parsed.append(
                        (
                            _trade_number(trade.trade_id),
                            Trade(
                                instrument=instrument,
                                exchange_ts_ns=rfc3339_ns(trade.time),
                                receive_ts_ns=receive_ts_ns,
                                trade_id=trade.trade_id,
                                price=checked_decimal(trade.price),
                                size=checked_decimal(trade.size),
                                side=_TAKER_SIDE.get(trade.side),
                            ),
                        )
                    )
                except ValueError as error:
                    out.problems.append(
                        Problem("parse_error", f"market trade: {error}", instrument)
                    )
            # Snapshots and batched updates list the newest trade first.
            if all(number is not None for number, _ in parsed):
                parsed.sort(key=lambda item: item[0] or 0)
            out.events.extend(self._unpublished(parsed, snapshot=event.type == "snapshot"))

    def _unpublished(
        self, parsed: list[tuple[int | None, Trade]], *, snapshot: bool
    ) -> list[Trade]:
        """The trades to publish: none twice, and none from before we first subscribed.

        The snapshot after subscribing repeats recent trades; after a reconnect, those newer than
        the last one published were missed meanwhile and are worth having, the rest are not.
        """
        history = (
            {trade.instrument for _, trade in parsed if trade.instrument not in self._last_trade}
            if snapshot
            else set()
        )
        fresh: list[Trade] = []
        for number, trade in parsed:
            if number is None:
                if not snapshot:
                    fresh.append(trade)
                continue
            last = self._last_trade.get(trade.instrument)
            if last is not None and number <= last:
                continue
            self._last_trade[trade.instrument] = number
            if trade.instrument not in history:
                fresh.append(trade)
        return fresh

    def _on_ticker(
        self, state: _Connection, message: _TickerMessage, receive_ts_ns: int, out: Output
    ) -> None:
        for event in message.events:
            if event.type not in ("snapshot", "update"):
                out.problems.append(Problem("unknown_message", f"ticker event type {event.type!r}"))
                continue
            for ticker in event.tickers:
                product = ticker.product_id
                if not self._carries(state, product, self._quotes, "ticker", out):
                    continue
                instrument = self._instruments[product]
                try:
                    exchange_ns = rfc3339_ns(message.timestamp)
                    bid_price, bid_size = _ticker_side(ticker.best_bid, ticker.best_bid_quantity)
                    ask_price, ask_size = _ticker_side(ticker.best_ask, ticker.best_ask_quantity)
                except ValueError as error:
                    out.problems.append(Problem("parse_error", f"ticker: {error}", instrument))
                    continue
                out.events.append(
                    Quote(
                        instrument=instrument,
                        exchange_ts_ns=exchange_ns,
                        receive_ts_ns=receive_ts_ns,
                        bid_price=bid_price,
                        bid_size=bid_size,
                        ask_price=ask_price,
                        ask_size=ask_size,
                    )
                )

    def _on_heartbeats(
        self, state: _Connection, message: _HeartbeatMessage, receive_ts_ns: int, out: Output
    ) -> None:
        for event in message.events:
            counter = event.heartbeat_counter
            if isinstance(counter, str):
                if not (counter.isascii() and counter.isdigit()):
                    out.problems.append(Problem("parse_error", f"heartbeat_counter {counter!r}"))
                    continue
                counter = int(counter)
            last = state.heartbeat
            if last is not None and counter <= last:
                out.problems.append(
                    Problem(
                        "sequence_error",
                        f"heartbeat_counter {counter} after {last}: late copy skipped",
                    )
                )
                continue
            if last is not None and counter != last + 1:
                self._lost(
                    state, f"heartbeat_counter jumped from {last} to {counter}", receive_ts_ns, out
                )
            state.heartbeat = counter

    # -- everything else ------------------------------------------------------------------

    def _on_other(
        self, state: _Connection, frame: str | bytes, error: msgspec.DecodeError, receive_ts_ns: int
    ) -> Output:
        """A frame that is no well-formed data message: an error reply, or something broken."""
        out = Output()
        try:
            envelope = _envelope_decoder.decode(frame)
        except msgspec.DecodeError:
            envelope = None
        if envelope is not None:
            # Numbered, so it counts for continuity even though its content is lost.
            if not self._in_sequence(state, envelope.sequence_num, receive_ts_ns, out):
                return out
            if envelope.channel not in _KNOWN_REPLY_CHANNELS:
                out.problems.append(Problem("unknown_message", f"channel {envelope.channel!r}"))
                return out
            out.problems.append(Problem("parse_error", f"{envelope.channel}: {error}"))
            if envelope.channel == "l2_data":
                # Whichever books it changed are now wrong, and it does not say which.
                self._break(
                    state,
                    state.products if self._book else set(),
                    "unreadable book message",
                    receive_ts_ns,
                    out,
                )
            return out
        try:
            reply = _reply_decoder.decode(frame)
        except msgspec.ValidationError:
            out.problems.append(Problem("unknown_message", f"unrecognised frame: {error}"))
            return out
        except msgspec.DecodeError as bad_json:
            out.problems.append(Problem("parse_error", f"not JSON: {bad_json}"))
            return out
        if reply.type != "error":
            out.problems.append(Problem("unknown_message", f"message type {reply.type!r}"))
            return out
        self._on_error(state, " ".join(part for part in (reply.message, reply.reason) if part), out)
        return out

    def _on_error(self, state: _Connection, detail: str, out: Output) -> None:
        """An error reply. One naming our products means the venue refused them: stop asking."""
        tokens = {token.upper() for token in _PRODUCT_TOKEN.findall(detail)}
        named = tokens & (state.products | self._rejected)
        if not named:
            out.problems.append(Problem("exchange_error", detail))
            return
        for product in sorted(named):
            out.problems.append(Problem("exchange_error", detail, self._instruments[product]))
        refused = named & state.products
        if not refused:
            return
        self._rejected |= refused
        for product in refused:
            self.books.pop(self._instruments[product], None)
        state.products -= refused
        state.unsynced -= refused
        # A refused subscribe message subscribes none of its products: ask again for the rest.
        if state.products:
            products = sorted(state.products)
            out.send.extend(_frame("subscribe", channel, products) for channel in self._channels)
