"""Database migrations: versioned SQL revisions under ``core/migrations/versions``, run by Alembic.

Alembic records the applied revision in ``alembic_version``; an advisory lock serialises two
processes migrating the same database at once, so running at every start-up is safe.
"""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

from alembic import command
from alembic.config import Config

__all__ = ["upgrade_database", "upgrade_database_async", "sqlalchemy_url"]

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
# Alembic's migration context is a module-level proxy: one upgrade at a time per process.
_alembic_lock = threading.Lock()


def sqlalchemy_url(database_url: str) -> str:
    """The asyncpg-driver form of a ``postgresql://`` URL, as SQLAlchemy expects it."""
    scheme, sep, rest = database_url.partition("://")
    if not sep or scheme not in {"postgres", "postgresql", "postgresql+asyncpg"}:
        raise ValueError("DATABASE_URL must be a postgresql:// URL")
    return f"postgresql+asyncpg://{rest}"


def upgrade_database(database_url: str) -> list[str]:
    """Apply every pending revision; returns the revisions applied (empty when up to date)."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.attributes["sqlalchemy_url"] = sqlalchemy_url(database_url)
    applied: list[str] = []
    config.attributes["applied"] = applied
    with _alembic_lock:
        command.upgrade(config, "head")
    return applied


async def upgrade_database_async(database_url: str) -> list[str]:
    """``upgrade_database`` from async code: Alembic runs its own event loop in a worker thread."""
    return await asyncio.to_thread(upgrade_database, database_url)
