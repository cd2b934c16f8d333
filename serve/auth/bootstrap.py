"""The first admin: created (or promoted) from the command line, never over the API."""

from __future__ import annotations

from enum import Enum

import asyncpg

from core.migrate import upgrade_database_async
from core.settings import Settings
from serve.auth import accounts, audit
from serve.auth.audit import AuditEvent
from serve.auth.passwords import Passwords, check_password_policy
from serve.auth.roles import Role

__all__ = ["AdminOutcome", "admin_exists", "create_admin"]


class AdminOutcome(Enum):
    created = "created"
    promoted = "promoted"
    already_admin = "already an admin"


async def admin_exists(database_url: str, email: str) -> bool | None:
    """None when no account has ``email``; else whether it is already an admin."""
    await upgrade_database_async(database_url)
    conn = await asyncpg.connect(database_url)
    try:
        user = await accounts.user_by_email(conn, email)
    finally:
        await conn.close()
    return None if user is None else user.role is Role.admin


async def create_admin(
    database_url: str, settings: Settings, email: str, password: str | None
) -> AdminOutcome:
    """Create an admin account, or make the existing account with ``email`` an admin.

    ``password`` is needed (and checked against the password policy) only to create one; raises
    ``PasswordPolicyError`` or ``ValueError`` with a message for the person at the terminal.
    """
    await upgrade_database_async(database_url)
    conn = await asyncpg.connect(database_url)
    try:
        async with conn.transaction():
            user = await accounts.user_by_email(conn, email)
            if user is not None and user.role is Role.admin:
                return AdminOutcome.already_admin
            if user is not None:
                await accounts.set_role(conn, user.user_id, Role.admin)
                await accounts.bump_session_version(conn, user.user_id)
                await audit.record(
                    conn,
                    AuditEvent.role_changed,
                    user_id=user.user_id,
                    details={"from": user.role.value, "to": "admin", "by": "finone create-admin"},
                )
                return AdminOutcome.promoted
            if password is None:
                raise ValueError("a password is needed to create the account")
            check_password_policy(password, email)
            created = await accounts.create_user(
                conn, email, await Passwords(settings).hash(password), Role.admin
            )
            assert created is not None
            await audit.record(
                conn,
                AuditEvent.registered,
                user_id=created.user_id,
                details={"role": "admin", "by": "finone create-admin"},
            )
            return AdminOutcome.created
    finally:
        await conn.close()
