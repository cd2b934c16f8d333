"""Watchlists in Postgres: the one place their SQL lives (REST routes and the live feed use it)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import asyncpg

__all__ = [
    "Watchlist",
    "WatchlistNameTaken",
    "create",
    "list_for",
    "count_for",
    "get",
    "replace",
    "delete",
]

_COLUMNS = "watchlist_id::text, name, instruments, created_at, updated_at"


class WatchlistNameTaken(Exception):
    pass


@dataclass(frozen=True, slots=True)
class Watchlist:
    watchlist_id: str
    name: str
    instruments: list[str]
    created_at: datetime
    updated_at: datetime


def _watchlist(row: asyncpg.Record | None) -> Watchlist | None:
    return None if row is None else Watchlist(**dict(row))


async def create(
    db: asyncpg.Pool | asyncpg.Connection, user_id: str, name: str, instruments: list[str]
) -> Watchlist:
    try:
        row = await db.fetchrow(
            f"INSERT INTO watchlists (user_id, name, instruments) VALUES ($1::uuid, $2, $3) "
            f"RETURNING {_COLUMNS}",
            user_id,
            name,
            instruments,
        )
    except asyncpg.UniqueViolationError:
        raise WatchlistNameTaken(name) from None
    watchlist = _watchlist(row)
    assert watchlist is not None
    return watchlist


async def list_for(pool: asyncpg.Pool, user_id: str) -> list[Watchlist]:
    rows = await pool.fetch(
        f"SELECT {_COLUMNS} FROM watchlists WHERE user_id = $1::uuid ORDER BY name", user_id
    )
    return [Watchlist(**dict(row)) for row in rows]


async def count_for(db: asyncpg.Pool | asyncpg.Connection, user_id: str) -> int:
    count: int = await db.fetchval(
        "SELECT count(*) FROM watchlists WHERE user_id = $1::uuid", user_id
    )
    return count


async def get(pool: asyncpg.Pool, user_id: str, watchlist_id: str) -> Watchlist | None:
    """The user's watchlist with this id; None for another user's or an unknown one."""
    row = await pool.fetchrow(
        f"SELECT {_COLUMNS} FROM watchlists WHERE watchlist_id = $1::uuid AND user_id = $2::uuid",
        watchlist_id,
        user_id,
    )
    return _watchlist(row)


async def replace(
    pool: asyncpg.Pool, user_id: str, watchlist_id: str, name: str, instruments: list[str]
) -> Watchlist | None:
    try:
        row = await pool.fetchrow(
            f"UPDATE watchlists SET name = $3, instruments = $4, updated_at = now() "
            f"WHERE watchlist_id = $1::uuid AND user_id = $2::uuid RETURNING {_COLUMNS}",
            watchlist_id,
            user_id,
            name,
            instruments,
        )
    except asyncpg.UniqueViolationError:
        raise WatchlistNameTaken(name) from None
    return _watchlist(row)


async def delete(pool: asyncpg.Pool, user_id: str, watchlist_id: str) -> bool:
    status: str = await pool.execute(
        "DELETE FROM watchlists WHERE watchlist_id = $1::uuid AND user_id = $2::uuid",
        watchlist_id,
        user_id,
    )
    return status != "DELETE 0"
