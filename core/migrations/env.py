"""Alembic's entry point: run pending revisions over one asyncpg connection, under a lock."""

from __future__ import annotations

import asyncio
from collections.abc import Collection, Mapping

from alembic import context
from alembic.runtime.migration import MigrationContext, MigrationInfo
from sqlalchemy import pool, text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine

# Any constant works; it only has to be the same for every process migrating this database.
MIGRATION_LOCK_KEY = 0x46494E4F4E45

config = context.config


def _record_applied(
    ctx: MigrationContext,
    step: MigrationInfo,
    heads: Collection[str],
    run_args: Mapping[str, object],
) -> None:
    if step.is_upgrade:
        config.attributes["applied"].append(step.up_revision_id)


def _run(connection: Connection) -> None:
    context.configure(connection=connection, on_version_apply=_record_applied)
    with context.begin_transaction():
        connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK_KEY})
        context.run_migrations()


async def _run_async() -> None:
    engine = create_async_engine(config.attributes["sqlalchemy_url"], poolclass=pool.NullPool)
    try:
        async with engine.connect() as connection:
            await connection.run_sync(_run)
    finally:
        await engine.dispose()


asyncio.run(_run_async())
