"""History over HTTP: trades and bars from Postgres, time ranges, cursor pages, JSON and CSV."""

from __future__ import annotations

import csv
import io
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import asyncpg
import pytest
import redis.asyncio as aioredis

from core.redis_keys import EVENT_FIELD, stream_key
from core.settings import Settings
from tests.serve.auth_api import AuthApi, Session

START_NS = 1_700_000_000 * 10**9  # 2023-11-14T22:13:20Z
SECOND = 10**9


@pytest.fixture
async def db(gateway_settings: Settings) -> AsyncIterator[asyncpg.Connection]:
    assert gateway_settings.database_url
    conn = await asyncpg.connect(gateway_settings.database_url)
    yield conn
    await conn.close()


@pytest.fixture
async def traded(db: asyncpg.Connection) -> str:
    """25 trades one second apart, the first two in the same nanosecond; sizes down to 1e-8."""
    instrument = f"okx:H{uuid.uuid4().hex[:8].upper()}-USDT"
    rows = [
        (
            instrument,
            f"t{n:03d}",
            START_NS + max(n - 1, 0) * SECOND,
            START_NS + n * SECOND + 5,
            f"30000.{n:02d}0",
            "0.00000001" if n == 3 else "1.50",
            "buy" if n % 2 else "sell",
        )
        for n in range(25)
    ]
    await db.executemany(
        "INSERT INTO trades (instrument_id, trade_id, exchange_ts_ns, receive_ts_ns, price, size, "
        "side) VALUES ($1, $2, $3, $4, $5::numeric, $6::numeric, $7)",
        rows,
    )
    return instrument


@pytest.fixture
async def barred(db: asyncpg.Connection) -> str:
    instrument = f"alpaca:B{uuid.uuid4().hex[:6].upper()}"
    rows = [
        (
            instrument,
            "1d",
            START_NS + n * 86_400 * SECOND,
            "10.0",
            "12.5",
            "9.75",
            "11",
            "1000",
            42,
            None,
        )
        for n in range(7)
    ]
    await db.executemany(
        "INSERT INTO bars (instrument_id, interval, start_ts_ns, open, high, low, close, volume, "
        "trade_count, vwap) VALUES ($1, $2, $3, $4::numeric, $5::numeric, $6::numeric, "
        "$7::numeric, $8::numeric, $9, $10::numeric)",
        rows,
    )
    return instrument


def _iso(ns: int) -> str:
    return datetime.fromtimestamp(ns / 1e9, UTC).isoformat()


async def _history(auth_api: AuthApi, user: Session, kind: str, **params: Any) -> Any:
    return await auth_api.http.get(
        f"{auth_api.url}/v1/history/{kind}", params=params, headers=user.headers
    )


async def test_trade_pages_cover_every_trade_once_in_order(
    auth_api: AuthApi, user: Session, traded: str
) -> None:
    seen: list[str] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"instrument": traded, "limit": 10}
        if cursor:
            params["cursor"] = cursor
        page = await _history(auth_api, user, "trades", **params)
        assert page.status_code == 200, page.text
        seen += [t["trade_id"] for t in page.json()["items"]]
        cursor = page.json()["next_cursor"]
        if cursor is None:
            break

    assert seen == [f"t{n:03d}" for n in range(25)]


async def test_trades_keep_exact_decimals_and_filter_by_time(
    auth_api: AuthApi, user: Session, traded: str
) -> None:
    response = await _history(
        auth_api,
        user,
        "trades",
        instrument=traded,
        start=_iso(START_NS + 2 * SECOND),
        end=_iso(START_NS + 5 * SECOND),
    )

    items = response.json()["items"]
    assert [t["trade_id"] for t in items] == ["t003", "t004", "t005"]
    assert items[0] == {
        "trade_id": "t003",
        "exchange_ts_ns": START_NS + 2 * SECOND,
        "receive_ts_ns": START_NS + 3 * SECOND + 5,
        "price": "30000.030",
        "size": "0.00000001",
        "side": "buy",
    }


async def test_trades_as_csv_with_the_cursor_in_a_header(
    auth_api: AuthApi, user: Session, traded: str
) -> None:
    response = await _history(auth_api, user, "trades", instrument=traded, limit=20, format="csv")

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(response.text)))
    assert len(rows) == 20
    assert rows[0]["price"] == "30000.000" and rows[0]["side"] == "sell"
    rest = await _history(
        auth_api, user, "trades", instrument=traded, cursor=response.headers["x-next-cursor"]
    )
    assert [t["trade_id"] for t in rest.json()["items"]] == [f"t{n:03d}" for n in range(20, 25)]


async def test_bars_by_interval_and_range(auth_api: AuthApi, user: Session, barred: str) -> None:
    day = 86_400 * SECOND

    week = await _history(auth_api, user, "bars", instrument=barred, interval="1d")
    middle = await _history(
        auth_api,
        user,
        "bars",
        instrument=barred,
        interval="1d",
        start=_iso(START_NS + 2 * day),
        end=_iso(START_NS + 4 * day),
        format="csv",
    )
    other_interval = await _history(auth_api, user, "bars", instrument=barred, interval="1m")

    assert [b["start_ts_ns"] for b in week.json()["items"]] == [
        START_NS + n * day for n in range(7)
    ]
    assert week.json()["items"][0]["high"] == "12.5" and week.json()["items"][0]["vwap"] is None
    assert [int(r["start_ts_ns"]) for r in csv.DictReader(io.StringIO(middle.text))] == [
        START_NS + 2 * day,
        START_NS + 3 * day,
    ]
    assert other_interval.status_code == 200 and other_interval.json()["items"] == []


async def test_an_instrument_streamed_but_not_yet_recorded_has_empty_history(
    auth_api: AuthApi, user: Session, redis_url: str
) -> None:
    instrument = f"simulated:S{uuid.uuid4().hex[:6].upper()}-USD"
    redis = aioredis.from_url(redis_url)
    try:
        await redis.xadd(stream_key("quotes", instrument), {EVENT_FIELD: b"{}"})
        trades = await _history(auth_api, user, "trades", instrument=instrument)
        bars = await _history(auth_api, user, "bars", instrument=instrument, interval="1m")
    finally:
        await redis.delete(stream_key("quotes", instrument))
        await redis.aclose()

    assert trades.status_code == 200 and trades.json()["items"] == [], trades.text
    assert bars.status_code == 200 and bars.json()["items"] == [], bars.text


async def test_bad_history_requests_get_clear_errors(
    auth_api: AuthApi, user: Session, traded: str
) -> None:
    backwards = await _history(
        auth_api,
        user,
        "trades",
        instrument=traded,
        start=_iso(START_NS + 9 * SECOND),
        end=_iso(START_NS),
    )
    naive_time = await _history(
        auth_api, user, "trades", instrument=traded, start="2024-01-01T00:00:00"
    )
    bad_cursor = await _history(
        auth_api, user, "trades", instrument=traded, cursor="bm90LWEtY3Vyc29y"
    )
    unknown = await _history(auth_api, user, "trades", instrument="okx:NEVER-SEEN")
    bad_interval = await _history(auth_api, user, "bars", instrument=traded, interval="7m")
    bad_limit = await _history(auth_api, user, "trades", instrument=traded, limit=0)
    far_future = await _history(
        auth_api,
        user,
        "trades",
        instrument=traded,
        start="1900-01-01T00:00:00Z",
        end="2524-06-03T11:14:16Z",
    )

    assert (backwards.status_code, backwards.json()["items"]) == (200, [])
    assert (bad_cursor.status_code, bad_cursor.json()["code"]) == (422, "invalid_request")
    assert (unknown.status_code, unknown.json()["code"]) == (404, "unknown_instrument")
    assert far_future.status_code == 200 and len(far_future.json()["items"]) == 25
    for response in (naive_time, bad_interval, bad_limit):
        assert response.status_code == 422
        assert response.json()["code"] == "invalid_request"
