"""Login sessions as families of opaque refresh tokens, rotated on every use.

A refresh token works once. Presenting one that was already used means two parties hold it (one
of them a thief), so the whole family is revoked and both must log in again. A family ends at an
absolute lifetime however often it is refreshed, and after an idle time without a refresh.

Issuing and revocation serialize on the user's row: rotation locks it before it touches a token,
a login's insert locks it and checks the session version its password check read, and every
revocation (``end_session`` here, ``accounts.end_all_access``) changes or locks it before revoking
tokens. A revocation therefore either sees the token a concurrent login or rotation inserted (and
revokes it) or runs first, in which case the login or rotation is refused. The lock order is
always the user's row, then token rows, so they never deadlock.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from enum import Enum

import asyncpg

from serve.auth.accounts import User, lock_user
from serve.auth.opaque import digest, new_secret

__all__ = ["Refusal", "Rotated", "Refused", "start_session", "rotate", "end_session"]


@dataclass(frozen=True, slots=True)
class Rotated:
    refresh_token: str
    family_id: str
    # The account as it stood when the token was issued, read under the lock on its row: the
    # access token issued with it carries the session version any later revocation outdates.
    user: User


class Refusal(Enum):
    unknown = "the refresh token is not valid"
    ended = "the session has ended; log in again"
    expired = "the session has expired; log in again"
    idle = "the session was idle too long; log in again"
    reused = "the refresh token was already used; the session is revoked, log in again"


@dataclass(frozen=True, slots=True)
class Refused:
    reason: Refusal
    user_id: str | None = None
    family_id: str | None = None


async def start_session(
    conn: asyncpg.Connection | asyncpg.Pool, user: User, lifetime_s: int
) -> Rotated | None:
    """A new family for ``user`` as read before the password check, or None when the account
    changed since (a password change, disable or logout-all that ran during the check must not
    miss this session). The insert locks the user's row, like rotation."""
    token, family_id = new_secret(), str(uuid.uuid4())
    status: str = await conn.execute(
        "INSERT INTO refresh_tokens (token_hash, family_id, user_id, family_expires_at) "
        "SELECT $1, $2::uuid, user_id, now() + make_interval(secs => $4) FROM users "
        "WHERE user_id = $3::uuid AND session_version = $5 AND NOT disabled FOR UPDATE",
        digest(token),
        family_id,
        user.user_id,
        float(lifetime_s),
        user.session_version,
    )
    if status == "INSERT 0 0":
        return None
    return Rotated(refresh_token=token, family_id=family_id, user=user)


async def rotate(conn: asyncpg.Connection, refresh_token: str, idle_s: int) -> Rotated | Refused:
    """Trade a refresh token for its successor in the same family."""
    token_hash = digest(refresh_token)
    async with conn.transaction():
        owner_id: str | None = await conn.fetchval(
            "SELECT user_id::text FROM refresh_tokens WHERE token_hash = $1", token_hash
        )
        user = await lock_user(conn, owner_id) if owner_id is not None else None
        if user is None:
            return Refused(Refusal.unknown)
        row = await conn.fetchrow(
            "SELECT family_id::text, family_expires_at, used_at, revoked_at, "
            "family_expires_at <= now() AS expired, "
            "issued_at <= now() - make_interval(secs => $2) AS idle "
            "FROM refresh_tokens WHERE token_hash = $1 FOR UPDATE",
            token_hash,
            float(idle_s),
        )
        family_id = row["family_id"]
        refusal = _refusal(row, user)
        if refusal is not None:
            await end_session(conn, family_id)
            return Refused(refusal, user.user_id, family_id)
        successor = new_secret()
        await conn.execute(
            "UPDATE refresh_tokens SET used_at = now() WHERE token_hash = $1", token_hash
        )
        await conn.execute(
            "INSERT INTO refresh_tokens (token_hash, family_id, user_id, family_expires_at) "
            "VALUES ($1, $2::uuid, $3::uuid, $4)",
            digest(successor),
            family_id,
            user.user_id,
            row["family_expires_at"],
        )
    return Rotated(refresh_token=successor, family_id=family_id, user=user)


def _refusal(row: asyncpg.Record, user: User) -> Refusal | None:
    """Why the locked token cannot be traded, if it cannot. Reuse comes first: it is reported
    (and the family's access tokens revoked) even when the family has also ended or expired."""
    if row["used_at"] is not None:
        return Refusal.reused
    if row["revoked_at"] is not None:
        return Refusal.ended
    if user.disabled:
        return Refusal.ended
    if row["expired"]:
        return Refusal.expired
    if row["idle"]:
        return Refusal.idle
    return None


async def end_session(conn: asyncpg.Connection, family_id: str) -> None:
    """Revoke one family, after locking its user's row (see the module's docstring)."""
    async with conn.transaction():
        owner_id: str | None = await conn.fetchval(
            "SELECT user_id::text FROM refresh_tokens WHERE family_id = $1::uuid LIMIT 1",
            family_id,
        )
        if owner_id is None:
            return
        await lock_user(conn, owner_id)
        await conn.execute(
            "UPDATE refresh_tokens SET revoked_at = now() "
            "WHERE family_id = $1::uuid AND revoked_at IS NULL",
            family_id,
        )
