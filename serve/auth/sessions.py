"""Login sessions as families of opaque refresh tokens, rotated on every use.

A refresh token works once. Presenting one that was already used means two parties hold it (one
of them a thief), so the whole family is revoked and both must log in again. A family ends at an
absolute lifetime however often it is refreshed.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from enum import Enum

import asyncpg

from serve.auth.opaque import digest, new_secret

__all__ = ["Refusal", "Rotated", "Refused", "start_session", "rotate", "end_session"]


@dataclass(frozen=True, slots=True)
class Rotated:
    refresh_token: str
    family_id: str
    user_id: str


class Refusal(Enum):
    unknown = "the refresh token is not valid"
    ended = "the session has ended; log in again"
    expired = "the session has expired; log in again"
    reused = "the refresh token was already used; the session is revoked, log in again"


@dataclass(frozen=True, slots=True)
class Refused:
    reason: Refusal
    user_id: str | None = None
    family_id: str | None = None


async def start_session(
    conn: asyncpg.Connection | asyncpg.Pool, user_id: str, lifetime_s: int
) -> Rotated:
    token, family_id = new_secret(), str(uuid.uuid4())
    await conn.execute(
        "INSERT INTO refresh_tokens (token_hash, family_id, user_id, family_expires_at) "
        "VALUES ($1, $2::uuid, $3::uuid, now() + make_interval(secs => $4))",
        digest(token),
        family_id,
        user_id,
        float(lifetime_s),
    )
    return Rotated(refresh_token=token, family_id=family_id, user_id=user_id)


async def rotate(conn: asyncpg.Connection, refresh_token: str) -> Rotated | Refused:
    """Trade a refresh token for its successor in the same family."""
    async with conn.transaction():
        row = await conn.fetchrow(
            "SELECT family_id::text, user_id::text, family_expires_at, used_at, revoked_at, "
            "family_expires_at <= now() AS expired "
            "FROM refresh_tokens WHERE token_hash = $1 FOR UPDATE",
            digest(refresh_token),
        )
        if row is None:
            return Refused(Refusal.unknown)
        family_id, user_id = row["family_id"], row["user_id"]
        if row["used_at"] is not None:
            await end_session(conn, family_id)
            return Refused(Refusal.reused, user_id, family_id)
        if row["revoked_at"] is not None:
            return Refused(Refusal.ended, user_id, family_id)
        if row["expired"]:
            return Refused(Refusal.expired, user_id, family_id)
        successor = new_secret()
        await conn.execute(
            "UPDATE refresh_tokens SET used_at = now() WHERE token_hash = $1", digest(refresh_token)
        )
        await conn.execute(
            "INSERT INTO refresh_tokens (token_hash, family_id, user_id, family_expires_at) "
            "VALUES ($1, $2::uuid, $3::uuid, $4)",
            digest(successor),
            family_id,
            user_id,
            row["family_expires_at"],
        )
    return Rotated(refresh_token=successor, family_id=family_id, user_id=user_id)


async def end_session(conn: asyncpg.Connection | asyncpg.Pool, family_id: str) -> None:
    await conn.execute(
        "UPDATE refresh_tokens SET revoked_at = now() "
        "WHERE family_id = $1::uuid AND revoked_at IS NULL",
        family_id,
    )
