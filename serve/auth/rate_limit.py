"""Anti-automation limits in Redis: fixed-window counters shared by every gateway replica.

Limits are temporary by design: a stranger hammering someone's account can slow its logins for
one window at most, never lock it out for good.
"""

from __future__ import annotations

import hashlib
import math
import time
from dataclasses import dataclass

import redis.asyncio as aioredis

from cluster.redis_keys import rate_limit_key

__all__ = ["RateLimit", "RateLimiter", "RateLimited"]


class RateLimited(Exception):
    def __init__(self, retry_after_s: int) -> None:
        super().__init__(f"too many attempts; retry in {retry_after_s} s")
        self.retry_after_s = retry_after_s


@dataclass(frozen=True, slots=True)
class RateLimit:
    bucket: str
    limit: int
    window_s: int


class RateLimiter:
    def __init__(self, redis: aioredis.Redis) -> None:
        self._redis = redis

    async def hit(self, rule: RateLimit, subject: str) -> None:
        """Count one attempt; raises RateLimited when the window's allowance is used up."""
        key, retry_after_s = self._window(rule, subject)
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.incr(key)
            pipe.expire(key, rule.window_s + 1)
            count, _ = await pipe.execute()
        if count > rule.limit:
            raise RateLimited(retry_after_s)

    async def check(self, rule: RateLimit, subject: str) -> None:
        """Raise RateLimited if the allowance is used up, without counting an attempt."""
        key, retry_after_s = self._window(rule, subject)
        count = await self._redis.get(key)
        if count is not None and int(count) >= rule.limit:
            raise RateLimited(retry_after_s)

    @staticmethod
    def _window(rule: RateLimit, subject: str) -> tuple[str, int]:
        now = time.time()
        window = int(now // rule.window_s)
        retry_after_s = max(1, math.ceil((window + 1) * rule.window_s - now))
        # Subjects are emails and addresses: hashed so Redis never holds them in clear.
        digest = hashlib.sha256(subject.encode()).hexdigest()[:32]
        return rate_limit_key(rule.bucket, digest, window), retry_after_s
