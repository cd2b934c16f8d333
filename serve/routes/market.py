"""Live market data: which instruments stream (with their feeds' state) and latest quotes."""

from __future__ import annotations

from typing import Annotated

import msgspec
from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, ConfigDict, Field
from pydantic.config import JsonDict, JsonValue

from core.events import Quote, decode_event, instrument_id
from core.redis_keys import QUOTES_HASH
from core.redis_replies import hash_values
from serve.auth.roles import Scope
from serve.dependencies import ResourcesDep, requires
from serve.errors import token_errors
from serve.feeds import feed_reports
from serve.fields import INSTRUMENT_PATTERN

__all__ = ["router", "MAX_QUOTES", "QuoteView"]

MAX_QUOTES = 100

router = APIRouter(
    prefix="/v1",
    tags=["market data"],
    dependencies=[Depends(requires(Scope.market_read))],
    responses=token_errors("the token lacks market:read"),
)

_FEED: JsonDict = {
    "venue": "binance",
    "connection": "binance-0",
    "state": "live",
    "detail": "",
    "last_message_age_s": 0.04,
    "messages_per_s": 182.4,
    "events_per_s": 240.7,
    "gaps": 0,
    "reconnects": 1,
    "rotations": 0,
}
_INSTRUMENTS: list[JsonValue] = [
    {
        "instrument": f"binance:{symbol}",
        "venue": "binance",
        "symbol": symbol,
        "connection": "binance-0",
        "state": "live",
    }
    for symbol in ("BTC-USDT", "ETH-USDT")
]
_QUOTE: JsonDict = {
    "instrument": "binance:BTC-USDT",
    "bid_price": "100012.34",
    "bid_size": "0.52731",
    "ask_price": "100012.35",
    "ask_size": "1.20415",
    "exchange_ts_ns": 1_764_162_728_551_000_000,
    "receive_ts_ns": 1_764_162_728_553_912_417,
}


class FeedView(BaseModel):
    """A feed connection's state, as market-data readers see it."""

    model_config = ConfigDict(from_attributes=True, json_schema_extra={"examples": [_FEED]})

    venue: str
    connection: str
    state: str = Field(description="connecting, live, reconnecting, failed, stopped or unreachable")
    detail: str
    last_message_age_s: float | None = None
    messages_per_s: float | None = None
    events_per_s: float | None = None
    gaps: int | None = None
    reconnects: int | None = None
    rotations: int | None = Field(
        default=None,
        description="Connections replaced at the venue's age limit without a gap (overlapping)",
    )


class InstrumentView(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": _INSTRUMENTS[:1]})

    instrument: str = Field(examples=["binance:BTC-USDT"])
    venue: str
    symbol: str
    connection: str
    state: str


class Instruments(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={"examples": [{"instruments": _INSTRUMENTS, "feeds": [_FEED]}]}
    )

    instruments: list[InstrumentView]
    feeds: list[FeedView]


class QuoteView(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [_QUOTE]})

    instrument: str
    bid_price: str | None = Field(description="As the exchange wrote it; null for an empty side.")
    bid_size: str | None
    ask_price: str | None
    ask_size: str | None
    exchange_ts_ns: int
    receive_ts_ns: int


class Quotes(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={"examples": [{"quotes": [_QUOTE], "missing": ["alpaca:IBM"]}]}
    )

    quotes: list[QuoteView]
    missing: list[str] = Field(
        description="Instruments asked for that have no quote: unknown, or streamed without "
        "quotes (a feed of bars only) or none yet."
    )


@router.get("/instruments", summary="Venues and instruments being streamed, with feed status")
async def instruments() -> Instruments:
    reports = await feed_reports()
    feeds = [FeedView.model_validate(report) for report in reports]
    listed = [
        InstrumentView(
            instrument=instrument_id(report.venue, symbol),
            venue=report.venue,
            symbol=symbol,
            connection=report.connection,
            state=report.state,
        )
        for report in reports
        for symbol in report.symbols
    ]
    return Instruments(instruments=sorted(listed, key=lambda i: i.instrument), feeds=feeds)


@router.get(
    "/quotes",
    summary="Latest quote of each instrument asked for",
)
async def quotes(
    resources: ResourcesDep,
    instrument: Annotated[
        list[Annotated[str, Field(pattern=INSTRUMENT_PATTERN)]],
        Query(min_length=1, max_length=MAX_QUOTES, examples=[["binance:BTC-USDT"]]),
    ],
) -> Quotes:
    wanted = list(dict.fromkeys(instrument))
    found: list[QuoteView] = []
    missing: list[str] = []
    raws = hash_values(await resources.redis.hmget(QUOTES_HASH, wanted))
    for name, raw in zip(wanted, raws, strict=True):
        quote = _quote(raw)
        if quote is None:
            missing.append(name)
        else:
            found.append(QuoteView(**msgspec.structs.asdict(quote)))
    return Quotes(quotes=found, missing=missing)


def _quote(raw: bytes | None) -> Quote | None:
    if raw is None:
        return None
    event = decode_event(raw)
    return event if isinstance(event, Quote) else None
