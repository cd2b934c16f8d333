"""Anti-automation limits in Redis: sliding-window logs shared by every gateway replica.

Each limited subject has a sorted set of its recent attempts, scored by Redis's own clock (so
replicas with skewed clocks agree). One Lua script drops the attempts older than the window,
refuses when ``limit`` remain and otherwise records this one: the check and the count are one
atomic step, so parallel requests cannot all pass a check that none of them has counted yet.

Limits are temporary by design: a stranger hammering someone's account can slow its logins for
one window at most, never lock it out for good.
"""

from __future__ import annotations

import hashlib
import ipaddress
import math
import secrets
from dataclasses import dataclass

import redis.asyncio as aioredis

from core.redis_keys import rate_limit_key

__all__ = ["Attempt", "RateLimit", "RateLimiter", "RateLimited", "address_subject"]

# Returns 0 when the attempt is admitted (and recorded), else the microseconds until the oldest
# recorded attempt leaves the window. Redis 6 needs effects replication to write after TIME.
_SLIDING_WINDOW = """
redis.replicate_commands()
local key, window_us, limit, member = KEYS[1], tonumber(ARGV[1]), tonumber(ARGV[2]), ARGV[3]
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000000 + tonumber(clock[2])
redis.call('ZREMRANGEBYSCORE', key, '-inf', now - window_us)
if redis.call('ZCARD', key) >= limit then
    local oldest = redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')
    return tonumber(oldest[2]) + window_us - now
end
redis.call('ZADD', key, now, member)
redis.call('PEXPIRE', key, math.ceil(window_us / 1000))
return 0
"""


class RateLimited(Exception):
    def __init__(self, retry_after_s: int) -> None:
        super().__init__(f"too many attempts; retry in {retry_after_s} s")
        self.retry_after_s = retry_after_s


@dataclass(frozen=True, slots=True)
class RateLimit:
    bucket: str
    limit: int
    window_s: int


@dataclass(frozen=True, slots=True)
class Attempt:
    """One counted attempt, which ``RateLimiter.forgive`` can take back."""

    key: str
    member: str


class RateLimiter:
    def __init__(self, redis: aioredis.Redis) -> None:
        self._redis = redis
        self._sliding_window = redis.register_script(_SLIDING_WINDOW)

    async def hit(self, rule: RateLimit, subject: str) -> Attempt:
        """Count one attempt; raises RateLimited, counting nothing, when the window already
        holds the allowance."""
        attempt = Attempt(_key(rule, subject), secrets.token_hex(8))
        wait_us = int(
            await self._sliding_window(
                keys=[attempt.key], args=[rule.window_s * 1_000_000, rule.limit, attempt.member]
            )
        )
        if wait_us > 0:
            raise RateLimited(max(1, math.ceil(wait_us / 1_000_000)))
        return attempt

    async def forgive(self, attempt: Attempt) -> None:
        """Take back an attempt that turned out not to count (a login that succeeded)."""
        await self._redis.zrem(attempt.key, attempt.member)


def address_subject(ip: str) -> str:
    """What a client address is limited as: an IPv6 address by its /64, which one subscriber
    usually holds whole (counting single addresses would give them 2^64 allowances)."""
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        return ip
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.IPv6Network((address, 64), strict=False))
    return str(address)


def _key(rule: RateLimit, subject: str) -> str:
    # Subjects are emails and addresses: hashed so Redis never holds them in clear.
    digest = hashlib.sha256(subject.encode()).hexdigest()[:32]
    return rate_limit_key(rule.bucket, digest)
