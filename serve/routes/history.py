"""Recorded history from Postgres: trades and OHLCV bars of one instrument, time-range filtered,
paginated by cursor, as JSON or CSV. Prices and sizes are exact decimal strings."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query
from fastapi.responses import Response
from pydantic import AwareDatetime, BaseModel, ConfigDict
from pydantic.config import JsonValue

from core.events import MARKET_CHANNELS
from core.intervals import INTERVALS
from core.redis_keys import stream_key
from serve.auth.roles import Scope
from serve.dependencies import ResourcesDep, requires
from serve.errors import ApiError, ErrorBody, token_errors
from serve.fields import INSTRUMENT_PATTERN
from serve.pagination import (
    NUMBER,
    TEXT,
    cursor_parts,
    cursor_pattern,
    join_cursor,
    number_at,
    text_at,
    text_of,
)

__all__ = ["router", "MAX_PAGE"]

MAX_PAGE = 5_000
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_CSV = {"content": {"text/csv": {"schema": {"type": "string"}}}}
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")

router = APIRouter(
    prefix="/v1/history",
    tags=["history"],
    dependencies=[Depends(requires(Scope.market_read))],
    responses={
        **token_errors("the token lacks market:read"),
        200: _CSV,
        404: {"model": ErrorBody, "description": "an instrument neither recorded nor streamed"},
    },
)

_TRADES_CURSOR = "1764162728612000000-34313832373736353331"
_BARS_CURSOR = "1764162780000000000"
_CURSOR = "next_cursor of the last page"

Instrument = Annotated[str, Query(pattern=INSTRUMENT_PATTERN, examples=["binance:BTC-USDT"])]
Start = Annotated[
    AwareDatetime | None,
    Query(description="Inclusive, RFC 3339 with offset.", examples=["2025-11-26T00:00:00Z"]),
]
End = Annotated[
    AwareDatetime | None,
    Query(description="Exclusive, RFC 3339 with offset.", examples=["2025-11-27T00:00:00Z"]),
]
Limit = Annotated[int, Query(ge=1, le=MAX_PAGE, examples=[1_000])]
TradesCursor = Annotated[
    str | None,
    Query(
        pattern=cursor_pattern(NUMBER, TEXT),
        max_length=2_100,
        description=_CURSOR,
        examples=[_TRADES_CURSOR],
    ),
]
BarsCursor = Annotated[
    str | None,
    Query(pattern=cursor_pattern(NUMBER), description=_CURSOR, examples=[_BARS_CURSOR]),
]
Format = Annotated[
    Literal["json", "csv"],
    Query(description="csv puts next_cursor in a header", examples=["json"]),
]


_TRADES: list[JsonValue] = [
    {
        "trade_id": "4182776530",
        "exchange_ts_ns": 1_764_162_728_551_000_000,
        "receive_ts_ns": 1_764_162_728_553_912_417,
        "price": "100012.35",
        "size": "0.00421",
        "side": "buy",
    },
    {
        "trade_id": "4182776531",
        "exchange_ts_ns": 1_764_162_728_612_000_000,
        "receive_ts_ns": 1_764_162_728_614_388_020,
        "price": "100012.34",
        "size": "0.15",
        "side": "sell",
    },
]
_BARS: list[JsonValue] = [
    {
        "start_ts_ns": 1_764_162_720_000_000_000,
        "open": "100003.1",
        "high": "100019.99",
        "low": "99998.02",
        "close": "100012.35",
        "volume": "18.53207",
        "trade_count": 1_432,
        "vwap": "100009.87",
    },
    {
        "start_ts_ns": 1_764_162_780_000_000_000,
        "open": "100012.34",
        "high": "100030.5",
        "low": "100001.2",
        "close": "100024.18",
        "volume": "11.0924",
        "trade_count": 987,
        "vwap": "100017.45",
    },
]


class TradeRow(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": _TRADES[:1]})

    trade_id: str
    exchange_ts_ns: int
    receive_ts_ns: int
    price: str
    size: str
    side: Literal["buy", "sell"] | None


class BarRow(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": _BARS[:1]})

    start_ts_ns: int
    open: str
    high: str
    low: str
    close: str
    volume: str
    trade_count: int
    vwap: str | None


class TradesPage(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "instrument": "binance:BTC-USDT",
                    "items": _TRADES,
                    "next_cursor": _TRADES_CURSOR,
                }
            ]
        }
    )

    instrument: str
    items: list[TradeRow]
    next_cursor: str | None


class BarsPage(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "instrument": "binance:BTC-USDT",
                    "interval": "1m",
                    "items": _BARS,
                    "next_cursor": _BARS_CURSOR,
                }
            ]
        }
    )

    instrument: str
    interval: str
    items: list[BarRow]
    next_cursor: str | None


_MAX_NS = 2**63 - 1


def _ns(moment: datetime | None, default: int) -> int:
    if moment is None:
        return default
    # Clamped to what a BIGINT of nanoseconds holds (1970 to 2262): nothing lies outside.
    return min(max((moment - _EPOCH) // timedelta(microseconds=1) * 1_000, 0), _MAX_NS)


def _range(start: datetime | None, end: datetime | None) -> tuple[int, int]:
    # A range that ends where or before it starts holds nothing: an empty page, as SQL has it.
    return _ns(start, 0), _ns(end, _MAX_NS)


def _text(value: Any) -> Any:
    # Plain notation: Decimal's str would write 1E-8 for a tiny size.
    return format(value, "f") if isinstance(value, Decimal) else value


def _rows(records: list[Any]) -> list[dict[str, Any]]:
    return [{key: _text(value) for key, value in record.items()} for record in records]


def _inert(value: Any) -> Any:
    """A cell a spreadsheet shows as text: one starting with = + - @ or a tab or carriage
    return would run as a formula (a venue's trade id is any string); numbers stay numbers."""
    if not isinstance(value, str) or not value.startswith(_FORMULA_STARTS):
        return value
    try:
        Decimal(value)
    except InvalidOperation:
        return "'" + value
    return value


def _csv(rows: list[dict[str, Any]], columns: list[str], next_cursor: str | None) -> Response:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows({key: _inert(value) for key, value in row.items()} for row in rows)
    headers = {"X-Next-Cursor": next_cursor} if next_cursor else {}
    return Response(out.getvalue(), media_type="text/csv", headers=headers)


def _trade_position(cursor: str) -> tuple[int, str]:
    ts, trade_id = cursor_parts(cursor, 2)
    return number_at(ts), text_at(trade_id)


async def _refuse_unknown(resources: ResourcesDep, table: str, instrument: str) -> None:
    """An empty page for an instrument the platform records or streams (its history may simply
    not reach this range yet); 404 for a name it has never seen, which is most often a typo."""
    pool = await resources.pool()
    query = f"SELECT EXISTS (SELECT 1 FROM {table} WHERE instrument_id = $1)"
    if await pool.fetchval(query, instrument):
        return
    streams = [stream_key(channel, instrument) for channel in MARKET_CHANNELS]
    if not await resources.redis.exists(*streams):
        raise ApiError(
            404, "unknown_instrument", f"{instrument} is neither recorded nor streamed here"
        )


@router.get(
    "/trades",
    summary="Trades of an instrument in a time range, oldest first",
    response_model=TradesPage,
)
async def trades(
    resources: ResourcesDep,
    instrument: Instrument,
    start: Start = None,
    end: End = None,
    limit: Limit = 1_000,
    cursor: TradesCursor = None,
    format: Format = "json",
) -> TradesPage | Response:
    low, high = _range(start, end)
    after_ts, after_id = _trade_position(cursor) if cursor else (-1, "")
    pool = await resources.pool()
    records = await pool.fetch(
        "SELECT trade_id, exchange_ts_ns, receive_ts_ns, price, size, side FROM trades "
        "WHERE instrument_id = $1 AND exchange_ts_ns >= $2 AND exchange_ts_ns < $3 "
        "AND (exchange_ts_ns, trade_id) > ($4, $5) ORDER BY exchange_ts_ns, trade_id LIMIT $6",
        instrument,
        low,
        high,
        after_ts,
        after_id,
        limit,
    )
    if not records:
        await _refuse_unknown(resources, "trades", instrument)
    rows = _rows(records)
    last = rows[-1] if len(rows) == limit else None
    next_cursor = (
        join_cursor(str(last["exchange_ts_ns"]), text_of(last["trade_id"])) if last else None
    )
    if format == "csv":
        return _csv(rows, list(TradeRow.model_fields), next_cursor)
    return TradesPage(
        instrument=instrument, items=[TradeRow(**r) for r in rows], next_cursor=next_cursor
    )


@router.get(
    "/bars",
    summary="OHLCV bars of an instrument and interval, oldest first",
    response_model=BarsPage,
)
async def bars(
    resources: ResourcesDep,
    instrument: Instrument,
    interval: Annotated[Literal[INTERVALS], Query(examples=["1m"])],  # type: ignore[valid-type]
    start: Start = None,
    end: End = None,
    limit: Limit = 1_000,
    cursor: BarsCursor = None,
    format: Format = "json",
) -> BarsPage | Response:
    low, high = _range(start, end)
    after = number_at(cursor) if cursor else -1
    pool = await resources.pool()
    records = await pool.fetch(
        "SELECT start_ts_ns, open, high, low, close, volume, trade_count, vwap FROM bars "
        "WHERE instrument_id = $1 AND interval = $2 AND start_ts_ns >= $3 AND start_ts_ns < $4 "
        "AND start_ts_ns > $5 ORDER BY start_ts_ns LIMIT $6",
        instrument,
        interval,
        low,
        high,
        after,
        limit,
    )
    if not records:
        await _refuse_unknown(resources, "bars", instrument)
    rows = _rows(records)
    next_cursor = str(rows[-1]["start_ts_ns"]) if len(rows) == limit else None
    if format == "csv":
        return _csv(rows, list(BarRow.model_fields), next_cursor)
    return BarsPage(
        instrument=instrument,
        interval=interval,
        items=[BarRow(**r) for r in rows],
        next_cursor=next_cursor,
    )
