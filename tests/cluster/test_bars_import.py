from __future__ import annotations

import os
import subprocess
from decimal import Decimal
from pathlib import Path

import asyncpg
import pandas as pd
import pytest

from cluster.bars_import import read_bars_file, write_bars
from core.errors import PlatformError
from tests.finone_cli import run_finone

CSV = """Date,Open,High,Low,Close,Volume
2013-02-25,450.96,455.44,442.64,442.80,10735900
2013-02-26,443.82,451.54,437.66,448.97,13493000
2013-02-27,448.43,452.44,440.65,444.57,13052300
"""


def import_bars(database_url: str, path: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DATABASE_URL": database_url}
    return run_finone(
        "import-bars",
        str(path),
        "--venue",
        "alpaca",
        "--symbol",
        "AAPL",
        *extra,
        env=env,
        timeout=60,
    )


async def stored_bars(database_url: str) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(database_url)
    try:
        return await conn.fetch("SELECT * FROM bars ORDER BY start_ts_ns")
    finally:
        await conn.close()


async def test_import_bars_with_csv_stores_exact_bars_and_reimport_changes_nothing(
    tmp_path: Path, database_url: str
) -> None:
    path = tmp_path / "aapl.csv"
    path.write_text(CSV)

    first = import_bars(database_url, path, "--interval", "1d")
    assert first.returncode == 0, first.stderr
    assert "3 bars" in first.stdout and "3 new" in first.stdout
    bars = await stored_bars(database_url)
    assert [b["instrument_id"] for b in bars] == ["alpaca:AAPL"] * 3
    assert bars[0]["start_ts_ns"] == 1_361_750_400 * 1_000_000_000  # 2013-02-25T00:00Z
    assert (bars[0]["open"], bars[0]["close"]) == (Decimal("450.96"), Decimal("442.80"))
    assert str(bars[0]["close"]) == "442.80"  # the file's digits, trailing zero included

    again = import_bars(database_url, path, "--interval", "1d")
    assert again.returncode == 0 and "0 new, 0 updated, 3 unchanged" in again.stdout

    path.write_text(CSV.replace("448.97", "449.01"))
    corrected = import_bars(database_url, path, "--interval", "1d")
    assert "0 new, 1 updated" in corrected.stdout
    assert (await stored_bars(database_url))[1]["close"] == Decimal("449.01")


async def test_import_bars_with_a_bad_row_writes_nothing_and_names_the_row(
    tmp_path: Path, database_url: str
) -> None:
    path = tmp_path / "bad.csv"
    path.write_text(CSV + "2013-02-28,444.05,447.87,-1,441.40,11519200\n")
    result = import_bars(database_url, path, "--interval", "1d")
    assert result.returncode == 1
    assert "row 5" in result.stderr and "nothing imported" in result.stderr
    assert await stored_bars(database_url) == []


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("Date,Open,High,Low\n2013-02-25,1,2,0.5\n", "lacks the column(s): close, volume"),
        ("Date,Open,High,Low,Close,Volume\nnot-a-date,1,2,0.5,1,5\n", "unreadable time"),
        ("Date,Open,High,Low,Close,Volume\n2013-02-25,3,2,0.5,1,5\n", "outside low..high"),
        ("Date,Open,High,Low,Close,Volume\n2013-02-25,1,2,0.5,abc,5\n", "not a decimal"),
        (CSV + "2013-02-25,1,2,0.5,1,5\n", "several bars for the same time"),
        ("Date,Open,High,Low,Close,Volume\n", "has no rows"),
    ],
)
def test_read_bars_file_with_invalid_content_explains_what_is_wrong(
    tmp_path: Path, content: str, message: str
) -> None:
    path = tmp_path / "bars.csv"
    path.write_text(content)
    with pytest.raises(PlatformError, match=message.replace("(", r"\(").replace(")", r"\)")):
        read_bars_file(path)


async def test_import_bars_with_parquet_file_stores_its_bars(
    tmp_path: Path, database_url: str
) -> None:
    path = tmp_path / "btc.parquet"
    pd.DataFrame(
        {
            "timestamp": pd.to_datetime(["2024-01-02 00:00", "2024-01-02 00:01"], utc=True),
            "open": [42000.5, 42010.0],
            "high": [42020.0, 42015.25],
            "low": [41990.0, 42001.0],
            "close": [42010.0, 42002.0],
            "volume": [1.25, 0.5],
            "trade_count": [17, 4],
        }
    ).to_parquet(path)
    inserted, updated = await write_bars(
        database_url, "binance", "BTC-USDT", "1m", read_bars_file(path)
    )
    assert (inserted, updated) == (2, 0)
    bars = await stored_bars(database_url)
    assert [b["trade_count"] for b in bars] == [17, 4]
    assert bars[1]["high"] == Decimal("42015.25")
