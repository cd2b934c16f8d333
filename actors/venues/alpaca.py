"""Alpaca market data v2: real-time US stock trades, quotes and minute bars over one WebSocket.

The protocol (docs.alpaca.markets, "WebSocket Stream" and "Real-time Stock Data"): the server
greets with ``[{"T":"success","msg":"connected"}]``; the client authenticates with
``{"action":"auth","key":...,"secret":...}`` and may subscribe only once
``[{"T":"success","msg":"authenticated"}]`` has arrived. Every frame is a JSON array of messages
tagged by ``"T"``: control messages come alone, data points often several to a frame. Prices and
sizes are JSON numbers, times RFC 3339 strings with up to nine fractional digits. The stream has
no order book: a quote is the best bid and offer. Every trades subscriber also gets trade
corrections (``"c"``) and cancels/errors (``"x"``) for its symbols, unasked; they become
``TradeCorrection`` and ``TradeCancel`` events on the trades stream.
"""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Annotated, Literal, get_args

import msgspec

from actors.venues.base import (
    ConfigError,
    ConnectionSpec,
    Output,
    Problem,
    VenueAdapter,
    VenueConfig,
)
from core.events import (
    Bar,
    MarketChannel,
    Quote,
    Trade,
    TradeCancel,
    TradeCorrection,
    checked_decimal,
)
from core.timestamps import rfc3339_ns

__all__ = ["AlpacaAdapter", "FEEDS", "STREAM_URL"]

STREAM_URL = "wss://stream.data.alpaca.markets/v2"
# delayed_sip is SIP fifteen minutes late; the v1beta1 feeds (boats, overnight) sit under another
# version path, so they are not offered here.
FEEDS = ("iex", "sip", "delayed_sip")
DEFAULT_FEED = "iex"

# Uppercase tickers, with an optional share class (BRK.B): the form Alpaca expects. Lowercase,
# crypto pairs (BTC-USD) and the "*" wildcard are refused up front rather than by the venue.
_TICKER = re.compile(r"[A-Z]{1,10}(?:\.[A-Z]{1,3})?")
# Alpaca's channel names are ours; it has no book channel.
_CHANNELS: tuple[MarketChannel, ...] = ("trades", "quotes", "bars")


# code -> (what the operator should know, whether this connection is finished). Codes from the
# "Errors" table of Alpaca's WebSocket Stream documentation.
# Wrong keys and a plan without the feed never fix themselves: stop instead of retrying
# (Alpaca allows one connection per feed, and hammering it with bad keys helps nobody).
_UNRECOVERABLE = frozenset({402, 409})
_REDACTED_AUTH = '{"action":"auth","key":"***","secret":"***"}'
_ERRORS: dict[int, tuple[str, bool]] = {
    400: ("Alpaca could not read the subscribe message (it says so for a bad symbol too)", False),
    401: ("subscribed before authenticating", True),
    402: (
        "Alpaca rejected the API key: set the alpaca venue's api_key and api_secret to a valid "
        "key pair (the key ID and its secret from the Alpaca dashboard)",
        True,
    ),
    403: ("authenticated twice on one connection", False),
    404: ("authentication took too long", True),
    405: (
        "more symbols than the Alpaca plan allows (the free IEX plan: 30 for trades and quotes); "
        "the subscription is unchanged",
        False,
    ),
    406: (
        "another connection already streams this feed with these keys (Alpaca allows one per "
        "feed): stop the other client or use other keys",
        True,
    ),
    407: ("Alpaca found this client too slow to keep up and drops it", True),
    409: ("the Alpaca plan does not include this feed: set options feed to one it includes", True),
    410: ("this feed does not offer one of the requested channels", False),
    500: ("Alpaca internal error", True),
}

_Count = Annotated[int, msgspec.Meta(ge=0)]


class _Wire(msgspec.Struct, tag_field="T", gc=False):
    """One message of a frame; fields Alpaca adds later are ignored, not errors."""


class _Success(_Wire, tag="success"):
    msg: str


class _Error(_Wire, tag="error"):
    code: int
    msg: str = ""


class _Subscription(_Wire, tag="subscription"):
    trades: list[str] = []
    quotes: list[str] = []
    bars: list[str] = []


class _Trade(_Wire, tag="t"):
    symbol: str = msgspec.field(name="S")
    trade_id: int = msgspec.field(name="i")
    price: Decimal = msgspec.field(name="p")
    size: Decimal = msgspec.field(name="s")
    time: str = msgspec.field(name="t")
    exchange: str = msgspec.field(name="x", default="")


class _Quote(_Wire, tag="q"):
    symbol: str = msgspec.field(name="S")
    bid_price: Decimal = msgspec.field(name="bp")
    bid_size: Decimal = msgspec.field(name="bs")
    ask_price: Decimal = msgspec.field(name="ap")
    ask_size: Decimal = msgspec.field(name="as")
    time: str = msgspec.field(name="t")


class _Bar(_Wire, tag="b"):
    symbol: str = msgspec.field(name="S")
    open: Decimal = msgspec.field(name="o")
    high: Decimal = msgspec.field(name="h")
    low: Decimal = msgspec.field(name="l")
    close: Decimal = msgspec.field(name="c")
    volume: Decimal = msgspec.field(name="v")
    time: str = msgspec.field(name="t")
    trade_count: _Count = msgspec.field(name="n")
    vwap: Decimal | None = msgspec.field(default=None, name="vw")


class _DailyBar(_Bar, tag="d"):
    """A daily bar (Alpaca's dailyBars stream; the demo's replayed history is made of these)."""


class _Correction(_Wire, tag="c"):
    """Trade corrections: Alpaca sends them unasked to every trades subscriber."""

    symbol: str = msgspec.field(name="S")
    original_id: int = msgspec.field(name="oi")
    original_price: Decimal = msgspec.field(name="op")
    original_size: Decimal = msgspec.field(name="os")
    corrected_id: int = msgspec.field(name="ci")
    corrected_price: Decimal = msgspec.field(name="cp")
    corrected_size: Decimal = msgspec.field(name="cs")
    time: str = msgspec.field(name="t")
    exchange: str = msgspec.field(name="x", default="")


class _CancelError(_Wire, tag="x"):
    """Trade cancels/errors: Alpaca sends them unasked to every trades subscriber."""

    symbol: str = msgspec.field(name="S")
    trade_id: int = msgspec.field(name="i")
    price: Decimal = msgspec.field(name="p")
    size: Decimal = msgspec.field(name="s")
    # "C" cancel, "E" error: an action Alpaca does not document is refused, not guessed at.
    action: Literal["C", "E"] = msgspec.field(name="a")
    time: str = msgspec.field(name="t")
    exchange: str = msgspec.field(name="x", default="")


_Message = (
    _Trade
    | _Quote
    | _Bar
    | _DailyBar
    | _Success
    | _Error
    | _Subscription
    | _Correction
    | _CancelError
)
_DataMessage = _Quote | _Trade | _Bar | _Correction | _CancelError
_DATA = get_args(_DataMessage)
_KNOWN_TAGS = frozenset(cls.__struct_config__.tag for cls in get_args(_Message))


class _Envelope(msgspec.Struct):
    """Just enough of a message that failed to decode to say what it was."""

    tag: str | None = msgspec.field(default=None, name="T")
    symbol: str | None = msgspec.field(default=None, name="S")


_frame_decoder = msgspec.json.Decoder(list[_Message])
_item_decoder = msgspec.json.Decoder(_Message)
_raw_items_decoder = msgspec.json.Decoder(list[msgspec.Raw])
_envelope_decoder = msgspec.json.Decoder(_Envelope)
_encoder = msgspec.json.Encoder()


def _positive(value: Decimal) -> str:
    # format "f": the digits as written, never scientific notation (1E+2 becomes 100).
    return checked_decimal(format(value, "f"))


def _non_negative(value: Decimal) -> str:
    return checked_decimal(format(value, "f"), allow_zero=True)


def _side(price: Decimal, size: Decimal) -> tuple[str | None, str | None]:
    """A quote side, None when empty: Alpaca writes an empty side as price 0 (and size 0)."""
    exact_price, exact_size = _non_negative(price), _non_negative(size)
    if not price or not size:
        return None, None
    return exact_price, exact_size


def _trade_id(exchange: str, trade_id: int) -> str:
    # On SIP a trade id is unique only within its exchange; the code makes it unique per symbol.
    # Corrections and cancels name the trade they revise the same way, so they find it.
    return f"{exchange}-{trade_id}" if exchange else str(trade_id)


def _trade(message: _Trade, instrument: str, receive_ts_ns: int) -> Trade:
    return Trade(
        instrument=instrument,
        exchange_ts_ns=rfc3339_ns(message.time),
        receive_ts_ns=receive_ts_ns,
        trade_id=_trade_id(message.exchange, message.trade_id),
        price=_positive(message.price),
        size=_positive(message.size),
    )


def _correction(message: _Correction, instrument: str, receive_ts_ns: int) -> TradeCorrection:
    return TradeCorrection(
        instrument=instrument,
        exchange_ts_ns=rfc3339_ns(message.time),
        receive_ts_ns=receive_ts_ns,
        original_trade_id=_trade_id(message.exchange, message.original_id),
        original_price=_positive(message.original_price),
        original_size=_positive(message.original_size),
        corrected_trade_id=_trade_id(message.exchange, message.corrected_id),
        corrected_price=_positive(message.corrected_price),
        corrected_size=_positive(message.corrected_size),
    )


def _cancel(message: _CancelError, instrument: str, receive_ts_ns: int) -> TradeCancel:
    return TradeCancel(
        instrument=instrument,
        exchange_ts_ns=rfc3339_ns(message.time),
        receive_ts_ns=receive_ts_ns,
        trade_id=_trade_id(message.exchange, message.trade_id),
        price=_positive(message.price),
        size=_positive(message.size),
        reason="cancel" if message.action == "C" else "error",
    )


def _quote(message: _Quote, instrument: str, receive_ts_ns: int) -> Quote:
    bid_price, bid_size = _side(message.bid_price, message.bid_size)
    ask_price, ask_size = _side(message.ask_price, message.ask_size)
    return Quote(
        instrument=instrument,
        exchange_ts_ns=rfc3339_ns(message.time),
        receive_ts_ns=receive_ts_ns,
        bid_price=bid_price,
        bid_size=bid_size,
        ask_price=ask_price,
        ask_size=ask_size,
    )


def _bar(message: _Bar, instrument: str, receive_ts_ns: int) -> Bar:
    low, high = message.low, message.high
    if not (low <= message.open <= high and low <= message.close <= high):
        raise ValueError(
            f"impossible bar: open {message.open} close {message.close} "
            f"outside low {low} .. high {high}"
        )
    start = rfc3339_ns(message.time)
    return Bar(
        instrument=instrument,
        # The bar's start is the only time Alpaca stamps on it.
        exchange_ts_ns=start,
        receive_ts_ns=receive_ts_ns,
        interval="1d" if isinstance(message, _DailyBar) else "1m",
        start_ts_ns=start,
        open=_positive(message.open),
        high=_positive(high),
        low=_positive(low),
        close=_positive(message.close),
        volume=_non_negative(message.volume),
        trade_count=message.trade_count,
        vwap=None if message.vwap is None else _positive(message.vwap),
    )


def _data_event(
    message: _DataMessage, instrument: str, receive_ts_ns: int
) -> Quote | Trade | Bar | TradeCorrection | TradeCancel:
    """The event of one data message; ValueError for numbers or times it must not carry."""
    if isinstance(message, _Quote):
        return _quote(message, instrument, receive_ts_ns)
    if isinstance(message, _Trade):
        return _trade(message, instrument, receive_ts_ns)
    if isinstance(message, _Correction):
        return _correction(message, instrument, receive_ts_ns)
    if isinstance(message, _CancelError):
        return _cancel(message, instrument, receive_ts_ns)
    return _bar(message, instrument, receive_ts_ns)


def _feed_and_keys(config: VenueConfig) -> tuple[str, str, str]:
    """(feed, key, secret), or a ConfigError naming the setting to fix."""
    unknown = [option for option in config.options if option != "feed"]
    if unknown:
        raise ConfigError(f"alpaca: unknown options {unknown} (the only option is feed)")
    feed = config.options.get("feed", DEFAULT_FEED)
    if feed not in FEEDS:
        raise ConfigError(
            f"alpaca: options feed {feed!r} is not one of {', '.join(FEEDS)} "
            "(iex is free; sip and delayed_sip need a plan that includes them)"
        )
    key, secret = config.api_key, config.api_secret
    if not key or not secret:
        missing = [name for name, value in (("api_key", key), ("api_secret", secret)) if not value]
        raise ConfigError(
            f"alpaca needs API keys even for market data: set {' and '.join(missing)} "
            "for the alpaca venue (the key ID and secret from the Alpaca dashboard)"
        )
    return feed, key, secret


class AlpacaAdapter(VenueAdapter):
    """Alpaca's stock stream: trades, quotes (best bid/offer) and one-minute bars."""

    venue = "alpaca"
    default_ws_url = f"{STREAM_URL}/{DEFAULT_FEED}"

    def __init__(self, config: VenueConfig) -> None:
        super().__init__(config)
        self.feed, key, secret = _feed_and_keys(config)
        self.ws_url = config.ws_url or f"{STREAM_URL}/{self.feed}"
        bad = [symbol for symbol in config.symbols if not _TICKER.fullmatch(symbol)]
        if bad or not config.symbols:
            raise ConfigError(
                "alpaca streams US stocks by uppercase ticker (AAPL, BRK.B): "
                f"cannot stream {bad or 'no symbols'}"
            )
        # "book" is dropped, not refused: it is in the default channels, and quotes already
        # carry the top of the book.
        self.channels = [c for c in dict.fromkeys(config.channels) if c in _CHANNELS]
        if not self.channels:
            raise ConfigError(f"alpaca offers trades, quotes and bars, not {config.channels}")
        self.symbols = tuple(dict.fromkeys(config.symbols))
        # Doubles as the subscribed-symbols check on the hot path.
        self._instruments = {symbol: self.instrument(symbol) for symbol in self.symbols}
        auth = {"action": "auth", "key": key, "secret": secret}
        self._auth_frame = _encoder.encode(auth).decode()
        self._authenticated: set[str] = set()

    def redact_outbound(self, frame: str) -> str:
        # The auth frame carries the key pair; recordings must not.
        return _REDACTED_AUTH if frame == self._auth_frame else frame

    def connections(self) -> list[ConnectionSpec]:
        # Alpaca allows one connection per feed and account, so every symbol shares it.
        return [ConnectionSpec(name=f"alpaca-{self.feed}", url=self.ws_url, symbols=self.symbols)]

    def on_open(self, conn: ConnectionSpec, now_ns: int) -> Output:
        self._authenticated.discard(conn.name)
        return Output(send=[self._auth_frame])

    def on_close(self, conn: ConnectionSpec, reason: str, now_ns: int) -> Output:
        self._authenticated.discard(conn.name)
        return super().on_close(conn, reason, now_ns)

    def on_message(self, conn: ConnectionSpec, frame: str | bytes, receive_ts_ns: int) -> Output:
        out = Output()
        try:
            messages = _frame_decoder.decode(frame)
        except msgspec.ValidationError:
            # One bad message must not cost the good ones beside it: decode them one by one.
            messages = self._salvage(frame, out)
        except msgspec.DecodeError as error:
            out.problems.append(Problem("parse_error", f"malformed frame: {error}"))
            return out
        events = out.events
        instruments = self._instruments
        for message in messages:
            if isinstance(message, _DATA):
                instrument = instruments.get(message.symbol)
                if instrument is None:
                    out.problems.append(
                        Problem(
                            "unknown_message",
                            f"data for {message.symbol!r}, which is not subscribed",
                            self.instrument(message.symbol),
                        )
                    )
                    continue
                try:
                    events.append(_data_event(message, instrument, receive_ts_ns))
                except ValueError as error:
                    out.problems.append(Problem("parse_error", str(error), instrument))
            elif isinstance(message, _Success):
                self._on_success(conn, message, out)
            elif isinstance(message, _Error):
                self._on_error(conn, message, out)
            elif isinstance(message, _Subscription):
                self._on_subscription(conn, message, out)
        return out

    # -- control ----------------------------------------------------------------------------

    def _on_success(self, conn: ConnectionSpec, message: _Success, out: Output) -> None:
        if message.msg == "authenticated":
            self._authenticated.add(conn.name)
            out.send.append(self._subscribe_frame(conn))
        elif message.msg != "connected":
            out.problems.append(Problem("unknown_message", f"success message {message.msg!r}"))

    def _subscribe_frame(self, conn: ConnectionSpec) -> str:
        request: dict[str, object] = {"action": "subscribe"}
        for channel in self.channels:
            request[channel] = list(conn.symbols)
        return _encoder.encode(request).decode()

    def _on_error(self, conn: ConnectionSpec, message: _Error, out: Output) -> None:
        hint, fatal = _ERRORS.get(
            message.code,
            # An unknown error before authentication leaves a connection that can never stream.
            ("unknown Alpaca error", conn.name not in self._authenticated),
        )
        detail = f"alpaca error {message.code} {message.msg!r} on feed {self.feed}: {hint}"
        out.problems.append(Problem("exchange_error", detail))
        if message.code in _UNRECOVERABLE:
            out.fatal = detail
        elif fatal:
            out.reconnect = f"alpaca error {message.code} {message.msg}"

    def _on_subscription(self, conn: ConnectionSpec, message: _Subscription, out: Output) -> None:
        confirmed = {"trades": message.trades, "quotes": message.quotes, "bars": message.bars}
        for channel in self.channels:
            granted = set(confirmed[channel])
            if "*" in granted:
                continue
            missing = [symbol for symbol in conn.symbols if symbol not in granted]
            if missing:
                out.problems.append(
                    Problem("exchange_error", f"alpaca did not subscribe {channel} for {missing}")
                )

    # -- bad input --------------------------------------------------------------------------

    def _salvage(self, frame: str | bytes, out: Output) -> list[_Message]:
        """The decodable messages of a frame; a problem for each of the others."""
        try:
            raw_items = _raw_items_decoder.decode(frame)
        except msgspec.DecodeError as error:
            out.problems.append(Problem("parse_error", f"a frame must be a JSON array: {error}"))
            return []
        messages: list[_Message] = []
        for raw in raw_items:
            try:
                messages.append(_item_decoder.decode(raw))
            except msgspec.ValidationError as error:
                out.problems.append(self._problem_with(raw, error))
        return messages

    def _problem_with(self, raw: msgspec.Raw, error: msgspec.ValidationError) -> Problem:
        try:
            envelope = _envelope_decoder.decode(raw)
        except msgspec.ValidationError:
            return Problem("parse_error", f"not an Alpaca message: {bytes(raw)[:200]!r}")
        if envelope.tag is None:
            return Problem("parse_error", f"message without a type: {bytes(raw)[:200]!r}")
        instrument = None if envelope.symbol is None else self.instrument(envelope.symbol)
        if envelope.tag not in _KNOWN_TAGS:
            return Problem("unknown_message", f"message type {envelope.tag!r}", instrument)
        return Problem("parse_error", f"bad {envelope.tag!r} message: {error}", instrument)

    # -- replay -----------------------------------------------------------------------------

    @classmethod
    def config_from_capture(cls, url: str, sent: list[str]) -> VenueConfig:
        symbols: dict[str, None] = {}
        channels: dict[MarketChannel, None] = {}
        for text in sent:
            try:
                request = msgspec.json.decode(text)
            except msgspec.DecodeError:
                continue
            if not isinstance(request, dict) or request.get("action") != "subscribe":
                continue
            for channel in _CHANNELS:
                listed = request.get(channel)
                if isinstance(listed, list) and listed:
                    channels[channel] = None
                    symbols.update(dict.fromkeys(s for s in listed if isinstance(s, str)))
        feed = url.rstrip("/").rpartition("/")[2]
        return VenueConfig(
            venue=cls.venue,
            symbols=list(symbols),
            channels=list(channels),
            ws_url=url,
            # A replay sends nothing, so the recorded keys (if any) are never needed.
            api_key="replay",
            api_secret="replay",
            options={"feed": feed} if feed in FEEDS else {},
        )
