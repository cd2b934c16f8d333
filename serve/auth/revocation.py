"""Revoked access tokens, kept in Redis only as long as the tokens themselves would live.

Three things end an access token before it expires: logging out of its session (or the session's
refresh token being reused), a bump of the user's session version (log out everywhere, password
change, disable, role change) and revoking the machine client it was issued to. Checking is one
MGET of two keys per request.

Long-lived connections (the live feed) were checked once, at their handshake: every revocation is
also said on a pub/sub channel, and each gateway replica's ``RevocationWatch`` checks the
connections it concerns again at once, and every connection every ``RECHECK_S`` in case a message
was missed (pub/sub keeps nothing for a replica that was reconnecting).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import Protocol

import msgspec
import redis.asyncio as aioredis
from redis.asyncio.client import PubSub

from core.redis_keys import (
    REVOCATIONS_CHANNEL,
    revoked_client_key,
    revoked_session_key,
    session_version_key,
)
from core.redis_replies import hash_values
from serve.auth.access_tokens import Principal, TokenError
from serve.background import ConnectionRounds

__all__ = ["Revocations", "Revoked", "Revocable", "RevocationWatch", "RECHECK_S"]

log = logging.getLogger(__name__)
# Every open connection is checked again this often, so that none outlives a revocation by more
# than this even when its message was lost.
RECHECK_S = 2.0
_RETRY_S = 1.0


class Revoked(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """A revocation as said on the channel: one of the three is set."""

    session_id: str | None = None
    user_id: str | None = None
    client_id: str | None = None

    def concerns(self, principal: Principal) -> bool:
        """Whether ``principal`` may have been revoked by it (``Revocations.ended`` says)."""
        return (
            (self.session_id is not None and self.session_id == principal.session_id)
            or (self.user_id is not None and self.user_id == principal.user_id)
            or (self.client_id is not None and self.client_id == principal.client_id)
        )


_encode = msgspec.json.Encoder().encode
_decoder = msgspec.json.Decoder(Revoked)


class Revocations:
    def __init__(self, redis: aioredis.Redis, access_token_ttl_s: int) -> None:
        self._redis = redis
        # Every token issued before a revocation has expired once this has passed.
        self._memory_s = access_token_ttl_s + 60

    async def check(self, principal: Principal) -> None:
        (reason,) = await self.ended([principal])
        if reason is not None:
            raise TokenError(reason)

    async def ended(self, principals: Sequence[Principal]) -> list[str | None]:
        """Why each principal's token was revoked, or None where it stands; one MGET for all."""
        keys = [key for principal in principals for key in _keys_of(principal)]
        values = hash_values(await self._redis.mget(keys)) if keys else []
        return [
            _reason(principal, ended, version)
            for principal, ended, version in zip(principals, values[::2], values[1::2], strict=True)
        ]

    async def end_session(self, session_id: str) -> None:
        await self._revoke(revoked_session_key(session_id), 1, Revoked(session_id=session_id))

    async def end_sessions(self, user_id: str, session_version: int) -> None:
        """Every access token of ``user_id`` older than ``session_version`` stops working."""
        await self._revoke(session_version_key(user_id), session_version, Revoked(user_id=user_id))

    async def revoke_client(self, client_id: str) -> None:
        await self._revoke(revoked_client_key(client_id), 1, Revoked(client_id=client_id))

    def listen(self) -> PubSub:
        """A subscription (not yet made) to the channel revocations are said on."""
        return self._redis.pubsub(ignore_subscribe_messages=True)

    async def _revoke(self, key: str, value: int, said: Revoked) -> None:
        # One transaction: whoever hears the message finds the key already set.
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.set(key, value, ex=self._memory_s)
            pipe.publish(REVOCATIONS_CHANNEL, _encode(said))
            await pipe.execute()


def _keys_of(principal: Principal) -> tuple[str, str]:
    if principal.client_id is not None:
        ended_key = revoked_client_key(principal.client_id)
    else:
        assert principal.session_id is not None
        ended_key = revoked_session_key(principal.session_id)
    return ended_key, session_version_key(principal.user_id)


def _reason(principal: Principal, ended: bytes | None, version: bytes | None) -> str | None:
    if ended is not None:
        return (
            "the client has been revoked"
            if principal.client_id is not None
            else "the session has ended; log in again"
        )
    if version is not None and principal.session_version < int(version):
        return "the session has ended; log in again"
    return None


class Revocable(Protocol):
    """A long-lived connection: who it speaks for, and how it ends when that is revoked."""

    @property
    def principal(self) -> Principal: ...

    def revoke(self, reason: str) -> None: ...


class RevocationWatch(ConnectionRounds[Revocable]):
    """One per replica: ends the open connections whose tokens were revoked, within
    ``RECHECK_S`` at worst, with one task and one MGET per round whatever their number."""

    def __init__(self, revocations: Revocations) -> None:
        # A failure must not leave revoked connections open for the rest of the day.
        super().__init__("revocation watch", log, _RETRY_S)
        self._revocations = revocations

    async def _step(self) -> None:
        async with self._revocations.listen() as pubsub:
            await pubsub.subscribe(REVOCATIONS_CHANNEL)
            next_round = time.monotonic()
            while True:
                wait_s = next_round - time.monotonic()
                if wait_s <= 0:
                    # Also right after (re)subscribing: revocations said meanwhile were missed.
                    await self._recheck(list(self._connections))
                    next_round = time.monotonic() + RECHECK_S
                    continue
                message = await pubsub.get_message(timeout=wait_s)
                if message is not None:
                    await self._heard(message["data"])

    async def _heard(self, data: bytes) -> None:
        try:
            said = _decoder.decode(data)
        except (msgspec.ValidationError, msgspec.DecodeError):
            log.warning("ignoring a malformed revocation message")
            return
        await self._recheck([c for c in self._connections if said.concerns(c.principal)])

    async def _recheck(self, connections: list[Revocable]) -> None:
        if not connections:
            return
        reasons = await self._revocations.ended([c.principal for c in connections])
        for connection, reason in zip(connections, reasons, strict=True):
            if reason is not None:
                connection.revoke(reason)
