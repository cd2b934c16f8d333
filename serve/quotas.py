"""Per-user limits on what people create (watchlists, waiting alerts, machine clients) that hold
under parallel requests: the count and the insert happen in one transaction holding a lock of
the owner's, so two requests cannot both see room for one more."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import asyncpg

__all__ = ["QuotaExceeded", "within_quota"]

Count = Callable[[asyncpg.Connection, str], Awaitable[int]]


class QuotaExceeded(Exception):
    pass


@asynccontextmanager
async def within_quota(
    pool: asyncpg.Pool, kind: str, owner: str, limit: int, count: Count
) -> AsyncIterator[asyncpg.Connection]:
    """A connection to create one more ``kind`` of ``owner``'s on, while they hold fewer than
    ``limit``; QuotaExceeded otherwise. What is created on it commits as the block ends."""
    async with pool.acquire() as conn, conn.transaction():
        # Per owner and kind: creating a watchlist does not wait for another user's alerts.
        await conn.execute(
            "SELECT pg_advisory_xact_lock(hashtextextended($1, 0))", f"{kind}:{owner}"
        )
        if await count(conn, owner) >= limit:
            raise QuotaExceeded(kind)
        yield conn
