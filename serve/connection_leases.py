"""How many live-feed connections each user holds across every gateway replica.

Each open connection holds a lease in Redis: a member of the user's sorted set, scored by when
it lapses on Redis's own clock. One Lua script drops the lapsed leases, refuses when the user
already holds ``limit`` and otherwise adds this one, so parallel handshakes on different replicas
cannot all pass a count none of them has made yet. The replica holding leases renews them every
``lease_s / 3``; one that dies without releasing its leases holds them until they lapse.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections import defaultdict
from dataclasses import dataclass

import redis.asyncio as aioredis
import redis.exceptions

from core.redis_keys import live_connections_key
from serve.background import ConnectionRounds

__all__ = ["Lease", "ConnectionLeases", "LEASE_S"]

log = logging.getLogger(__name__)

LEASE_S = 30.0
_RETRY_S = 1.0

# Redis 6 needs effects replication to write after TIME.
_NOW_MS = """
redis.replicate_commands()
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
local lease_ms = tonumber(ARGV[1])
"""
# Returns 1 when the lease ARGV[3] is taken, 0 when the user holds ARGV[2] already.
_TAKE = (
    _NOW_MS
    + """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[2]) then return 0 end
redis.call('ZADD', KEYS[1], now + lease_ms, ARGV[3])
redis.call('PEXPIRE', KEYS[1], lease_ms)
return 1
"""
)
# Moves the lapse of each lease ARGV[2..]; one that lapsed while Redis was out of reach is
# counted again, since its connection is still open.
_RENEW = (
    _NOW_MS
    + """
for i = 2, #ARGV do
    redis.call('ZADD', KEYS[1], now + lease_ms, ARGV[i])
end
redis.call('PEXPIRE', KEYS[1], lease_ms)
"""
)


@dataclass(frozen=True, slots=True)
class Lease:
    user_id: str
    member: str


class ConnectionLeases(ConnectionRounds[Lease]):
    """The leases of one replica's connections: taken at the handshake, renewed in one round
    per replica, given back when the connection ends."""

    def __init__(self, redis: aioredis.Redis, lease_s: float = LEASE_S) -> None:
        super().__init__("live feed connection leases", log, _RETRY_S)
        self._redis = redis
        self._lease_ms = int(lease_s * 1000)
        self._take = redis.register_script(_TAKE)
        self._renew = redis.register_script(_RENEW)

    async def take(self, user_id: str, limit: int) -> Lease | None:
        """A lease for one more connection of ``user_id``, or None when the user holds
        ``limit`` on the replicas together. Raises RedisError when Redis cannot say."""
        lease = Lease(user_id, secrets.token_hex(8))
        key = live_connections_key(user_id)
        if not await self._take(keys=[key], args=[self._lease_ms, limit, lease.member]):
            return None
        self.add(lease)
        return lease

    async def give_back(self, lease: Lease) -> None:
        """End ``lease``; when Redis is unreachable it lapses on its own."""
        self.discard(lease)
        try:
            await self._redis.zrem(live_connections_key(lease.user_id), lease.member)
        except (redis.exceptions.RedisError, OSError) as error:
            log.warning("a live-feed lease lapses on its own: %s", type(error).__name__)

    async def _step(self) -> None:
        await asyncio.sleep(self._lease_ms / 3_000)
        members: defaultdict[str, list[str]] = defaultdict(list)
        for lease in tuple(self._connections):
            members[lease.user_id].append(lease.member)
        async with self._redis.pipeline(transaction=False) as pipe:
            for user_id, held in members.items():
                key = live_connections_key(user_id)
                await self._renew(keys=[key], args=[self._lease_ms, *held], client=pipe)
            await pipe.execute()
