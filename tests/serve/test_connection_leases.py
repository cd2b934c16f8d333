"""Live-feed connection leases in a real Redis, with leases of half a second: a replica that
renews its leases keeps its users' places; one that died without giving them back frees them
when they lapse."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis

from serve.connection_leases import ConnectionLeases

_LEASE_S = 0.5


@pytest.fixture
async def redis(redis_url: str) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.from_url(redis_url)
    yield client
    await client.aclose()


@pytest.fixture
def user() -> str:
    return uuid.uuid4().hex


async def test_leases_their_replica_renews_outlast_their_length(
    redis: aioredis.Redis, user: str
) -> None:
    leases = ConnectionLeases(redis, _LEASE_S)
    try:
        held = [await leases.take(user, 2) for _ in range(2)]
        await asyncio.sleep(4 * _LEASE_S)
        assert await leases.take(user, 2) is None

        first = held[0]
        assert first is not None
        await leases.give_back(first)
        assert await leases.take(user, 2) is not None
    finally:
        await leases.close()


async def test_a_dead_replicas_leases_lapse_and_free_their_places(
    redis: aioredis.Redis, user: str
) -> None:
    dead = ConnectionLeases(redis, _LEASE_S)
    assert await dead.take(user, 1) is not None
    # The replica is gone without giving the lease back: nothing renews it any more.
    await dead.close()
    alive = ConnectionLeases(redis, _LEASE_S)
    try:
        assert await alive.take(user, 1) is None
        await asyncio.sleep(2 * _LEASE_S)
        assert await alive.take(user, 1) is not None
    finally:
        await alive.close()
