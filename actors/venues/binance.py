"""Binance spot: trades, best bid/ask, L2 book and 1-minute bars over combined streams.

Every symbol's streams ride in the connection URL (``/stream?streams=a/b/c``), so a reconnect
resubscribes by itself and replays of recorded URLs map straight back to a configuration.

The book follows Binance's "How to manage a local order book correctly": diff events are
buffered until a REST snapshot arrives, events the snapshot already contains (``u`` <=
``lastUpdateId``) are dropped, the first applied event must straddle ``lastUpdateId + 1`` and
every later one must start right after the previous one (``U == previous u + 1``). Any break
publishes a ``Gap``, clears the book and fetches a new snapshot; nothing about the book is
published between the break and the next ``BookSnapshot``.

Connections are replaced before Binance's 24 h cut make-before-break (rotation "overlap"): the
replacement's first frames repeat what the old connection delivered last, and the ids every
stream carries drop them - trades by ``t`` (``a`` for aggTrades), quotes by the book update id
``u``, bars by their open time, depth updates whose ``u`` the book already holds - so readers see
no gap and nothing twice. The ids are kept over reconnects too: what was published stays so.
"""

from __future__ import annotations

import re
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal
from urllib.parse import parse_qs, urlsplit

import msgspec

from actors.book import OrderBook, checked_levels
from actors.venues.base import (
    ConfigError,
    ConnectionSpec,
    Output,
    Problem,
    ProblemKind,
    RestRequest,
    VenueAdapter,
    VenueConfig,
)
from actors.venues.common import quote_side
from core.events import (
    MARKET_CHANNELS,
    Bar,
    BookDelta,
    BookSnapshot,
    Gap,
    MarketChannel,
    PriceLevel,
    Quote,
    Trade,
    checked_decimal,
)

__all__ = ["BinanceAdapter", "QUOTE_ASSETS", "MAX_STREAMS_PER_CONNECTION"]

# Binance refuses more streams than this on one connection.
MAX_STREAMS_PER_CONNECTION = 1024
# Binance cuts every connection at 24 h; rotating a little earlier makes it our choice of moment.
CONNECTION_MAX_AGE_S = 24 * 3600 - 5 * 60
SNAPSHOT_LIMIT = 1000
# Diff events kept while a snapshot is on its way; past this the oldest go, and a snapshot that
# then no longer meets the buffer is simply fetched again.
BUFFER_LIMIT = 10_000
# Snapshot refetches back off (1 s, 2 s, ... 60 s) while syncs keep failing, so a venue in
# trouble is not hammered with weight-50 depth requests; a book that stayed synced this long
# earns an immediate resync again.
RESYNC_BASE_NS = 1_000_000_000
RESYNC_CAP_NS = 60 * 1_000_000_000
HEALTHY_AFTER_NS = 60 * 1_000_000_000
# REST error codes that mean the symbol itself is wrong: retrying cannot help.
_SYMBOL_REJECTED = frozenset({-1121, -1100})
_MS = 1_000_000
_SYMBOL = re.compile(r"[A-Z0-9]+-[A-Z0-9]+")

# Quote assets, longest first, to split a recorded ``nknusdt`` into ``NKN-USDT``.
QUOTE_ASSETS: tuple[str, ...] = tuple(
    sorted(
        (
            "USDT",
            "FDUSD",
            "BUSD",
            "USDC",
            "TUSD",
            "USDP",
            "USDS",
            "DAI",
            "UST",
            "PAX",
            "VAI",
            "BTC",
            "ETH",
            "BNB",
            "XRP",
            "TRX",
            "DOGE",
            "DOT",
            "EUR",
            "GBP",
            "TRY",
            "AUD",
            "BRL",
            "RUB",
            "UAH",
            "NGN",
            "ZAR",
            "JPY",
            "ARS",
            "PLN",
            "RON",
            "MXN",
            "COP",
            "CZK",
            "IDRT",
            "BIDR",
            "BKRW",
            "BVND",
        ),
        key=len,
        reverse=True,
    )
)

_TradeStream = Literal["trade", "aggTrade"]
_TRADE_STREAMS: tuple[_TradeStream, ...] = ("trade", "aggTrade")
_DEPTH_SUFFIXES = {"100ms": "@depth@100ms", "1000ms": "@depth"}
# Below every id Binance sends: nothing seen yet.
_NONE_SEEN = -1
_BAR_INTERVAL = "1m"
_OPTIONS = {"trade_stream": _TRADE_STREAMS, "depth_speed": tuple(_DEPTH_SUFFIXES)}


# -- wire format ---------------------------------------------------------------------------


class _WsError(msgspec.Struct):
    code: int
    msg: str


class _Envelope(msgspec.Struct):
    """Any frame: a combined-stream event, a method reply, an error or a server notice."""

    stream: str | None = None
    data: msgspec.Raw = msgspec.Raw(b"")
    id: int | str | None | msgspec.UnsetType = msgspec.UNSET
    code: int | None = None
    msg: str | None = None
    error: _WsError | None = None
    e: str | None = None


class _EventType(msgspec.Struct):
    e: str | None = None


class _DepthUpdate(msgspec.Struct, tag_field="e", tag="depthUpdate", gc=False):
    E: int
    U: int
    u: int
    b: list[PriceLevel]
    a: list[PriceLevel]


class _Trade(msgspec.Struct, tag_field="e", tag="trade", gc=False):
    t: int
    p: str
    q: str
    T: int
    m: bool


class _AggTrade(msgspec.Struct, tag_field="e", tag="aggTrade", gc=False):
    a: int
    p: str
    q: str
    T: int
    m: bool


class _BookTicker(msgspec.Struct, gc=False):
    u: int
    b: str
    B: str
    a: str
    A: str


class _Kline(msgspec.Struct, gc=False):
    t: int
    i: str
    o: str
    c: str
    h: str
    l: str  # noqa: E741 - Binance's own field name
    v: str
    n: int
    x: bool


class _KlineEvent(msgspec.Struct, tag_field="e", tag="kline", gc=False):
    E: int
    k: _Kline


class _DepthSnapshot(msgspec.Struct):
    lastUpdateId: int
    # Up to 1,000 levels a side, read (and checked) by the book straight from the JSON text.
    bids: msgspec.Raw
    asks: msgspec.Raw


class _ApiError(msgspec.Struct):
    code: int
    msg: str


_ENVELOPE = msgspec.json.Decoder(_Envelope)
_EVENT_TYPE = msgspec.json.Decoder(_EventType)
_DEPTH = msgspec.json.Decoder(_DepthUpdate)
_TRADE = msgspec.json.Decoder(_Trade)
_AGG_TRADE = msgspec.json.Decoder(_AggTrade)
_BOOK_TICKER = msgspec.json.Decoder(_BookTicker)
_KLINE = msgspec.json.Decoder(_KlineEvent)
_SNAPSHOT = msgspec.json.Decoder(_DepthSnapshot)
_API_ERROR = msgspec.json.Decoder(_ApiError)
_JSON = msgspec.json.Encoder()


# -- per-symbol state ----------------------------------------------------------------------


@dataclass(slots=True)
class _BookSync:
    """Where one symbol's book stands in the snapshot-plus-diffs protocol."""

    buffer: deque[_DepthUpdate] = field(default_factory=lambda: deque(maxlen=BUFFER_LIMIT))
    synced: bool = False
    last_update_id: int = 0
    # The book is a bare snapshot: the next event may overlap it instead of following it.
    from_snapshot: bool = False
    requested: bool = False
    not_before_ns: int = 0
    failures: int = 0
    synced_since_ns: int = 0

    def reset(self) -> None:
        self.buffer.clear()
        self.synced = False
        self.from_snapshot = False
        self.requested = False


@dataclass(slots=True)
class _Market:
    symbol: str
    venue_symbol: str
    instrument: str
    streams: tuple[str, ...]
    book: OrderBook | None
    sync: _BookSync = field(default_factory=_BookSync)
    rejected: bool = False
    # The newest of each stream published, to drop repeats (trades by id, quotes by book update
    # id, bars by open time in ms).
    last_trade_id: int = _NONE_SEEN
    last_quote_id: int = _NONE_SEEN
    last_bar_start_ms: int = _NONE_SEEN


_Handler = Callable[[_Market, msgspec.Raw, int], Output]


@dataclass(frozen=True, slots=True)
class _Route:
    handler: _Handler
    market: _Market
    # The ``e`` its events carry (bookTicker has none): anything else there is another message.
    event_type: str | None


def _split_venue_symbol(venue_symbol: str) -> str:
    """``NKNUSDT`` -> ``NKN-USDT`` by the longest known quote asset it ends with."""
    upper = venue_symbol.upper()
    for quote in QUOTE_ASSETS:
        if upper.endswith(quote) and len(upper) > len(quote):
            return f"{upper[: -len(quote)]}-{quote}"
    raise ConfigError(f"cannot tell the quote asset of {venue_symbol!r}")


class BinanceAdapter(VenueAdapter):
    venue = "binance"
    default_ws_url = "wss://stream.binance.com:9443"
    default_rest_url = "https://api.binance.com"
    # Binance pings at the WebSocket level; the websockets library answers them.
    ping_interval_s = None
    rotation = "overlap"

    def __init__(self, config: VenueConfig) -> None:
        super().__init__(config)
        if config.venue != self.venue:
            raise ConfigError(f"a {config.venue!r} configuration given to the Binance adapter")
        if not config.symbols:
            raise ConfigError("no symbols to stream")
        unknown = set(config.channels) - set(MARKET_CHANNELS)
        if unknown or not config.channels:
            raise ConfigError(f"channels must be some of {MARKET_CHANNELS}, got {config.channels}")
        for key, value in config.options.items():
            allowed = _OPTIONS.get(key)
            if allowed is None or value not in allowed:
                raise ConfigError(f"option {key}={value!r}: known options are {_OPTIONS}")
        self.ws_url = self.ws_url.rstrip("/")
        self.rest_url = self.rest_url.rstrip("/")
        self.channels: tuple[MarketChannel, ...] = tuple(
            c for c in MARKET_CHANNELS if c in config.channels
        )
        trade_stream = config.options.get("trade_stream", "trade")
        suffixes: dict[MarketChannel, tuple[str, _Handler, str | None]] = {
            "trades": (
                f"@{trade_stream}",
                self._on_agg_trade if trade_stream == "aggTrade" else self._on_trade,
                trade_stream,
            ),
            "quotes": ("@bookTicker", self._on_book_ticker, None),
            "book": (
                _DEPTH_SUFFIXES[config.options.get("depth_speed", "100ms")],
                self._on_depth,
                "depthUpdate",
            ),
            "bars": (f"@kline_{_BAR_INTERVAL}", self._on_kline, "kline"),
        }
        self._markets: dict[str, _Market] = {}
        self._by_venue_symbol: dict[str, _Market] = {}
        self._routes: dict[str, _Route] = {}
        for symbol in dict.fromkeys(config.symbols):
            if _SYMBOL.fullmatch(symbol) is None:
                raise ConfigError(f"Binance symbols read BASE-QUOTE in capitals, got {symbol!r}")
            venue_symbol = symbol.replace("-", "")
            if venue_symbol in self._by_venue_symbol:
                other = self._by_venue_symbol[venue_symbol].symbol
                raise ConfigError(f"{symbol} and {other} are both {venue_symbol} on Binance")
            prefix = venue_symbol.lower()
            streams = tuple(prefix + suffixes[channel][0] for channel in self.channels)
            market = _Market(
                symbol=symbol,
                venue_symbol=venue_symbol,
                instrument=self.instrument(symbol),
                streams=streams,
                book=self.book(symbol) if "book" in self.channels else None,
            )
            self._markets[symbol] = market
            self._by_venue_symbol[venue_symbol] = market
            for channel, stream in zip(self.channels, streams, strict=True):
                _, handler, event_type = suffixes[channel]
                self._routes[stream] = _Route(handler, market, event_type)
        self._request_id = 0
        # Method requests awaiting their reply: id -> the symbols they were about.
        self._pending: dict[int, tuple[str, ...]] = {}

    # -- what to connect to ---------------------------------------------------------------

    def connections(self) -> list[ConnectionSpec]:
        per_connection = MAX_STREAMS_PER_CONNECTION // len(self.channels)
        markets = [m for m in self._markets.values() if not m.rejected]
        specs = []
        for index, start in enumerate(range(0, len(markets), per_connection)):
            chunk = markets[start : start + per_connection]
            streams = "/".join(stream for market in chunk for stream in market.streams)
            specs.append(
                ConnectionSpec(
                    name=f"binance-{index}",
                    url=f"{self.ws_url}/stream?streams={streams}",
                    symbols=tuple(market.symbol for market in chunk),
                    max_age_s=CONNECTION_MAX_AGE_S,
                )
            )
        return specs

    # -- protocol events ------------------------------------------------------------------

    def on_open(self, conn: ConnectionSpec, now_ns: int) -> Output:
        for symbol in conn.symbols:
            market = self._markets[symbol]
            market.sync.reset()
            if market.book is not None:
                market.book.clear()
        return self._unsubscribe_rejected(conn)

    def on_replacement_open(self, conn: ConnectionSpec, now_ns: int) -> Output:
        return self._unsubscribe_rejected(conn)

    def on_close(self, conn: ConnectionSpec, reason: str, now_ns: int) -> Output:
        for symbol in conn.symbols:
            self._markets[symbol].sync.reset()
        return super().on_close(conn, reason, now_ns)

    def on_message(self, conn: ConnectionSpec, frame: str | bytes, receive_ts_ns: int) -> Output:
        try:
            envelope = _ENVELOPE.decode(frame)
        except msgspec.DecodeError as error:
            return Output(problems=[Problem("parse_error", f"{error}: {frame[:200]!r}")])
        if envelope.stream is None:
            return self._on_control(envelope, frame)
        route = self._routes.get(envelope.stream)
        if route is None:
            return self._on_unrouted(envelope, frame)
        if route.market.rejected:
            return Output()
        try:
            return route.handler(route.market, envelope.data, receive_ts_ns)
        except (msgspec.DecodeError, ValueError) as error:
            return Output(problems=[self._bad_data(envelope, route, error)])

    def on_rest_reply(
        self, request: RestRequest, status: int, body: bytes, receive_ts_ns: int
    ) -> Output:
        market = self._by_venue_symbol.get(request.symbol)
        if request.endpoint != "depth" or market is None or market.book is None:
            return super().on_rest_reply(request, status, body, receive_ts_ns)
        sync = market.sync
        sync.requested = False
        if market.rejected or sync.synced:
            return Output()
        out = Output()
        if status == 200:
            try:
                self._sync_from(market, _SNAPSHOT.decode(body), receive_ts_ns, out)
                return out
            except (msgspec.DecodeError, ValueError) as error:
                detail = f"depth snapshot for {market.venue_symbol}: {error}"
                kind: ProblemKind = (
                    "exchange_error" if self._api_error(body) is not None else "parse_error"
                )
                out.problems.append(Problem(kind, detail, market.instrument))
        else:
            api_error = self._api_error(body)
            detail = f"depth snapshot for {market.venue_symbol}: HTTP {status} {body[:200]!r}"
            out.problems.append(Problem("exchange_error", detail, market.instrument))
            if api_error is not None and api_error.code in _SYMBOL_REJECTED:
                return self._reject(market, out)
        # The venue answered but refused or garbled: asking again at once rarely helps.
        self._retry_later(market, receive_ts_ns, out, first_at_once=False)
        return out

    # -- replay ---------------------------------------------------------------------------

    @classmethod
    def config_from_capture(cls, url: str, sent: list[str]) -> VenueConfig:
        query = parse_qs(urlsplit(url).query).get("streams", [])
        streams = [stream for value in query for stream in value.split("/") if stream]
        for text in sent:
            try:
                request = msgspec.json.decode(text)
            except msgspec.DecodeError:
                continue
            if isinstance(request, dict) and request.get("method") == "SUBSCRIBE":
                streams.extend(str(s) for s in request.get("params") or [])
        symbols: dict[str, None] = {}
        channels: set[MarketChannel] = set()
        options: dict[str, str] = {}
        for stream in streams:
            prefix, _, kind = stream.partition("@")
            if kind in _TRADE_STREAMS:
                channels.add("trades")
                options["trade_stream"] = kind
            elif kind == "bookTicker":
                channels.add("quotes")
            elif kind in {"depth", "depth@100ms"}:
                channels.add("book")
                options["depth_speed"] = "100ms" if kind.endswith("100ms") else "1000ms"
            elif kind == f"kline_{_BAR_INTERVAL}":
                channels.add("bars")
            else:
                raise ConfigError(f"recorded stream {stream!r} is not one this adapter reads")
            symbols[_split_venue_symbol(prefix)] = None
        if not symbols:
            raise ConfigError(f"no streams in the recorded URL {url!r}")
        return VenueConfig(
            venue=cls.venue,
            symbols=list(symbols),
            channels=[c for c in MARKET_CHANNELS if c in channels],
            options=options,
        )

    def rest_key(self, url: str) -> tuple[str, str] | None:
        parts = urlsplit(url)
        if not parts.path.endswith("/api/v3/depth"):
            return None
        symbol = parse_qs(parts.query).get("symbol")
        return ("depth", symbol[0]) if symbol else None

    # -- stream handlers (raise ValueError/DecodeError on bad data, before changing state) --

    def _on_trade(self, market: _Market, data: msgspec.Raw, receive_ts_ns: int) -> Output:
        trade = _TRADE.decode(data)
        return self._trade(market, trade.t, trade.p, trade.q, trade.T, trade.m, receive_ts_ns)

    def _on_agg_trade(self, market: _Market, data: msgspec.Raw, receive_ts_ns: int) -> Output:
        trade = _AGG_TRADE.decode(data)
        return self._trade(market, trade.a, trade.p, trade.q, trade.T, trade.m, receive_ts_ns)

    @staticmethod
    def _trade(
        market: _Market,
        trade_id: int,
        price: str,
        size: str,
        trade_ms: int,
        buyer_is_maker: bool,
        receive_ts_ns: int,
    ) -> Output:
        if trade_id <= market.last_trade_id:
            return Output()
        event = Trade(
            instrument=market.instrument,
            exchange_ts_ns=trade_ms * _MS,
            receive_ts_ns=receive_ts_ns,
            trade_id=str(trade_id),
            price=checked_decimal(price),
            size=checked_decimal(size),
            # The buyer resting on the book means the aggressor sold.
            side="sell" if buyer_is_maker else "buy",
        )
        market.last_trade_id = trade_id
        return Output(events=[event])

    def _on_book_ticker(self, market: _Market, data: msgspec.Raw, receive_ts_ns: int) -> Output:
        ticker = _BOOK_TICKER.decode(data)
        if ticker.u <= market.last_quote_id:
            return Output()
        # Binance fills an empty side with zeros.
        bid_price, bid_size = quote_side(ticker.b, ticker.B)
        ask_price, ask_size = quote_side(ticker.a, ticker.A)
        # bookTicker carries no event time: the receive time is the best stamp there is.
        quote = Quote(
            instrument=market.instrument,
            exchange_ts_ns=receive_ts_ns,
            receive_ts_ns=receive_ts_ns,
            bid_price=bid_price,
            bid_size=bid_size,
            ask_price=ask_price,
            ask_size=ask_size,
        )
        market.last_quote_id = ticker.u
        return Output(events=[quote])

    def _on_kline(self, market: _Market, data: msgspec.Raw, receive_ts_ns: int) -> Output:
        event = _KLINE.decode(data)
        kline = event.k
        # Binance repeats the running bar every two seconds; only its final state is a bar.
        if not kline.x or kline.t <= market.last_bar_start_ms:
            return Output()
        if kline.i != _BAR_INTERVAL:
            raise ValueError(f"kline interval {kline.i!r} on a {_BAR_INTERVAL} stream")
        bar = Bar(
            instrument=market.instrument,
            exchange_ts_ns=event.E * _MS,
            receive_ts_ns=receive_ts_ns,
            interval=_BAR_INTERVAL,
            start_ts_ns=kline.t * _MS,
            open=checked_decimal(kline.o),
            high=checked_decimal(kline.h),
            low=checked_decimal(kline.l),
            close=checked_decimal(kline.c),
            volume=checked_decimal(kline.v, allow_zero=True),
            trade_count=kline.n,
        )
        market.last_bar_start_ms = kline.t
        return Output(events=[bar])

    def _on_depth(self, market: _Market, data: msgspec.Raw, receive_ts_ns: int) -> Output:
        update = _DEPTH.decode(data)
        sync = market.sync
        book = market.book
        assert book is not None
        if not sync.synced:
            # Held until the snapshot arrives, so checked now; in sync, applying checks them.
            checked_levels(update.b)
            checked_levels(update.a)
            if sync.buffer and update.u <= sync.buffer[-1].u:
                # A replacement connection repeating what the old one delivered.
                return Output()
            sync.buffer.append(update)
            out = Output()
            if not sync.requested and receive_ts_ns >= sync.not_before_ns:
                self._request_snapshot(market, out)
            return out
        if update.u <= sync.last_update_id:
            # In the book already: the snapshot had it, or the connection this one replaced.
            return Output()
        if sync.from_snapshot:
            in_sequence = update.U <= sync.last_update_id + 1
        else:
            in_sequence = update.U == sync.last_update_id + 1
        if not in_sequence:
            detail = (
                f"{market.venue_symbol} depth update {update.U}..{update.u} "
                f"does not follow {sync.last_update_id}"
            )
            return self._lose_sync(market, update, "sequence_error", detail, receive_ts_ns)
        # Every level is checked before any is applied: a bad one raises with the book unchanged
        # (and the next update, not following, resyncs).
        book.apply(update.b, update.a)
        if book.is_crossed():
            detail = (
                f"{market.venue_symbol} crossed after update {update.u}: "
                f"bid {book.best_bid()} >= ask {book.best_ask()}"
            )
            return self._lose_sync(market, update, "crossed_book", detail, receive_ts_ns)
        sync.last_update_id = update.u
        sync.from_snapshot = False
        delta = BookDelta(
            instrument=market.instrument,
            exchange_ts_ns=update.E * _MS,
            receive_ts_ns=receive_ts_ns,
            bids=update.b,
            asks=update.a,
            sequence=update.u,
        )
        return Output(events=[delta])

    # -- book sync ------------------------------------------------------------------------

    def _request_snapshot(self, market: _Market, out: Output) -> None:
        market.sync.requested = True
        url = f"{self.rest_url}/api/v3/depth?symbol={market.venue_symbol}&limit={SNAPSHOT_LIMIT}"
        out.rest.append(RestRequest("depth", market.venue_symbol, url))

    def _retry_later(
        self, market: _Market, now_ns: int, out: Output, *, first_at_once: bool = True
    ) -> None:
        """Fetch a new snapshot now or, after repeated failures, on the first diff event
        past the backoff delay (diff events come every 100 ms while the book moves)."""
        sync = market.sync
        sync.failures += 1
        delay = min(RESYNC_BASE_NS << min(sync.failures - 1, 6), RESYNC_CAP_NS)
        if sync.failures == 1 and first_at_once:
            delay = 0
        sync.not_before_ns = now_ns + delay
        if delay == 0 and not sync.requested:
            self._request_snapshot(market, out)

    def _lose_sync(
        self,
        market: _Market,
        update: _DepthUpdate,
        kind: Literal["sequence_error", "crossed_book"],
        detail: str,
        receive_ts_ns: int,
    ) -> Output:
        sync = market.sync
        assert market.book is not None
        market.book.clear()
        if receive_ts_ns - sync.synced_since_ns >= HEALTHY_AFTER_NS:
            sync.failures = 0
        sync.reset()
        # The update that revealed the break is genuine and newer than anything applied: it may
        # be the one that straddles the next snapshot.
        sync.buffer.append(update)
        out = Output(
            events=[
                Gap(
                    instrument=market.instrument,
                    exchange_ts_ns=update.E * _MS,
                    receive_ts_ns=receive_ts_ns,
                    reason=detail,
                )
            ],
            problems=[Problem(kind, detail, market.instrument)],
        )
        self._retry_later(market, receive_ts_ns, out)
        return out

    def _sync_from(
        self, market: _Market, snapshot: _DepthSnapshot, receive_ts_ns: int, out: Output
    ) -> None:
        """Bring the book in step from ``snapshot`` and the updates buffered meanwhile. Raises
        ValueError, the book unchanged, when a level of the snapshot is not a valid number."""
        sync = market.sync
        book = market.book
        assert book is not None
        last = snapshot.lastUpdateId
        buffer = sync.buffer
        while buffer and buffer[0].u <= last:
            buffer.popleft()
        if buffer and buffer[0].U > last + 1:
            # Older than events already in hand (the REST cache can lag the stream).
            self._retry_later(market, receive_ts_ns, out)
            return
        previous = last
        for position, update in enumerate(buffer):
            if position > 0 and update.U != previous + 1:
                detail = (
                    f"{market.venue_symbol} buffered depth update {update.U}..{update.u} "
                    f"does not follow {previous}"
                )
                out.problems.append(Problem("sequence_error", detail, market.instrument))
                while buffer[0] is not update:
                    buffer.popleft()
                self._retry_later(market, receive_ts_ns, out)
                return
            previous = update.u
        book.replace_json(snapshot.bids, snapshot.asks)
        for update in buffer:
            book.apply(update.b, update.a)
        if book.is_crossed():
            detail = (
                f"{market.venue_symbol} crossed after sync at {previous}: "
                f"bid {book.best_bid()} >= ask {book.best_ask()}"
            )
            book.clear()
            out.problems.append(Problem("crossed_book", detail, market.instrument))
            buffer.clear()
            self._retry_later(market, receive_ts_ns, out)
            return
        exchange_ts_ns = buffer[-1].E * _MS if buffer else receive_ts_ns
        sync.synced = True
        sync.from_snapshot = not buffer
        sync.last_update_id = previous
        sync.synced_since_ns = receive_ts_ns
        buffer.clear()
        out.events.append(
            BookSnapshot(
                instrument=market.instrument,
                exchange_ts_ns=exchange_ts_ns,
                receive_ts_ns=receive_ts_ns,
                bids=book.bids(),
                asks=book.asks(),
                sequence=previous,
            )
        )

    # -- control frames -------------------------------------------------------------------

    def _on_control(self, envelope: _Envelope, frame: str | bytes) -> Output:
        request_id = envelope.id if isinstance(envelope.id, int) else None
        symbols = self._pending.pop(request_id, ()) if request_id is not None else ()
        error = envelope.error or (
            _WsError(envelope.code, envelope.msg or "") if envelope.code is not None else None
        )
        if error is not None:
            instrument = self._markets[symbols[0]].instrument if len(symbols) == 1 else None
            detail = f"error {error.code}: {error.msg}" + (
                f" (request {request_id} about {', '.join(symbols)})" if symbols else ""
            )
            return Output(problems=[Problem("exchange_error", detail, instrument)])
        if envelope.e == "serverShutdown":
            return Output(reconnect="server shutdown")
        if envelope.id is not msgspec.UNSET:
            return Output()
        return Output(problems=[Problem("unknown_message", f"{frame[:200]!r}")])

    def _on_unrouted(self, envelope: _Envelope, frame: str | bytes) -> Output:
        try:
            kind = _EVENT_TYPE.decode(envelope.data).e if envelope.data else None
        except msgspec.DecodeError:
            kind = None
        if kind == "serverShutdown":
            return Output(reconnect="server shutdown")
        detail = f"stream {envelope.stream!r}: {frame[:200]!r}"
        return Output(problems=[Problem("unknown_message", detail)])

    @staticmethod
    def _bad_data(envelope: _Envelope, route: _Route, error: Exception) -> Problem:
        try:
            kind = _EVENT_TYPE.decode(envelope.data).e
        except msgspec.DecodeError:
            kind = None
        instrument = route.market.instrument
        # Another event type on a known stream is something new, not a corrupted frame.
        if kind is not None and kind != route.event_type:
            return Problem("unknown_message", f"{envelope.stream}: event {kind!r}", instrument)
        return Problem("parse_error", f"{envelope.stream}: {error}", instrument)

    @staticmethod
    def _api_error(body: bytes) -> _ApiError | None:
        try:
            return _API_ERROR.decode(body)
        except msgspec.DecodeError:
            return None

    def _reject(self, market: _Market, out: Output) -> Output:
        """Binance says the symbol does not exist: stop asking for it."""
        market.rejected = True
        market.sync.reset()
        if market.book is not None:
            market.book.clear()
        out.send.append(self._unsubscribe([market]))
        return out

    def _unsubscribe_rejected(self, conn: ConnectionSpec) -> Output:
        """Unsubscribe the streams of symbols Binance refused: ``conn``'s URL still names them,
        and a new connection must not bring them back."""
        rejected = [self._markets[s] for s in conn.symbols if self._markets[s].rejected]
        return Output(send=[self._unsubscribe(rejected)] if rejected else [])

    def _unsubscribe(self, markets: list[_Market]) -> str:
        self._request_id += 1
        self._pending[self._request_id] = tuple(m.symbol for m in markets)
        params = [stream for market in markets for stream in market.streams]
        request = {"method": "UNSUBSCRIBE", "params": params, "id": self._request_id}
        return _JSON.encode(request).decode()
