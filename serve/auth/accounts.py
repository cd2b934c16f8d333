"""User accounts in Postgres: the one place their SQL lives."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import asyncpg

from serve.auth.roles import Role

__all__ = [
    "User",
    "normalize_email",
    "create_user",
    "user_by_email",
    "user_by_id",
    "lock_user",
    "list_users",
    "set_password_hash",
    "bump_session_version",
    "end_all_access",
    "set_role",
    "set_disabled",
]

_COLUMNS = "user_id::text, email, password_hash, role, disabled, session_version, created_at"


@dataclass(frozen=True, slots=True)
class User:
    user_id: str
    email: str
    password_hash: str
    role: Role
    disabled: bool
    session_version: int
    created_at: datetime


def normalize_email(email: str) -> str:
    """Addresses compare case-insensitively: ``Ann@Example.com`` and ``ann@example.com`` are one."""
    return email.strip().lower()


def _user(row: asyncpg.Record | None) -> User | None:
    if row is None:
        return None
    return User(**{**dict(row), "role": Role(row["role"])})


async def create_user(
    conn: asyncpg.Connection | asyncpg.Pool, email: str, password_hash: str, role: Role = Role.user
) -> User | None:
    """The new user, or None when the email is taken."""
    row = await conn.fetchrow(
        f"INSERT INTO users (email, password_hash, role) VALUES ($1, $2, $3) "
        f"ON CONFLICT (email) DO NOTHING RETURNING {_COLUMNS}",
        normalize_email(email),
        password_hash,
        role.value,
    )
    return _user(row)


async def user_by_email(conn: asyncpg.Connection | asyncpg.Pool, email: str) -> User | None:
    row = await conn.fetchrow(
        f"SELECT {_COLUMNS} FROM users WHERE email = $1", normalize_email(email)
    )
    return _user(row)


async def user_by_id(conn: asyncpg.Connection | asyncpg.Pool, user_id: str) -> User | None:
    row = await conn.fetchrow(f"SELECT {_COLUMNS} FROM users WHERE user_id = $1::uuid", user_id)
    return _user(row)


async def lock_user(conn: asyncpg.Connection, user_id: str) -> User | None:
    """The user, with their row locked until the transaction ends: rotation and revocation of
    their sessions serialize on it (see ``serve.auth.sessions``)."""
    row = await conn.fetchrow(
        f"SELECT {_COLUMNS} FROM users WHERE user_id = $1::uuid FOR UPDATE", user_id
    )
    return _user(row)


async def list_users(
    conn: asyncpg.Connection | asyncpg.Pool, limit: int, after_email: str | None = None
) -> list[User]:
    rows = await conn.fetch(
        f"SELECT {_COLUMNS} FROM users WHERE ($1::text IS NULL OR email > $1) "
        "ORDER BY email LIMIT $2",
        after_email,
        limit,
    )
    return [user for row in rows if (user := _user(row)) is not None]


async def set_password_hash(
    conn: asyncpg.Connection | asyncpg.Pool, user_id: str, password_hash: str, changed: bool
) -> None:
    """Store a new hash; ``changed`` False for a rehash of the same password with new parameters."""
    await conn.execute(
        "UPDATE users SET password_hash = $2, "
        "password_changed_at = CASE WHEN $3 THEN now() ELSE password_changed_at END "
        "WHERE user_id = $1::uuid",
        user_id,
        password_hash,
        changed,
    )


async def bump_session_version(conn: asyncpg.Connection | asyncpg.Pool, user_id: str) -> int:
    """Make every access token issued so far outdated; returns the new version."""
    version: int = await conn.fetchval(
        "UPDATE users SET session_version = session_version + 1 WHERE user_id = $1::uuid "
        "RETURNING session_version",
        user_id,
    )
    return version


async def end_all_access(conn: asyncpg.Connection, user_id: str) -> int:
    """Bump the session version and revoke every refresh token; returns the new version.

    The bump locks the user's row before any token is revoked, so a concurrent rotation has
    either committed its successor (which the revocation then sees) or waits and then finds its
    token revoked (see ``serve.auth.sessions``).
    """
    version = await bump_session_version(conn, user_id)
    await conn.execute(
        "UPDATE refresh_tokens SET revoked_at = now() "
        "WHERE user_id = $1::uuid AND revoked_at IS NULL",
        user_id,
    )
    return version


async def set_role(conn: asyncpg.Connection, user_id: str, role: Role) -> User | None:
    row = await conn.fetchrow(
        f"UPDATE users SET role = $2 WHERE user_id = $1::uuid RETURNING {_COLUMNS}",
        user_id,
        role.value,
    )
    return _user(row)


async def set_disabled(conn: asyncpg.Connection, user_id: str, disabled: bool) -> User | None:
    row = await conn.fetchrow(
        f"UPDATE users SET disabled = $2 WHERE user_id = $1::uuid RETURNING {_COLUMNS}",
        user_id,
        disabled,
    )
    return _user(row)
