"""Embedded Redis and Postgres for benchmarks: the same servers `finone up` runs, in a temp dir."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

from cluster.embedded_postgres import EmbeddedPostgres
from cluster.embedded_redis import EmbeddedRedis
from cluster.ports import free_port
from core.health import check_postgres, check_redis, passes
from core.migrate import upgrade_database_async

__all__ = ["LocalServices", "local_services"]


@dataclass(frozen=True)
class LocalServices:
    redis_url: str
    database_url: str


@asynccontextmanager
async def local_services(data_dir: Path) -> AsyncIterator[LocalServices]:
    redis = EmbeddedRedis(data_dir, "127.0.0.1", free_port(), os.environ)
    postgres = EmbeddedPostgres(data_dir, "127.0.0.1", free_port(), os.environ)
    postgres.prepare()
    redis.process.start()
    postgres.process.start()
    try:
        await redis.process.wait_until_ready(lambda: passes(check_redis(redis.url, 1.0)), 30)
        await postgres.process.wait_until_ready(
            lambda: passes(check_postgres(postgres.url_for("postgres"), 1.0)), 30
        )
        # The platform's own role and database, as `finone up` provisions them.
        await postgres.provision(30)
        await upgrade_database_async(postgres.url)
        yield LocalServices(redis_url=redis.url, database_url=postgres.url)
    finally:
        redis.process.stop()
        postgres.process.stop()
