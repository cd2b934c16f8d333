"""The audit log: who did what to which account, and from where. Never holds a secret."""

from __future__ import annotations

import json
from datetime import datetime
from enum import StrEnum
from typing import Any

import asyncpg
from pydantic import BaseModel

from serve.auth.rate_limit import RateLimit, RateLimited, RateLimiter, address_subject

__all__ = ["AuditEvent", "AuditRecord", "record", "record_denial", "list_events"]

# Denials (401, 403) are what anyone can provoke at will: at most this many a minute reach the
# log from one client address (IPv6 by /64), and at most this many from all addresses together,
# enough to show an attack without letting it flood the log.
_DENIALS_PER_ADDRESS = RateLimit("audit-denials-address", 20, 60)
_DENIALS = RateLimit("audit-denials", 600, 60)


class AuditEvent(StrEnum):
    registered = "registered"
    login_succeeded = "login_succeeded"
    login_failed = "login_failed"
    login_rate_limited = "login_rate_limited"
    refresh_token_reused = "refresh_token_reused"
    logged_out = "logged_out"
    logged_out_everywhere = "logged_out_everywhere"
    password_changed = "password_changed"
    role_changed = "role_changed"
    user_disabled = "user_disabled"
    user_enabled = "user_enabled"
    client_created = "client_created"
    client_revoked = "client_revoked"
    client_authentication_failed = "client_authentication_failed"
    signing_key_rotated = "signing_key_rotated"
    signing_key_revoked = "signing_key_revoked"
    access_denied = "access_denied"


class AuditRecord(BaseModel):
    event_id: int
    at: datetime
    event: AuditEvent
    user_id: str | None
    actor_id: str | None
    client_ip: str | None
    details: dict[str, Any]


async def record(
    conn: asyncpg.Connection | asyncpg.Pool,
    event: AuditEvent,
    user_id: str | None = None,
    actor_id: str | None = None,
    client_ip: str | None = None,
    details: dict[str, Any] | None = None,
) -> None:
    await conn.execute(
        "INSERT INTO audit_events (event, user_id, actor_id, client_ip, details) "
        "VALUES ($1, $2, $3, $4, $5)",
        event.value,
        user_id,
        actor_id,
        client_ip,
        json.dumps(details or {}),
    )


async def record_denial(
    conn: asyncpg.Connection | asyncpg.Pool,
    limiter: RateLimiter,
    client_ip: str,
    user_id: str | None,
    details: dict[str, Any],
) -> None:
    """Record a refused request (``access_denied``) unless the log's denial limits are spent."""
    try:
        await limiter.hit(_DENIALS_PER_ADDRESS, address_subject(client_ip))
        await limiter.hit(_DENIALS, "all")
    except RateLimited:
        return
    await record(conn, AuditEvent.access_denied, user_id, client_ip=client_ip, details=details)


async def list_events(
    conn: asyncpg.Connection | asyncpg.Pool,
    limit: int,
    before_id: int | None = None,
    user_id: str | None = None,
    event: AuditEvent | None = None,
) -> list[AuditRecord]:
    """Newest first; ``before_id`` continues a previous page."""
    rows = await conn.fetch(
        "SELECT event_id, at, event, user_id::text, actor_id::text, client_ip, details "
        "FROM audit_events WHERE ($1::bigint IS NULL OR event_id < $1) "
        "AND ($2::uuid IS NULL OR user_id = $2) AND ($3::text IS NULL OR event = $3) "
        "ORDER BY event_id DESC LIMIT $4",
        before_id,
        user_id,
        event.value if event else None,
        limit,
    )
    return [AuditRecord(**{**dict(row), "details": json.loads(row["details"])}) for row in rows]
