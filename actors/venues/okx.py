"""OKX v5 public WebSocket: ``trades``, ``tickers`` and the 400-level ``books`` channel.

Protocol rules this adapter relies on (OKX API v5 documentation):

* One ``{"op":"subscribe","args":[{"channel":..,"instId":..}, ..]}`` request covers many
  channels; each is acknowledged (``{"event":"subscribe","arg":..}``) or refused on its own
  (``{"event":"error","code":"60018","msg":"..instId:X doesn't exist"}``, which names no ``arg``).
* ``books`` sends a snapshot, then updates; size ``"0"`` deletes a level. Each message carries a
  CRC32 (as a signed 32-bit int) of ``bidPx:bidSz:askPx:askSz:..`` over the best 25 levels per
  side, in the exchange's own spelling; once one side runs out only the other side continues.
* ``seqId``/``prevSeqId``: an update's ``prevSeqId`` equals the previous message's ``seqId``
  (a snapshot's is -1; ``seqId`` may reset lower after maintenance, so only identity is checked);
  ``seqId == prevSeqId`` is a keep-alive with no change. Older streams have neither field.
* The server closes a connection that is silent for 30 s; the text ``"ping"`` is answered with
  ``"pong"``. ``subscribe``/``unsubscribe`` requests are limited to 480 per connection per hour,
  and a single request must stay under 64 KB.
* ``{"event":"notice","code":"64008"}`` announces a close for a service upgrade.
"""

from __future__ import annotations

import re
from collections import deque
from typing import ClassVar, Literal

import msgspec

from actors.book import OrderBook
from actors.venues.base import (
    ConfigError,
    ConnectionSpec,
    Output,
    Problem,
    VenueAdapter,
    VenueConfig,
)
from actors.venues.common import excerpt
from core.events import (
    MARKET_CHANNELS,
    BookDelta,
    BookSnapshot,
    Gap,
    MarketChannel,
    Quote,
    Trade,
    checked_decimal,
)

__all__ = ["OkxAdapter"]

# Spot BTC-USDT, futures BTC-USD-220527, swaps UNI-USD-SWAP, options BTC-USD-220527-30000-C.
_INST_ID = re.compile(r"[A-Z0-9]+(?:-[A-Z0-9]+){1,4}")
# 60018 replies name the refused instrument only inside the message text.
_REFUSED_INST = re.compile(r"instId:([A-Za-z0-9-]+)")

_OKX_CHANNEL: dict[MarketChannel, str] = {"trades": "trades", "quotes": "tickers", "book": "books"}
_OUR_CHANNEL: dict[str, MarketChannel] = {okx: ours for ours, okx in _OKX_CHANNEL.items()}

BOOK_DEPTH = 400
# No channel count per connection is documented; this keeps one subscribe request far below
# the 64 KB limit (about 150 bytes per symbol for three channels) and bounds what a single
# reconnect puts at risk.
SYMBOLS_PER_CONNECTION = 100
SUBSCRIPTION_REQUESTS_PER_HOUR = 480
_HOUR_NS = 3600 * 1_000_000_000
_MS_NS = 1_000_000
_NO_SUCH_INSTRUMENT = "60018"
_SERVICE_UPGRADE = "64008"
_HARMLESS_EVENTS = frozenset({"subscribe", "unsubscribe", "channel-conn-count"})


class _Arg(msgspec.Struct, gc=False):
    channel: str
    instId: str | None = None


class _Envelope(msgspec.Struct, gc=False):
    event: str | None = None
    arg: _Arg | None = None
    action: str | None = None
    code: str | None = None
    msg: str | None = None
    # Kept undecoded until the channel says which type it holds; empty when absent.
    data: msgspec.Raw = msgspec.Raw()


class _Request(msgspec.Struct, gc=False):
    op: str
    args: list[_Arg] = []


class _Trade(msgspec.Struct, gc=False):
    tradeId: str
    px: str
    sz: str
    side: Literal["buy", "sell"]
    ts: str


class _Ticker(msgspec.Struct, gc=False):
    bidPx: str
    bidSz: str
    askPx: str
    askSz: str
    ts: str


class _Book(msgspec.Struct, gc=False):
    # [price, size, deprecated liquidation count, order count] per level, read by the book.
    asks: msgspec.Raw
    bids: msgspec.Raw
    ts: str
    checksum: int | None = None
    seqId: int | None = None
    prevSeqId: int | None = None


class _BooksFrame(msgspec.Struct, gc=False):
    arg: _Arg
    action: str
    data: list[_Book]


# Book frames, the bulk of the traffic, start like this as OKX writes them and are decoded in one
# pass instead of two; one that only looks like it is read again the general way, which says
# what is wrong with it.
_BOOKS_FRAME_START = '{"arg":{"channel":"books",'

_envelope = msgspec.json.Decoder(_Envelope)
_books_frame = msgspec.json.Decoder(_BooksFrame)
_trades = msgspec.json.Decoder(list[_Trade])
_tickers = msgspec.json.Decoder(list[_Ticker])
_books = msgspec.json.Decoder(list[_Book])
_json = msgspec.json.Encoder()


def _optional(text: str, *, allow_zero: bool = False) -> str | None:
    # Tickers leave a side "" when that side of the book is empty.
    return checked_decimal(text, allow_zero=allow_zero) if text else None


def _ms_to_ns(ms: str) -> int:
    return int(ms) * _MS_NS


class _BookState:
    """A book and whether it is in step with the exchange (publishable)."""

    __slots__ = ("symbol", "book", "synced", "seq")

    def __init__(self, symbol: str, book: OrderBook) -> None:
        self.symbol = symbol
        self.book = book
        self.synced = False
        self.seq: int | None = None

    def reset(self) -> None:
        self.book.clear()
        self.synced = False
        self.seq = None


class OkxAdapter(VenueAdapter):
    venue: ClassVar[str] = "okx"
    default_ws_url: ClassVar[str] = "wss://ws.okx.com:8443/ws/v5/public"
    default_rest_url: ClassVar[str] = "https://www.okx.com"
    # OKX drops connections silent for 30 s; pinging well before keeps quiet instruments alive.
    ping_interval_s: ClassVar[float | None] = 20.0
    silence_timeout_s: ClassVar[float] = 30.0

    def __init__(self, config: VenueConfig) -> None:
        super().__init__(config)
        if config.venue != self.venue:
            raise ConfigError(f"{type(self).__name__} got a configuration for {config.venue!r}")
        if not config.symbols:
            raise ConfigError(f"{self.venue}: no symbols to stream")
        for symbol in config.symbols:
            if _INST_ID.fullmatch(symbol) is None:
                raise ConfigError(
                    f"{self.venue}: {symbol!r} is not an OKX instrument id (BTC-USDT, "
                    "BTC-USD-220527, UNI-USD-SWAP)"
                )
        unsupported = [channel for channel in config.channels if channel not in _OKX_CHANNEL]
        if unsupported:
            raise ConfigError(
                f"{self.venue}: unsupported channels {unsupported} (trades, quotes, book)"
            )
        self.symbols: list[str] = list(dict.fromkeys(config.symbols))
        self._channels = [_OKX_CHANNEL[channel] for channel in dict.fromkeys(config.channels)]
        self._wanted: frozenset[MarketChannel] = frozenset(config.channels)
        self._symbols = frozenset(self.symbols)
        self._instruments = {symbol: self.instrument(symbol) for symbol in self.symbols}
        self._states = (
            {symbol: _BookState(symbol, self.book(symbol)) for symbol in self.symbols}
            if "books" in self._channels
            else {}
        )
        # Symbols OKX said do not exist: never subscribed again.
        self.rejected: set[str] = set()
        # Send times of subscribe/unsubscribe requests per connection, against the hourly cap.
        self._requests: dict[str, deque[int]] = {}

    # -- what to connect to ---------------------------------------------------------------

    def connections(self) -> list[ConnectionSpec]:
        return self.split_connections(self.symbols, SYMBOLS_PER_CONNECTION)

    # -- protocol events ------------------------------------------------------------------

    def on_open(self, conn: ConnectionSpec, now_ns: int) -> Output:
        self._requests[conn.name] = deque()
        for symbol in conn.symbols:
            state = self._states.get(symbol)
            if state is not None:
                state.reset()
        args = [
            {"channel": channel, "instId": symbol}
            for channel in self._channels
            for symbol in conn.symbols
            if symbol not in self.rejected
        ]
        if not args:
            return Output()
        self._spend(conn, 1, now_ns)
        return Output(send=[self._request("subscribe", args)])

    def on_message(self, conn: ConnectionSpec, frame: str | bytes, receive_ts_ns: int) -> Output:
        if frame == "pong" or frame == b"pong":
            return Output()
        out = Output()
        if frame.__class__ is str and frame.startswith(_BOOKS_FRAME_START):
            try:
                books = _books_frame.decode(frame)
            except (msgspec.DecodeError, msgspec.ValidationError):
                pass
            else:
                symbol = books.arg.instId
                if books.data and symbol in self._states:
                    self._on_books(conn, symbol, books.action, books.data, receive_ts_ns, out)
                    return out
        try:
            envelope = _envelope.decode(frame)
        except (msgspec.DecodeError, msgspec.ValidationError) as error:
            out.problems.append(Problem("parse_error", f"{error}: {excerpt(frame)}"))
            return out
        if envelope.event is not None:
            self._on_event(envelope, out)
            return out
        arg = envelope.arg
        if arg is None or not envelope.data or arg.instId is None:
            out.problems.append(Problem("unknown_message", excerpt(frame)))
            return out
        symbol = arg.instId
        channel = _OUR_CHANNEL.get(arg.channel)
        if channel not in self._wanted or symbol not in self._symbols:
            out.problems.append(
                Problem("unknown_message", f"unexpected {arg.channel} {symbol}: {excerpt(frame)}")
            )
            return out
        if channel == "book":
            self._on_books(conn, symbol, envelope.action, envelope.data, receive_ts_ns, out)
        elif channel == "trades":
            self._on_trades(symbol, envelope.data, receive_ts_ns, out)
        else:
            self._on_tickers(symbol, envelope.data, receive_ts_ns, out)
        return out

    def ping(self, conn: ConnectionSpec, now_ns: int) -> Output:
        return Output(send=["ping"])

    # -- channels -------------------------------------------------------------------------

    def _on_event(self, envelope: _Envelope, out: Output) -> None:
        event = envelope.event
        if event in _HARMLESS_EVENTS:
            return
        detail = f"{envelope.code}: {envelope.msg}"
        if event == "error":
            refused = _REFUSED_INST.search(envelope.msg or "")
            symbol = refused.group(1) if refused else None
            if (
                envelope.code == _NO_SUCH_INSTRUMENT
                and symbol is not None
                and symbol in self._symbols
            ):
                self.rejected.add(symbol)
                state = self._states.get(symbol)
                if state is not None:
                    state.reset()
                out.problems.append(Problem("exchange_error", detail, self._instruments[symbol]))
            else:
                out.problems.append(Problem("exchange_error", detail))
        elif event == "notice" and envelope.code == _SERVICE_UPGRADE:
            out.reconnect = f"{self.venue} notice {detail}"
        else:
            out.problems.append(Problem("unknown_message", f"event {event} {detail}"))

    def _on_trades(self, symbol: str, data: msgspec.Raw, receive_ts_ns: int, out: Output) -> None:
        instrument = self._instruments[symbol]
        try:
            trades = [
                Trade(
                    instrument=instrument,
                    exchange_ts_ns=_ms_to_ns(trade.ts),
                    receive_ts_ns=receive_ts_ns,
                    trade_id=trade.tradeId,
                    price=checked_decimal(trade.px),
                    size=checked_decimal(trade.sz),
                    side=trade.side,
                )
                for trade in _trades.decode(data)
            ]
        except (msgspec.ValidationError, msgspec.DecodeError, ValueError) as error:
            out.problems.append(Problem("parse_error", f"trades: {error}", instrument))
            return
        out.events.extend(trades)

    def _on_tickers(self, symbol: str, data: msgspec.Raw, receive_ts_ns: int, out: Output) -> None:
        instrument = self._instruments[symbol]
        try:
            quotes = [
                Quote(
                    instrument=instrument,
                    exchange_ts_ns=_ms_to_ns(ticker.ts),
                    receive_ts_ns=receive_ts_ns,
                    bid_price=_optional(ticker.bidPx),
                    bid_size=_optional(ticker.bidSz, allow_zero=True),
                    ask_price=_optional(ticker.askPx),
                    ask_size=_optional(ticker.askSz, allow_zero=True),
                )
                for ticker in _tickers.decode(data)
            ]
        except (msgspec.ValidationError, msgspec.DecodeError, ValueError) as error:
            out.problems.append(Problem("parse_error", f"tickers: {error}", instrument))
            return
        out.events.extend(quotes)

    def _on_books(
        self,
        conn: ConnectionSpec,
        symbol: str,
        action: str | None,
        data: msgspec.Raw | list[_Book],
        receive_ts_ns: int,
        out: Output,
    ) -> None:
        state = self._states[symbol]
        instrument = self._instruments[symbol]
        if action not in ("snapshot", "update"):
            out.problems.append(Problem("unknown_message", f"books action {action}", instrument))
            return
        if action == "update" and not state.synced:
            # Updates before the (re)subscription's snapshot belong to a stream we dropped.
            return
        try:
            messages = _books.decode(data) if isinstance(data, msgspec.Raw) else data
        except (msgspec.ValidationError, msgspec.DecodeError) as error:
            self._resync(conn, state, "parse_error", f"books: {error}", receive_ts_ns, out)
            return
        book = state.book
        for message in messages:
            if action == "update" and message.seqId is not None and state.seq is not None:
                if message.prevSeqId != state.seq:
                    detail = f"prevSeqId {message.prevSeqId} after seqId {state.seq}"
                    self._resync(conn, state, "sequence_error", detail, receive_ts_ns, out)
                    return
                if message.seqId == message.prevSeqId:
                    continue
            try:
                exchange_ts_ns = _ms_to_ns(message.ts)
                if action == "snapshot":
                    book.replace_json(message.bids, message.asks)
                else:
                    bids, asks = book.apply_json(message.bids, message.asks)
            except ValueError as error:
                # A book message we cannot read is one we miss: the book is no longer trustworthy.
                self._resync(conn, state, "parse_error", f"books: {error}", receive_ts_ns, out)
                return
            if action == "update":
                # Levels pushed out of OKX's 400 come with no delete.
                book.truncate(BOOK_DEPTH)
            if message.checksum is not None:
                ours = book.okx_checksum()
                if ours != message.checksum:
                    detail = f"checksum {ours} != exchange's {message.checksum}"
                    self._resync(conn, state, "checksum_failure", detail, receive_ts_ns, out)
                    return
                self.checksums_verified += 1
            if book.is_crossed():
                detail = f"best bid {book.best_bid()} >= best ask {book.best_ask()}"
                self._resync(conn, state, "crossed_book", detail, receive_ts_ns, out)
                return
            state.seq = message.seqId
            if action == "snapshot":
                state.synced = True
                out.events.append(
                    BookSnapshot(
                        instrument=instrument,
                        exchange_ts_ns=exchange_ts_ns,
                        receive_ts_ns=receive_ts_ns,
                        bids=book.bids(),
                        asks=book.asks(),
                        sequence=message.seqId,
                    )
                )
            else:
                out.events.append(
                    BookDelta(
                        instrument=instrument,
                        exchange_ts_ns=exchange_ts_ns,
                        receive_ts_ns=receive_ts_ns,
                        bids=bids,
                        asks=asks,
                        sequence=message.seqId,
                    )
                )

    def _resync(
        self,
        conn: ConnectionSpec,
        state: _BookState,
        kind: Literal["parse_error", "sequence_error", "checksum_failure", "crossed_book"],
        detail: str,
        receive_ts_ns: int,
        out: Output,
    ) -> None:
        """Drop the book and ask for a fresh snapshot: OKX sends one on every subscribe."""
        instrument = state.book.instrument
        state.reset()
        out.problems.append(Problem(kind, detail, instrument))
        out.events.append(
            Gap(
                instrument=instrument,
                exchange_ts_ns=receive_ts_ns,
                receive_ts_ns=receive_ts_ns,
                reason=f"{kind}: {detail}",
            )
        )
        if not self._spend(conn, 2, receive_ts_ns):
            # A new connection starts a new hourly allowance.
            out.reconnect = f"{self.venue} subscription request allowance spent"
            return
        args = [{"channel": "books", "instId": state.symbol}]
        out.send.append(self._request("unsubscribe", args))
        out.send.append(self._request("subscribe", args))

    # -- helpers --------------------------------------------------------------------------

    def _spend(self, conn: ConnectionSpec, requests: int, now_ns: int) -> bool:
        """Count ``requests`` against the connection's hourly cap; False if that would pass it."""
        sent = self._requests.setdefault(conn.name, deque())
        while sent and sent[0] <= now_ns - _HOUR_NS:
            sent.popleft()
        if len(sent) + requests > SUBSCRIPTION_REQUESTS_PER_HOUR:
            return False
        sent.extend([now_ns] * requests)
        return True

    @staticmethod
    def _request(op: str, args: list[dict[str, str]]) -> str:
        return _json.encode({"op": op, "args": args}).decode()

    # -- replay ---------------------------------------------------------------------------

    @classmethod
    def config_from_capture(cls, url: str, sent: list[str]) -> VenueConfig:
        symbols: dict[str, None] = {}
        channels: set[MarketChannel] = set()
        for text in sent:
            try:
                request = msgspec.json.decode(text, type=_Request)
            except (msgspec.DecodeError, msgspec.ValidationError):
                continue
            if request.op != "subscribe":
                continue
            for arg in request.args:
                channel = _OUR_CHANNEL.get(arg.channel)
                if channel is not None and arg.instId is not None:
                    channels.add(channel)
                    symbols[arg.instId] = None
        return VenueConfig(
            venue=cls.venue,
            symbols=list(symbols),
            channels=[channel for channel in MARKET_CHANNELS if channel in channels],
            ws_url=url,
        )
