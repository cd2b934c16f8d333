"""The one event schema of the platform, and its one codec.

Feeds publish these, the recorder and the gateway read them, tests build them: all through
``encode_event``/``decode_event``. Prices and sizes stay the exact decimal strings the exchange
sent; times are integer nanoseconds since the epoch (UTC), exchange time and receive time both.
Instrument ids read ``venue:SYMBOL`` (``binance:BTC-USDT``, ``alpaca:AAPL``).
"""

from __future__ import annotations

import re
import time
from typing import Literal

import msgspec

__all__ = [
    "Event",
    "MarketEvent",
    "Trade",
    "TradeCorrection",
    "TradeCancel",
    "Quote",
    "BookSnapshot",
    "BookDelta",
    "Bar",
    "Gap",
    "AlertTriggered",
    "FeedStatus",
    "feed_status_now",
    "AnyEvent",
    "MarketChannel",
    "MARKET_CHANNELS",
    "Channel",
    "CHANNELS",
    "ModelChannel",
    "MODEL_CHANNELS",
    "ReturnForecast",
    "VolatilityForecast",
    "Forecast",
    "ModelRef",
    "FindingKind",
    "Verdict",
    "Finding",
    "Insight",
    "Side",
    "PriceLevel",
    "encode_event",
    "decode_event",
    "event_to_json",
    "instrument_id",
    "checked_decimal",
]

Side = Literal["buy", "sell"]
# What feeds publish per instrument; the live feed adds what inference makes from them.
MarketChannel = Literal["trades", "quotes", "book", "bars"]
MARKET_CHANNELS: tuple[MarketChannel, ...] = ("trades", "quotes", "book", "bars")
# Made by inference from the bars and the champion models, only for instruments some live-feed
# client wants.
ModelChannel = Literal["predictions", "insights"]
MODEL_CHANNELS: tuple[ModelChannel, ...] = ("predictions", "insights")
Channel = Literal["trades", "quotes", "book", "bars", "predictions", "insights"]
CHANNELS: tuple[Channel, ...] = (*MARKET_CHANNELS, *MODEL_CHANNELS)
# (price, size) exactly as the exchange wrote them.
PriceLevel = tuple[str, str]

_DECIMAL = re.compile(r"[0-9]+(?:\.[0-9]*)?(?:[eE][-+]?[0-9]+)?|\.[0-9]+")
# Books repeat the same prices and sizes endlessly: spellings already found positive are
# remembered (bounded), which takes validation off the feed's hot path.
_KNOWN_POSITIVE: dict[str, None] = {}
_KNOWN_POSITIVE_LIMIT = 65_536


def checked_decimal(text: str, *, allow_zero: bool = False) -> str:
    """``text`` if it is a plain non-negative decimal number (positive unless ``allow_zero``)."""
    if text.__class__ is str and text in _KNOWN_POSITIVE:
        return text
    if not isinstance(text, str) or _DECIMAL.fullmatch(text) is None:
        raise ValueError(f"not a decimal number: {text!r}")
    if float(text) == 0.0:
        if allow_zero:
            return text
        raise ValueError(f"must be positive: {text!r}")
    if len(_KNOWN_POSITIVE) < _KNOWN_POSITIVE_LIMIT:
        _KNOWN_POSITIVE[text] = None
    return text


def instrument_id(venue: str, symbol: str) -> str:
    return f"{venue}:{symbol}"


class Event(msgspec.Struct, frozen=True, kw_only=True, tag_field="kind"):
    """Root of the schema: every event says when the exchange stamped it and when we got it."""

    exchange_ts_ns: int
    receive_ts_ns: int


class MarketEvent(Event, frozen=True, kw_only=True):
    """An event about one instrument."""

    instrument: str


class Trade(MarketEvent, frozen=True, kw_only=True, tag="trade"):
    """``side`` is the aggressor's (taker's) side: "buy" means a buyer lifted an offer."""

    trade_id: str
    price: str
    size: str
    side: Side | None = None


class TradeCorrection(MarketEvent, frozen=True, kw_only=True, tag="trade_correction"):
    """The exchange corrected an earlier trade: readers replace trade ``original_trade_id`` with
    the corrected one (its id may be new), which still happened when the original did. Both
    timestamps are the correction's own."""

    original_trade_id: str
    original_price: str
    original_size: str
    corrected_trade_id: str
    corrected_price: str
    corrected_size: str


class TradeCancel(MarketEvent, frozen=True, kw_only=True, tag="trade_cancel"):
    """The exchange withdrew an earlier trade, as canceled or as reported in error: readers
    drop it. Both timestamps are the cancel's own."""

    trade_id: str
    price: str
    size: str
    reason: Literal["cancel", "error"]


class Quote(MarketEvent, frozen=True, kw_only=True, tag="quote"):
    """Best bid and offer; a side is None when that side of the book is empty."""

    bid_price: str | None
    bid_size: str | None
    ask_price: str | None
    ask_size: str | None


class BookSnapshot(MarketEvent, frozen=True, kw_only=True, tag="book_snapshot"):
    """The whole (or top-N) book after a resync: readers replace what they held."""

    bids: list[PriceLevel]
    asks: list[PriceLevel]
    sequence: int | None = None


class BookDelta(MarketEvent, frozen=True, kw_only=True, tag="book_delta"):
    """Changed levels; size "0" (in any spelling) removes the level."""

    bids: list[PriceLevel]
    asks: list[PriceLevel]
    sequence: int | None = None


class Bar(MarketEvent, frozen=True, kw_only=True, tag="bar"):
    interval: str
    start_ts_ns: int
    open: str
    high: str
    low: str
    close: str
    volume: str
    trade_count: int
    vwap: str | None = None


class Gap(MarketEvent, frozen=True, kw_only=True, tag="gap"):
    """Continuity was lost for this instrument (reconnect, sequence gap, checksum failure):
    readers must not assume they saw every event before this one."""

    reason: str


class AlertTriggered(MarketEvent, frozen=True, kw_only=True, tag="alert"):
    """A user's price alert fired on this instrument (it fires once, then is spent)."""

    user_id: str
    alert_id: str
    condition: str
    threshold: str
    price: str
    window_s: int | None = None


class ModelOutput(msgspec.Struct, frozen=True, kw_only=True):
    """Which registered model version made a forecast, from bars of which interval, ending with
    the bar that started at ``bar_start_ts_ns``, and how many bars ahead it looks."""

    model: str
    version: str
    interval: str
    horizon: int
    bar_start_ts_ns: int


class ReturnForecast(ModelOutput, frozen=True, kw_only=True):
    """Quantiles of the log return over the next ``horizon`` bars, and the chance it is > 0."""

    q10: float
    q50: float
    q90: float
    prob_up: float


class VolatilityForecast(ModelOutput, frozen=True, kw_only=True):
    """Realized volatility (root of summed squared log returns) of the next ``horizon`` bars."""

    volatility: float


class Forecast(MarketEvent, frozen=True, kw_only=True, tag="forecast"):
    """The champions' current forecast for one instrument; a part is None while its target has
    no champion. Both timestamps are when the forecast was made."""

    returns: ReturnForecast | None
    volatility: VolatilityForecast | None


class ModelRef(msgspec.Struct, frozen=True, kw_only=True):
    """A registered model version."""

    model: str
    version: str


FindingKind = Literal[
    "volatility_regime", "next_bar_range", "directional_edge", "calibration", "skill"
]
# Per kind: volatility_regime calm/typical/elevated; next_bar_range range; directional_edge
# edge/no_edge; calibration calibrated/too_narrow/too_wide; skill beats_baselines/mixed/no_better;
# any of them not_measured when the history or the champion's training run cannot say.
Verdict = Literal[
    "calm",
    "typical",
    "elevated",
    "range",
    "edge",
    "no_edge",
    "calibrated",
    "too_narrow",
    "too_wide",
    "beats_baselines",
    "mixed",
    "no_better",
    "not_measured",
]


class Finding(msgspec.Struct, frozen=True, kw_only=True):
    """One thing an insight says: what it is about, its outcome, the numbers it rests on (None
    where one was not measured) and a sentence saying it."""

    kind: FindingKind
    verdict: Verdict
    numbers: dict[str, float | None]
    text: str


class Insight(MarketEvent, frozen=True, kw_only=True, tag="insight"):
    """A plain-language reading of an instrument from its forecast, its history and the
    champions' out-of-sample record. It depends on the bars and the models only, never on when
    it was made: both timestamps are the start of the latest bar it reads."""

    interval: str
    returns: ModelRef | None
    volatility: ModelRef | None
    summary: str
    findings: list[Finding]


class FeedStatus(Event, frozen=True, kw_only=True, tag="status"):
    """A feed connection changed state (connecting, live, reconnecting, failed, stopped)."""

    venue: str
    connection: str
    state: str
    detail: str = ""


AnyEvent = (
    Trade
    | TradeCorrection
    | TradeCancel
    | Quote
    | BookSnapshot
    | BookDelta
    | Bar
    | Gap
    | AlertTriggered
    | Forecast
    | Insight
    | FeedStatus
)


def feed_status_now(venue: str, connection: str, state: str, detail: str = "") -> FeedStatus:
    """A feed's state change, stamped now (it happens here, not at the exchange)."""
    now = time.time_ns()
    return FeedStatus(
        venue=venue,
        connection=connection,
        state=state,
        detail=detail,
        exchange_ts_ns=now,
        receive_ts_ns=now,
    )


_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(AnyEvent)
_json_encoder = msgspec.json.Encoder()


def encode_event(event: AnyEvent) -> bytes:
    return _encoder.encode(event)


def decode_event(data: bytes) -> AnyEvent:
    """Raises ``msgspec.ValidationError``/``DecodeError`` on anything not a valid event."""
    return _decoder.decode(data)


def event_to_json(event: Event) -> bytes:
    return _json_encoder.encode(event)
