"""Admins made straight in the database, one per fuzzed case or session: fuzzed password changes
count as failed logins, a fuzzed logout ends a session, and neither may starve what follows."""

from __future__ import annotations

import asyncio
import uuid

import asyncpg
import httpx

from core.settings import Settings
from serve.auth.accounts import create_user
from serve.auth.passwords import Passwords
from serve.auth.roles import Role
from tests.serve.auth_api import PASSWORD, new_ip

__all__ = ["Admins"]


class Admins:
    """Signs in a new admin on each ``new_token``."""

    def __init__(self, settings: Settings, gateway_url: str) -> None:
        assert settings.database_url
        self._database_url = settings.database_url
        self._gateway_url = gateway_url
        self._password_hash = asyncio.run(Passwords(settings).hash(PASSWORD))

    def new_token(self) -> str:
        email = f"fuzz-{uuid.uuid4().hex[:12]}@example.com"
        asyncio.run(self._create(email))
        response = httpx.post(
            f"{self._gateway_url}/v1/auth/token",
            data={"grant_type": "password", "username": email, "password": PASSWORD},
            headers={"X-Forwarded-For": new_ip()},
        )
        response.raise_for_status()
        token: str = response.json()["access_token"]
        return token

    async def _create(self, email: str) -> None:
        conn = await asyncpg.connect(self._database_url)
        try:
            await create_user(conn, email, self._password_hash, Role.admin)
        finally:
            await conn.close()
