from __future__ import annotations

import asyncio
import sys

import asyncpg
import pytest

from core.migrate import sqlalchemy_url, upgrade_database_async


async def _tables(url: str) -> set[str]:
    conn = await asyncpg.connect(url)
    try:
        rows = await conn.fetch(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'"
        )
    finally:
        await conn.close()
    return {row["table_name"] for row in rows}


async def _recorded_version(url: str) -> str:
    conn = await asyncpg.connect(url)
    try:
        return await conn.fetchval("SELECT version_num FROM alembic_version")
    finally:
        await conn.close()


async def test_migrations_on_empty_database_create_schema_and_record_it(
    empty_database_url: str,
) -> None:
    assert await _tables(empty_database_url) == set()

    applied = await upgrade_database_async(empty_database_url)

    assert applied == ["0001", "0002", "0003", "0004"]
    market = {"instruments", "trades", "bars"}
    identity = {"users", "refresh_tokens", "signing_keys", "oauth_clients", "audit_events"}
    expected = market | identity | {"watchlists", "alerts", "alembic_version"}
    assert expected <= await _tables(empty_database_url)
    assert await _recorded_version(empty_database_url) == "0004"


async def test_migrations_run_twice_second_run_is_noop(empty_database_url: str) -> None:
    await upgrade_database_async(empty_database_url)
    conn = await asyncpg.connect(empty_database_url)
    try:
        await conn.execute(
            "INSERT INTO instruments (instrument_id, venue, symbol, asset_class) "
            "VALUES ('binance:BTC-USDT', 'binance', 'BTC-USDT', 'crypto')"
        )
    finally:
        await conn.close()

    applied_again = await upgrade_database_async(empty_database_url)

    assert applied_again == []
    assert await _recorded_version(empty_database_url) == "0004"
    conn = await asyncpg.connect(empty_database_url)
    try:
        assert await conn.fetchval("SELECT count(*) FROM instruments") == 1
    finally:
        await conn.close()


async def _migrate_in_subprocess(url: str) -> str:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        "import sys; from core.migrate import upgrade_database; "
        "print(upgrade_database(sys.argv[1]))",
        url,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
    )
    stdout, _ = await process.communicate()
    assert process.returncode == 0
    return stdout.decode().strip()


async def test_migrations_started_by_two_processes_at_once_apply_once(
    empty_database_url: str,
) -> None:
    results = await asyncio.gather(
        _migrate_in_subprocess(empty_database_url), _migrate_in_subprocess(empty_database_url)
    )
    assert sorted(results) == ["['0001', '0002', '0003', '0004']", "[]"]
    assert await _recorded_version(empty_database_url) == "0004"


async def test_bars_table_with_impossible_ohlc_rejects_row(database_url: str) -> None:
    conn = await asyncpg.connect(database_url)
    try:
        with pytest.raises(asyncpg.CheckViolationError):
            await conn.execute(
                "INSERT INTO bars VALUES ('alpaca:AAPL', '1d', 0, 10, 9, 8, 10, 100, 1, 9)"
            )
    finally:
        await conn.close()


def test_sqlalchemy_url_with_non_postgres_scheme_is_refused() -> None:
    with pytest.raises(ValueError, match="postgresql://"):
        sqlalchemy_url("mysql://u:p@host/db")
