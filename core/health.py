"""Health checks of the stack's services, shared by ``/readyz``, ``finone status`` and start-up."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

import asyncpg
import httpx
import msgspec
import redis.asyncio as aioredis

from core.urls import redact_url

__all__ = ["Check", "check_redis", "check_postgres", "check_mlflow", "check_services", "passes"]


class Check(msgspec.Struct, frozen=True):
    """The outcome of probing one component."""

    name: str
    ok: bool
    detail: str
    latency_ms: float | None = None


def _describe(error: BaseException, url: str) -> str:
    if isinstance(error, TimeoutError):
        return "timed out"
    first_line = (str(error).strip() or type(error).__name__).splitlines()[0]
    return f"{type(error).__name__}: {first_line.replace(url, redact_url(url))}"


async def _timed(
    name: str, url: str, timeout_s: float, probe: Callable[[], Awaitable[str]]
) -> Check:
    started = time.perf_counter()
    try:
        detail = await asyncio.wait_for(probe(), timeout_s)
    except Exception as error:  # every failure is a reportable state, never a crash
        return Check(name=name, ok=False, detail=_describe(error, url))
    return Check(
        name=name,
        ok=True,
        detail=detail,
        latency_ms=round((time.perf_counter() - started) * 1e3, 2),
    )


async def check_redis(url: str, timeout_s: float) -> Check:
    async def probe() -> str:
        client = aioredis.from_url(url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s)
        try:
            await client.ping()
            info = await client.info("server")
        finally:
            await client.aclose()
        return f"redis {info.get('redis_version', '?')} at {redact_url(url)}"

    return await _timed("redis", url, timeout_s, probe)


async def check_postgres(url: str, timeout_s: float) -> Check:
    async def probe() -> str:
        conn = await asyncpg.connect(url, timeout=timeout_s)
        try:
            version = await conn.fetchval("SHOW server_version")
        finally:
            await conn.close(timeout=timeout_s)
        return f"postgres {version} at {redact_url(url)}"

    return await _timed("postgres", url, timeout_s, probe)


async def check_mlflow(url: str, timeout_s: float) -> Check:
    async def probe() -> str:
        async with httpx.AsyncClient(timeout=timeout_s) as client:
            response = await client.get(f"{url.rstrip('/')}/health")
        response.raise_for_status()
        return f"mlflow tracking server at {redact_url(url)}"

    return await _timed("mlflow", url, timeout_s, probe)


async def passes(check: Awaitable[Check]) -> bool:
    """Whether a probe succeeded, for waits that only need yes or no."""
    return (await check).ok


async def check_services(
    redis_url: str, database_url: str, mlflow_url: str, timeout_s: float
) -> list[Check]:
    """Redis, Postgres and MLflow probed concurrently, in that order."""
    return list(
        await asyncio.gather(
            check_redis(redis_url, timeout_s),
            check_postgres(database_url, timeout_s),
            check_mlflow(mlflow_url, timeout_s),
        )
    )
