"""What the stack leaves on its host: private files, a database role that is not a superuser,
children that never see the platform's secrets."""

from __future__ import annotations

import os
import stat
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest
import redis.asyncio as aioredis

from cluster.embedded_postgres import DATABASE_NAME, EmbeddedPostgres
from cluster.embedded_redis import EmbeddedRedis
from cluster.ports import free_port
from cluster.preflight import ensure_writable_data_dir
from core.health import check_postgres, check_redis, passes
from core.migrate import upgrade_database_async

SECRETS = {"FINONE_SECRET_KEY": "k" * 48, "FINONE_ADMIN_PASSWORD": "admin password"}


@pytest.fixture
async def servers(tmp_path: Path) -> AsyncIterator[tuple[Path, EmbeddedRedis, EmbeddedPostgres]]:
    data_dir = tmp_path / "data"
    ensure_writable_data_dir(data_dir)
    env = {**os.environ, **SECRETS}
    redis = EmbeddedRedis(data_dir, "127.0.0.1", free_port(), env)
    postgres = EmbeddedPostgres(data_dir, "127.0.0.1", free_port(), env)
    postgres.prepare()
    redis.process.start()
    postgres.process.start()
    try:
        await redis.process.wait_until_ready(lambda: passes(check_redis(redis.url, 1.0)), 60)
        admin_url = postgres.url_for("postgres")
        await postgres.process.wait_until_ready(lambda: passes(check_postgres(admin_url, 1.0)), 90)
        yield data_dir, redis, postgres
    finally:
        redis.process.stop()
        postgres.process.stop()


async def test_the_platform_uses_a_role_that_owns_its_database_and_is_no_superuser(
    servers: tuple[Path, EmbeddedRedis, EmbeddedPostgres],
) -> None:
    _, _, postgres = servers
    # A data directory from before the role: the database and a table the superuser made.
    admin = await asyncpg.connect(postgres.url_for("postgres"))
    await admin.execute(f'CREATE DATABASE "{DATABASE_NAME}"')
    await admin.close()
    old = await asyncpg.connect(postgres.url_for(DATABASE_NAME))
    await old.execute("CREATE TABLE earlier (n bigserial PRIMARY KEY)")
    await old.close()

    await postgres.provision(timeout_s=10)
    await upgrade_database_async(postgres.url)

    conn = await asyncpg.connect(postgres.url)
    try:
        assert not await conn.fetchval("SELECT rolsuper FROM pg_roles WHERE rolname = current_user")
        owners = await conn.fetch(
            "SELECT DISTINCT tableowner FROM pg_tables WHERE schemaname = 'public'"
        )
        assert [r["tableowner"] for r in owners] == [await conn.fetchval("SELECT current_user")]
        await conn.execute("INSERT INTO earlier DEFAULT VALUES")
        # What injected SQL would try as a superuser: run a program, read a server file.
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await conn.execute("COPY (SELECT 1) TO PROGRAM 'id'")
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await conn.fetchval("SELECT pg_read_file('/etc/passwd')")
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await conn.execute("CREATE DATABASE elsewhere")
    finally:
        await conn.close()


async def test_data_logs_and_server_files_are_the_owners_only(
    servers: tuple[Path, EmbeddedRedis, EmbeddedPostgres],
) -> None:
    data_dir, redis, _ = servers
    client = aioredis.from_url(redis.url)
    await client.xadd("finone:stream:trades:test:X", {"e": b"1"})
    await client.aclose()

    wide = [
        f"{path.relative_to(data_dir)} {stat.filemode(path.stat().st_mode)}"
        for path in data_dir.rglob("*")
        if not path.is_symlink() and path.stat().st_mode & 0o077
    ]
    assert wide == []
    # As root, Postgres runs as a system user of its own, which may pass through, not look.
    mode = stat.S_IMODE(data_dir.stat().st_mode)
    assert mode == (0o710 if os.geteuid() == 0 else 0o700), oct(mode)


def test_the_servers_children_get_none_of_the_platforms_secrets(
    tmp_path: Path,
) -> None:
    env = {**os.environ, **SECRETS}
    redis = EmbeddedRedis(tmp_path, "127.0.0.1", free_port(), env)
    postgres = EmbeddedPostgres(tmp_path, "127.0.0.1", free_port(), env)

    for process in (redis.process, postgres.process):
        assert not set(SECRETS) & set(process.env), process.name
        assert process.env["PATH"] == os.environ["PATH"]
