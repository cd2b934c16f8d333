"""`finone load-sample-data`: the bundled history lands in the bars table, once."""

from __future__ import annotations

import asyncio

import asyncpg
from click.testing import CliRunner

from cluster.cli import main


def _counts(database_url: str) -> dict[str, int]:
    async def query() -> dict[str, int]:
        conn = await asyncpg.connect(database_url)
        try:
            rows = await conn.fetch(
                "SELECT instrument_id, count(*) AS n FROM bars WHERE interval = '1d' "
                "GROUP BY instrument_id"
            )
        finally:
            await conn.close()
        return {row["instrument_id"]: row["n"] for row in rows}

    return asyncio.run(query())


def test_sample_data_loads_four_stocks_once(database_url: str) -> None:
    first = CliRunner().invoke(main, ["load-sample-data"], env={"DATABASE_URL": database_url})
    again = CliRunner().invoke(main, ["load-sample-data"], env={"DATABASE_URL": database_url})

    assert first.exit_code == 0, first.output
    assert "alpaca:AAPL 1d: 3,270 bars; 3,270 new, 0 updated" in first.output
    assert again.exit_code == 0
    assert "alpaca:AAPL 1d: 3,270 bars; 0 new, 0 updated" in again.output
    assert _counts(database_url) == {
        "alpaca:AAPL": 3270,
        "alpaca:GOOG": 2148,
        "alpaca:IBM": 3270,
        "alpaca:MSFT": 3270,
    }
