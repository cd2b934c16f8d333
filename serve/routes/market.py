"""Live market data: which instruments stream (with their feeds' state) and latest quotes."""

from __future__ import annotations

from typing import Annotated

import msgspec
from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, ConfigDict, Field

from cluster.events import Quote, decode_event, instrument_id
from cluster.redis_keys import QUOTES_HASH
from serve.auth.roles import Scope
from serve.dependencies import ResourcesDep, requires
from serve.errors import ApiError, ErrorBody, token_errors
from serve.feeds import feed_statuses
from serve.fields import INSTRUMENT_PATTERN

__all__ = ["router", "MAX_QUOTES", "QuoteView"]

MAX_QUOTES = 100

router = APIRouter(
    prefix="/v1",
    tags=["market data"],
    dependencies=[Depends(requires(Scope.market_read))],
    responses=token_errors("the token lacks market:read"),
)

_FEED = {
    "venue": "binance",
    "connection": "binance-0",
    "state": "live",
    "detail": "",
    "last_message_age_s": 0.04,
    "messages_per_s": 182.4,
    "events_per_s": 240.7,
    "gaps": 0,
    "reconnects": 1,
}
_INSTRUMENTS = [
    {
        "instrument": f"binance:{symbol}",
        "venue": "binance",
        "symbol": symbol,
        "connection": "binance-0",
        "state": "live",
    }
    for symbol in ("BTC-USDT", "ETH-USDT")
]
_QUOTE = {
    "instrument": "binance:BTC-USDT",
    "bid_price": "100012.34",
    "bid_size": "0.52731",
    "ask_price": "100012.35",
    "ask_size": "1.20415",
    "exchange_ts_ns": 1_764_162_728_551_000_000,
    "receive_ts_ns": 1_764_162_728_553_912_417,
}


class FeedView(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [_FEED]})

    venue: str
    connection: str
    state: str = Field(description="connecting, live, reconnecting, failed, stopped or unreachable")
    detail: str
    last_message_age_s: float | None = None
    messages_per_s: float | None = None
    events_per_s: float | None = None
    gaps: int | None = None
    reconnects: int | None = None


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
    model_config = ConfigDict(json_schema_extra={"examples": [{"quotes": [_QUOTE]}]})

    quotes: list[QuoteView]


@router.get("/instruments", summary="Venues and instruments being streamed, with feed status")
async def instruments() -> Instruments:
    statuses = await feed_statuses()
    feeds = [
        FeedView(**{k: v for k, v in s.items() if k in FeedView.model_fields}) for s in statuses
    ]
    listed = [
        InstrumentView(
            instrument=instrument_id(status["venue"], symbol),
            venue=status["venue"],
            symbol=symbol,
            connection=status["connection"],
            state=status["state"],
        )
        for status in statuses
        for symbol in status.get("symbols", [])
    ]
    return Instruments(instruments=sorted(listed, key=lambda i: i.instrument), feeds=feeds)


@router.get(
    "/quotes",
    summary="Latest quote of each instrument asked for",
    responses={404: {"model": ErrorBody, "description": "an instrument has no quote"}},
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
    for name, raw in zip(wanted, await resources.redis.hmget(QUOTES_HASH, wanted), strict=True):
        quote = _quote(raw)
        if quote is None:
            missing.append(name)
        else:
            found.append(QuoteView(**msgspec.structs.asdict(quote)))
    if missing:
        raise ApiError(
            404, "unknown_instrument", f"no quote for: {', '.join(missing)}", details=missing
        )
    return Quotes(quotes=found)


def _quote(raw: bytes | None) -> Quote | None:
    if raw is None:
        return None
    event = decode_event(raw)
    return event if isinstance(event, Quote) else None
