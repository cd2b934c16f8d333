"""Kraken spot market data over WebSocket API v2 (``wss://ws.kraken.com/v2``), public channels.

Channels: ``trades`` -> ``trade``, ``quotes`` -> ``ticker`` (published on every best bid/offer
change), ``book`` -> ``book`` (L2; depth 10 unless ``options={"depth": "25"}``: 10, 25, 100,
500 or 1000). Symbols ``BTC-USD`` are Kraken's ``BTC/USD``.

Kraken writes prices and quantities as bare JSON numbers to the pair's full precision
(``0.50930100``), and its book checksum is a CRC32 over that decimal text. So numbers are decoded
as ``Decimal`` (exact) and turned into strings once, here: a float would lose the trailing zeros
the checksum depends on. The book carries no sequence numbers: the checksum on every snapshot and
update is the only way to notice a lost update, and a mismatch resubscribes that symbol's book to
get a fresh snapshot.
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import ClassVar, Generic, Literal, TypeVar

import msgspec

from actors.book import OrderBook
from actors.venues.base import (
    ConfigError,
    ConnectionSpec,
    Output,
    Problem,
    ProblemKind,
    VenueAdapter,
    VenueConfig,
)
from actors.venues.common import QuoteSide, excerpt, quote_side, unknown_symbol
from core.events import (
    BookDelta,
    BookSnapshot,
    Gap,
    MarketChannel,
    PriceLevel,
    Quote,
    Trade,
    checked_decimal,
)
from core.timestamps import rfc3339_ns

__all__ = ["KrakenAdapter", "book_checksum", "CHANNEL_NAMES", "BOOK_DEPTHS"]

# Kraken's own names for our channels.
CHANNEL_NAMES: dict[MarketChannel, str] = {"trades": "trade", "quotes": "ticker", "book": "book"}
BOOK_DEPTHS = (10, 25, 100, 500, 1000)
# The checksum always covers the top 10 levels per side, whatever the subscribed depth.
CHECKSUM_LEVELS = 10
# Snapshots of one book failing their checks in a row before the book is left alone until the
# next connection, rather than resubscribed in a tight loop the venue would rate-limit.
MAX_SNAPSHOT_FAILURES = 3

_SYMBOL = re.compile(r"[A-Z0-9][A-Z0-9.]*-[A-Z0-9][A-Z0-9.]*")
_NO_DATA = msgspec.Raw(b"null")


# -- wire shapes ------------------------------------------------------------------------------


class _Envelope(msgspec.Struct):
    """Any frame: channel data (``channel``, ``type``, ``data``) or a reply to a request."""

    channel: str | None = None
    type: str | None = None
    data: msgspec.Raw = _NO_DATA
    method: str | None = None
    success: bool | None = None
    error: str | None = None
    symbol: str | None = None
    req_id: int | None = None
    result: msgspec.Raw = _NO_DATA


class _Result(msgspec.Struct):
    channel: str | None = None
    symbol: str | None = None


class _Level(msgspec.Struct):
    price: Decimal
    qty: Decimal


class _BookEntry(msgspec.Struct):
    symbol: str
    checksum: int
    bids: list[_Level] = []
    asks: list[_Level] = []
    # Seen missing from some snapshots; the receive time stands in then.
    timestamp: str | None = None


class _TradeEntry(msgspec.Struct):
    symbol: str
    side: Literal["buy", "sell"]
    price: Decimal
    qty: Decimal
    trade_id: int
    timestamp: str


class _TickerEntry(msgspec.Struct):
    symbol: str
    bid: Decimal | None = None
    bid_qty: Decimal | None = None
    ask: Decimal | None = None
    ask_qty: Decimal | None = None
    timestamp: str | None = None


class _StatusEntry(msgspec.Struct):
    system: str | None = None


class _SymbolOnly(msgspec.Struct):
    """Enough of a broken entry to tell whose book it was meant for."""

    symbol: str | None = None


class _Params(msgspec.Struct):
    channel: str
    symbol: list[str] = []
    depth: int | None = None


class _Request(msgspec.Struct):
    method: str
    params: _Params | None = None


_E = TypeVar("_E")


@dataclass(frozen=True, slots=True)
class _EntryDecoders(Generic[_E]):
    entries: msgspec.json.Decoder[list[_E]]
    entry: msgspec.json.Decoder[_E]


def _decoders(entries: type[list[_E]], entry: type[_E]) -> _EntryDecoders[_E]:
    return _EntryDecoders(msgspec.json.Decoder(entries), msgspec.json.Decoder(entry))


_BOOK = _decoders(list[_BookEntry], _BookEntry)
_TRADES = _decoders(list[_TradeEntry], _TradeEntry)
_TICKERS = _decoders(list[_TickerEntry], _TickerEntry)
_STATUS = _decoders(list[_StatusEntry], _StatusEntry)
_envelope_decoder = msgspec.json.Decoder(_Envelope)
_result_decoder = msgspec.json.Decoder(_Result)
_raw_list_decoder = msgspec.json.Decoder(list[msgspec.Raw])
_symbol_decoder = msgspec.json.Decoder(_SymbolOnly)
_request_decoder = msgspec.json.Decoder(_Request)
_encoder = msgspec.json.Encoder()
_DECODE_ERRORS = (msgspec.DecodeError, msgspec.ValidationError)


# -- numbers and times ------------------------------------------------------------------------


def _text(value: Decimal, *, allow_zero: bool = False) -> str:
    return checked_decimal(format(value, "f"), allow_zero=allow_zero)


def _places(text: str) -> int:
    dot = text.find(".")
    return 0 if dot < 0 else len(text) - dot - 1


def _fixed(text: str, places: int) -> str:
    """``text`` written with at least ``places`` decimals, as Kraken's checksum reads numbers."""
    have = _places(text)
    if have >= places:
        return text
    return text + ("" if "." in text else ".") + "0" * (places - have)


def _digits(text: str) -> str:
    return text.replace(".", "").lstrip("0")


def _level_digits(level: PriceLevel) -> str:
    return _digits(level[0]) + _digits(level[1])


def _side_digits(levels: list[PriceLevel]) -> str:
    return "".join([_level_digits(level) for level in levels])


class _DigitCache:
    """Checksum digits per level. Most of the top 10 is unchanged from one update to the next,
    and the book hands back the very tuples it was given, so a dict hit replaces string work."""

    __slots__ = ("_digits",)
    LIMIT = 100_000

    def __init__(self) -> None:
        self._digits: dict[PriceLevel, str] = {}

    def side(self, levels: Sequence[PriceLevel]) -> str:
        cache = self._digits
        if len(cache) > self.LIMIT:
            cache.clear()
        # A level's digits are never empty (its price and size are not zero).
        return "".join([cache.get(level) or self._add(level) for level in levels])

    def _add(self, level: PriceLevel) -> str:
        digits = self._digits[level] = _level_digits(level)
        return digits


def book_checksum(asks: list[PriceLevel], bids: list[PriceLevel]) -> int:
    """Kraken's CRC32 of a book: the top 10 asks (lowest first) then the top 10 bids (highest
    first), each level as its price then its quantity with the point and leading zeros removed.
    Levels must be written to the pair's full precision, as Kraken sends them."""
    text = _side_digits(asks[:CHECKSUM_LEVELS]) + _side_digits(bids[:CHECKSUM_LEVELS])
    return zlib.crc32(text.encode())


# -- per-symbol state -------------------------------------------------------------------------


@dataclass(slots=True)
class _BookState:
    pair: str
    book: OrderBook
    # False from (re)subscribing until the snapshot: updates meanwhile are not ours to apply.
    synced: bool = False
    # The pair's precision, read off the snapshot, where Kraken writes every number to it.
    price_places: int = 0
    qty_places: int = 0
    # Checksum digits of each side's top 10, recomputed only for a side an update touched.
    ask_digits: str = ""
    bid_digits: str = ""
    failed_snapshots: int = 0


@dataclass(slots=True)
class _Pending:
    """A subscribe/unsubscribe awaiting its replies (Kraken answers once per symbol)."""

    method: str
    channel: str
    symbols: tuple[str, ...]
    replies_left: int = field(init=False)

    def __post_init__(self) -> None:
        self.replies_left = len(self.symbols)


# -- the adapter ------------------------------------------------------------------------------


class KrakenAdapter(VenueAdapter):
    venue: ClassVar[str] = "kraken"
    default_ws_url: ClassVar[str] = "wss://ws.kraken.com/v2"
    # Kraken drops a connection that sends nothing for a minute.
    ping_interval_s: ClassVar[float | None] = 20.0
    # Heartbeats come every second while subscribed and pongs answer every ping, so 30 s of
    # silence is a dead connection.
    silence_timeout_s: ClassVar[float] = 30.0

    def __init__(self, config: VenueConfig) -> None:
        super().__init__(config)
        if not config.symbols:
            raise ConfigError("kraken: no symbols configured")
        for symbol in config.symbols:
            if _SYMBOL.fullmatch(symbol) is None:
                raise ConfigError(f"kraken: {symbol!r} is not a BASE-QUOTE pair like BTC-USD")
        unsupported = [c for c in config.channels if c not in CHANNEL_NAMES]
        if unsupported:
            raise ConfigError(
                f"kraken: channels {unsupported} not supported ({list(CHANNEL_NAMES)})"
            )
        depth = config.options.get("depth", "10")
        if not depth.isdigit() or int(depth) not in BOOK_DEPTHS:
            raise ConfigError(f"kraken: book depth {depth!r} is not one of {BOOK_DEPTHS}")
        self.depth = int(depth)
        self.channels = tuple(dict.fromkeys(CHANNEL_NAMES[c] for c in config.channels))
        # Kraken's spelling (BTC/USD) -> ours (BTC-USD), for every configured symbol.
        self._symbols = {s.replace("-", "/"): s for s in dict.fromkeys(config.symbols)}
        self._instruments = {pair: self.instrument(s) for pair, s in self._symbols.items()}
        self._states: dict[str, _BookState] = {}
        # (channel, pair) the venue refused: never asked for again.
        self._refused: set[tuple[str, str]] = set()
        self._pending: dict[int, _Pending] = {}
        self._next_req_id = 1
        self._digits = _DigitCache()

    # -- connections ---------------------------------------------------------------------

    def connections(self) -> list[ConnectionSpec]:
        # One connection carries every pair Kraken streams to a client.
        symbols = tuple(self._symbols.values())
        return self.split_connections(symbols, max(1, len(symbols)))

    def on_open(self, conn: ConnectionSpec, now_ns: int) -> Output:
        self._pending.clear()
        out = Output()
        pairs = [symbol.replace("-", "/") for symbol in conn.symbols]
        for channel in self.channels:
            wanted = [pair for pair in pairs if (channel, pair) not in self._refused]
            if channel == "book":
                for pair in wanted:
                    self._forget(pair).failed_snapshots = 0
            if wanted:
                out.send.append(self._request("subscribe", channel, wanted))
        return out

    def on_close(self, conn: ConnectionSpec, reason: str, now_ns: int) -> Output:
        for symbol in conn.symbols:
            state = self._states.get(symbol.replace("-", "/"))
            if state is not None:
                state.synced = False
        return super().on_close(conn, reason, now_ns)

    def ping(self, conn: ConnectionSpec, now_ns: int) -> Output:
        return Output(send=[_encoder.encode({"method": "ping", "req_id": self._req_id()}).decode()])

    # -- frames --------------------------------------------------------------------------

    def on_message(self, conn: ConnectionSpec, frame: str | bytes, receive_ts_ns: int) -> Output:
        out = Output()
        try:
            message = _envelope_decoder.decode(frame)
        except _DECODE_ERRORS as error:
            out.problems.append(Problem("parse_error", f"undecodable frame: {error}"))
            return out
        channel = message.channel
        if channel == "book":
            self._on_book(message, receive_ts_ns, out)
        elif channel == "trade":
            self._on_trades(message, receive_ts_ns, out)
        elif channel == "ticker":
            self._on_tickers(message, receive_ts_ns, out)
        elif channel == "heartbeat":
            pass
        elif channel == "status":
            self._on_status(message, out)
        elif channel is None and message.method is not None:
            self._on_reply(message, out)
        else:
            out.problems.append(
                Problem("unknown_message", f"unexpected frame {excerpt(frame, 120)}")
            )
        return out

    # -- book ----------------------------------------------------------------------------

    def _on_book(self, message: _Envelope, receive_ts_ns: int, out: Output) -> None:
        snapshot = message.type == "snapshot"
        if not snapshot and message.type != "update":
            out.problems.append(
                Problem("unknown_message", f"book message of type {message.type!r}")
            )
            return
        entries, broken = self._entries(_BOOK, message.data, out)
        for pair, error in broken:
            state = self._states.get(pair) if pair is not None else None
            # A lost update leaves the book wrong; one for a book awaiting its snapshot does not.
            if state is not None and (snapshot or state.synced):
                detail = f"book entry: {error}"
                self._resync(state, "parse_error", detail, receive_ts_ns, out, snapshot=snapshot)
            else:
                out.problems.append(
                    Problem(
                        "parse_error", f"book entry: {error}", self._instruments.get(pair or "")
                    )
                )
        for entry in entries:
            state = self._states.get(entry.symbol)
            if state is None:
                out.problems.append(unknown_symbol("book", entry.symbol))
            elif snapshot:
                self._book_snapshot(entry, state, receive_ts_ns, out)
            elif state.synced:
                self._book_update(entry, state, receive_ts_ns, out)

    def _book_snapshot(
        self, entry: _BookEntry, state: _BookState, receive_ts_ns: int, out: Output
    ) -> None:
        try:
            bids = [(_text(level.price), _text(level.qty, allow_zero=True)) for level in entry.bids]
            asks = [(_text(level.price), _text(level.qty, allow_zero=True)) for level in entry.asks]
            exchange_ts = rfc3339_ns(entry.timestamp) if entry.timestamp else receive_ts_ns
        except ValueError as error:
            detail = f"book snapshot: {error}"
            self._resync(state, "parse_error", detail, receive_ts_ns, out, snapshot=True)
            return
        levels = bids + asks
        state.price_places = max((_places(price) for price, _ in levels), default=0)
        state.qty_places = max((_places(size) for _, size in levels), default=0)
        book = state.book
        book.replace(self._fixed_levels(bids, state), self._fixed_levels(asks, state))
        book.truncate(self.depth)
        state.ask_digits = self._digits.side(book.top_asks(CHECKSUM_LEVELS))
        state.bid_digits = self._digits.side(book.top_bids(CHECKSUM_LEVELS))
        if not self._consistent(entry, state, exchange_ts, receive_ts_ns, out, snapshot=True):
            return
        state.synced = True
        state.failed_snapshots = 0
        out.events.append(
            BookSnapshot(
                instrument=state.book.instrument,
                exchange_ts_ns=exchange_ts,
                receive_ts_ns=receive_ts_ns,
                bids=book.bids(),
                asks=book.asks(),
            )
        )

    def _book_update(
        self, entry: _BookEntry, state: _BookState, receive_ts_ns: int, out: Output
    ) -> None:
        try:
            bids = [(_text(level.price), _text(level.qty, allow_zero=True)) for level in entry.bids]
            asks = [(_text(level.price), _text(level.qty, allow_zero=True)) for level in entry.asks]
            exchange_ts = rfc3339_ns(entry.timestamp) if entry.timestamp else receive_ts_ns
        except ValueError as error:
            self._resync(state, "parse_error", f"book update: {error}", receive_ts_ns, out)
            return
        bids = self._fixed_levels(bids, state)
        asks = self._fixed_levels(asks, state)
        book = state.book
        book.apply(bids, asks)
        # Kraken sends no removal for a level pushed out of the subscribed depth: drop it here,
        # and tell readers, who do not know the depth, with an explicit removal.
        depth = self.depth
        held_bids, held_asks = book.depth()
        if held_bids > depth or held_asks > depth:
            bids.extend((price, "0") for price, _ in book.bids()[depth:])
            asks.extend((price, "0") for price, _ in book.asks()[depth:])
            book.truncate(depth)
        if asks:
            state.ask_digits = self._digits.side(book.top_asks(CHECKSUM_LEVELS))
        if bids:
            state.bid_digits = self._digits.side(book.top_bids(CHECKSUM_LEVELS))
        if not self._consistent(entry, state, exchange_ts, receive_ts_ns, out, snapshot=False):
            return
        out.events.append(
            BookDelta(
                instrument=state.book.instrument,
                exchange_ts_ns=exchange_ts,
                receive_ts_ns=receive_ts_ns,
                bids=bids,
                asks=asks,
            )
        )

    @staticmethod
    def _fixed_levels(levels: list[PriceLevel], state: _BookState) -> list[PriceLevel]:
        """Levels written to the pair's precision; a removal keeps its quantity as sent."""
        price_places, qty_places = state.price_places, state.qty_places
        for i, (price, size) in enumerate(levels):
            if _places(price) < price_places or (_places(size) < qty_places and size.strip("0.")):
                levels[i] = (
                    _fixed(price, price_places),
                    _fixed(size, qty_places) if size.strip("0.") else size,
                )
        return levels

    def _consistent(
        self,
        entry: _BookEntry,
        state: _BookState,
        exchange_ts: int,
        receive_ts_ns: int,
        out: Output,
        *,
        snapshot: bool,
    ) -> bool:
        """Checksum and crossing checks; on failure the book is dropped and resubscribed."""
        ours = zlib.crc32((state.ask_digits + state.bid_digits).encode())
        book = state.book
        if ours != entry.checksum:
            kind: ProblemKind = "checksum_failure"
            detail = f"checksum {entry.checksum} from kraken, {ours} computed"
        elif book.is_crossed():
            kind = "crossed_book"
            detail = f"best bid {book.best_bid()} >= best ask {book.best_ask()}"
        else:
            return True
        self._resync(state, kind, detail, receive_ts_ns, out, exchange_ts, snapshot=snapshot)
        return False

    def _resync(
        self,
        state: _BookState,
        kind: ProblemKind,
        detail: str,
        receive_ts_ns: int,
        out: Output,
        exchange_ts_ns: int | None = None,
        *,
        snapshot: bool = False,
    ) -> None:
        """Drop the symbol's book, say so, and resubscribe it for a fresh snapshot."""
        instrument = state.book.instrument
        out.problems.append(Problem(kind, detail, instrument))
        self._forget(state.pair)
        out.events.append(
            Gap(
                instrument=instrument,
                exchange_ts_ns=receive_ts_ns if exchange_ts_ns is None else exchange_ts_ns,
                receive_ts_ns=receive_ts_ns,
                reason=kind,
            )
        )
        out.send.append(self._request("unsubscribe", "book", [state.pair]))
        if snapshot:
            state.failed_snapshots += 1
        if state.failed_snapshots >= MAX_SNAPSHOT_FAILURES:
            detail = f"{state.failed_snapshots} snapshots in a row failed; book off until reconnect"
            out.problems.append(Problem("exchange_error", detail, instrument))
            return
        out.send.append(self._request("subscribe", "book", [state.pair]))

    def _forget(self, pair: str) -> _BookState:
        """Clear ``pair``'s book and wait for a snapshot before trusting it again."""
        state = self._states.get(pair)
        if state is None:
            state = self._states[pair] = _BookState(pair, self.book(self._symbols[pair]))
        state.book.clear()
        state.synced = False
        state.ask_digits = state.bid_digits = ""
        return state

    # -- trades and quotes ---------------------------------------------------------------

    def _on_trades(self, message: _Envelope, receive_ts_ns: int, out: Output) -> None:
        for entry in self._good_entries(_TRADES, message.data, out):
            instrument = self._instruments.get(entry.symbol)
            if instrument is None:
                out.problems.append(unknown_symbol("trade", entry.symbol))
                continue
            try:
                trade = Trade(
                    instrument=instrument,
                    exchange_ts_ns=rfc3339_ns(entry.timestamp),
                    receive_ts_ns=receive_ts_ns,
                    trade_id=str(entry.trade_id),
                    price=_text(entry.price),
                    size=_text(entry.qty),
                    side=entry.side,
                )
            except ValueError as error:
                out.problems.append(Problem("parse_error", f"trade: {error}", instrument))
                continue
            out.events.append(trade)

    def _on_tickers(self, message: _Envelope, receive_ts_ns: int, out: Output) -> None:
        for entry in self._good_entries(_TICKERS, message.data, out):
            instrument = self._instruments.get(entry.symbol)
            if instrument is None:
                out.problems.append(unknown_symbol("ticker", entry.symbol))
                continue
            try:
                bid_price, bid_size = _ticker_side(entry.bid, entry.bid_qty)
                ask_price, ask_size = _ticker_side(entry.ask, entry.ask_qty)
                exchange_ts = rfc3339_ns(entry.timestamp) if entry.timestamp else receive_ts_ns
            except ValueError as error:
                out.problems.append(Problem("parse_error", f"ticker: {error}", instrument))
                continue
            out.events.append(
                Quote(
                    instrument=instrument,
                    exchange_ts_ns=exchange_ts,
                    receive_ts_ns=receive_ts_ns,
                    bid_price=bid_price,
                    bid_size=bid_size,
                    ask_price=ask_price,
                    ask_size=ask_size,
                )
            )

    # -- control -------------------------------------------------------------------------

    def _on_status(self, message: _Envelope, out: Output) -> None:
        for entry in self._good_entries(_STATUS, message.data, out):
            if entry.system not in (None, "online"):
                out.problems.append(
                    Problem("exchange_error", f"kraken system status {entry.system!r}")
                )

    def _on_reply(self, message: _Envelope, out: Output) -> None:
        method = message.method
        if method == "pong":
            return
        if method not in ("subscribe", "unsubscribe"):
            out.problems.append(Problem("unknown_message", f"reply to unknown method {method!r}"))
            return
        req_id = message.req_id
        pending = None if req_id is None else self._pending.get(req_id)
        if req_id is not None and pending is not None:
            pending.replies_left -= 1
            if pending.replies_left <= 0:
                del self._pending[req_id]
        if message.success:
            return
        try:
            result = _result_decoder.decode(message.result)
        except _DECODE_ERRORS:
            result = _Result()
        channel = result.channel or (pending.channel if pending else None)
        pair = message.symbol or result.symbol
        # A refusal naming no symbol covers the whole request (e.g. an unsupported depth).
        pairs = (pair,) if pair else (pending.symbols if pending else ())
        reason = message.error or "no reason given"
        if not pairs:
            out.problems.append(Problem("exchange_error", f"{method} {channel} refused: {reason}"))
            return
        for refused in pairs:
            out.problems.append(
                Problem(
                    "exchange_error",
                    f"{method} {channel} {refused} refused: {reason}",
                    self._instruments.get(refused),
                )
            )
            if method == "subscribe" and channel is not None:
                self._refused.add((channel, refused))

    # -- decoding helpers ----------------------------------------------------------------

    def _entries(
        self, decoders: _EntryDecoders[_E], data: msgspec.Raw, out: Output
    ) -> tuple[list[_E], list[tuple[str | None, str]]]:
        """The entries of ``data`` that decode, and (symbol, error) for those that do not."""
        try:
            return decoders.entries.decode(data), []
        except _DECODE_ERRORS:
            pass
        try:
            raws = _raw_list_decoder.decode(data)
        except _DECODE_ERRORS as error:
            out.problems.append(Problem("parse_error", f"message data: {error}"))
            return [], []
        entries: list[_E] = []
        broken: list[tuple[str | None, str]] = []
        for raw in raws:
            try:
                entries.append(decoders.entry.decode(raw))
            except _DECODE_ERRORS as error:
                broken.append((_symbol_of(raw), str(error)))
        return entries, broken

    def _good_entries(
        self, decoders: _EntryDecoders[_E], data: msgspec.Raw, out: Output
    ) -> list[_E]:
        entries, broken = self._entries(decoders, data, out)
        for pair, error in broken:
            out.problems.append(Problem("parse_error", error, self._instruments.get(pair or "")))
        return entries

    # -- requests ------------------------------------------------------------------------

    def _req_id(self) -> int:
        req_id = self._next_req_id
        self._next_req_id += 1
        return req_id

    def _request(self, method: str, channel: str, pairs: list[str]) -> str:
        params: dict[str, object] = {"channel": channel, "symbol": pairs}
        if channel == "book":
            params["depth"] = self.depth
        if method == "subscribe":
            if channel == "ticker":
                params["event_trigger"] = "bbo"
            # A trade snapshot would replay recent trades, already published before a reconnect.
            params["snapshot"] = channel != "trade"
        req_id = self._req_id()
        self._pending[req_id] = _Pending(method, channel, tuple(pairs))
        return _encoder.encode({"method": method, "params": params, "req_id": req_id}).decode()

    # -- replay --------------------------------------------------------------------------

    @classmethod
    def config_from_capture(cls, url: str, sent: list[str]) -> VenueConfig:
        ours = {name: channel for channel, name in CHANNEL_NAMES.items()}
        channels: list[MarketChannel] = []
        symbols: list[str] = []
        options: dict[str, str] = {}
        for text in sent:
            try:
                request = _request_decoder.decode(text)
            except _DECODE_ERRORS:
                continue
            params = request.params
            if request.method != "subscribe" or params is None or params.channel not in ours:
                continue
            if ours[params.channel] not in channels:
                channels.append(ours[params.channel])
            for pair in params.symbol:
                if pair.replace("/", "-") not in symbols:
                    symbols.append(pair.replace("/", "-"))
            if params.channel == "book" and params.depth is not None:
                options["depth"] = str(params.depth)
        if not symbols:
            raise ValueError("the capture holds no kraken subscribe request")
        return VenueConfig(
            venue=cls.venue, symbols=symbols, channels=channels, ws_url=url, options=options
        )


def _ticker_side(price: Decimal | None, size: Decimal | None) -> QuoteSide:
    # Kraken leaves an empty side's fields out, or sends its quantity as zero.
    if price is None or size is None or not size:
        return None, None
    return quote_side(format(price, "f"), format(size, "f"))


def _symbol_of(raw: msgspec.Raw) -> str | None:
    try:
        return _symbol_decoder.decode(raw).symbol
    except _DECODE_ERRORS:
        return None
