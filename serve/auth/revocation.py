"""Revoked access tokens, kept in Redis only as long as the tokens themselves would live.

Three things end an access token before it expires: logging out of its session (or the session's
refresh token being reused), a bump of the user's session version (log out everywhere, password
change, disable, role change) and revoking the machine client it was issued to. Checking is one
MGET of two keys per request.
"""

from __future__ import annotations

import redis.asyncio as aioredis

from cluster.redis_keys import (
    revoked_client_key,
    revoked_session_key,
    session_version_key,
)
from serve.auth.access_tokens import Principal, TokenError

__all__ = ["Revocations"]


class Revocations:
    def __init__(self, redis: aioredis.Redis, access_token_ttl_s: int) -> None:
        self._redis = redis
        # Every token issued before a revocation has expired once this has passed.
        self._memory_s = access_token_ttl_s + 60

    async def check(self, principal: Principal) -> None:
        if principal.client_id is not None:
            ended_key = revoked_client_key(principal.client_id)
        else:
            assert principal.session_id is not None
            ended_key = revoked_session_key(principal.session_id)
        ended, current_version = await self._redis.mget(
            [ended_key, session_version_key(principal.user_id)]
        )
        if ended is not None:
            raise TokenError(
                "the client has been revoked"
                if principal.client_id is not None
                else "the session has ended; log in again"
            )
        if current_version is not None and principal.session_version < int(current_version):
            raise TokenError("the session has ended; log in again")

    async def end_session(self, session_id: str) -> None:
        await self._redis.set(revoked_session_key(session_id), 1, ex=self._memory_s)

    async def end_sessions(self, user_id: str, session_version: int) -> None:
        """Every access token of ``user_id`` older than ``session_version`` stops working."""
        await self._redis.set(session_version_key(user_id), session_version, ex=self._memory_s)

    async def revoke_client(self, client_id: str) -> None:
        await self._redis.set(revoked_client_key(client_id), 1, ex=self._memory_s)
