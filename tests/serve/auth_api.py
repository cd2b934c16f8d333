"""Talking to the gateway's auth API the way a client would, each caller with its own address."""

from __future__ import annotations

import secrets
import uuid
from dataclasses import dataclass

import httpx

PASSWORD = "correct horse battery staple"


def new_email() -> str:
    return f"user-{uuid.uuid4().hex[:12]}@example.com"


def new_ip() -> str:
    """A client address of its own (the gateway trusts X-Forwarded-For from 127.0.0.1 in tests).

    Drawn from the OS, not ``random``, which Hypothesis seeds identically for every example.
    """
    a, b, c = secrets.randbelow(256), secrets.randbelow(256), 1 + secrets.randbelow(254)
    return f"10.{a}.{b}.{c}"


@dataclass
class Session:
    email: str
    user_id: str
    access_token: str
    refresh_token: str
    ip: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.access_token}", "X-Forwarded-For": self.ip}


class AuthApi:
    def __init__(self, http: httpx.AsyncClient, url: str) -> None:
        self.http = http
        self.url = url

    async def register(self, email: str, password: str, ip: str | None = None) -> httpx.Response:
        return await self.http.post(
            f"{self.url}/v1/auth/register",
            json={"email": email, "password": password},
            headers={"X-Forwarded-For": ip or new_ip()},
        )

    async def token(
        self, form: dict[str, str], ip: str | None = None, auth: tuple[str, str] | None = None
    ) -> httpx.Response:
        return await self.http.post(
            f"{self.url}/v1/auth/token",
            data=form,
            headers={"X-Forwarded-For": ip or new_ip()},
            auth=auth or httpx.USE_CLIENT_DEFAULT,
        )

    async def client_token(self, owner: Session, scopes: list[str]) -> str:
        """An access token of a new machine client of ``owner``'s holding ``scopes``."""
        created = await self.http.post(
            f"{self.url}/v1/auth/clients",
            json={"name": "test client", "scopes": scopes},
            headers=owner.headers,
        )
        assert created.status_code == 201, created.text
        client = created.json()
        token = await self.token(
            {"grant_type": "client_credentials"},
            auth=(client["client_id"], client["client_secret"]),
        )
        assert token.status_code == 200, token.text
        access_token: str = token.json()["access_token"]
        return access_token

    async def login(self, email: str, password: str, ip: str | None = None) -> httpx.Response:
        return await self.token(
            {"grant_type": "password", "username": email, "password": password}, ip
        )

    async def refresh(self, refresh_token: str) -> httpx.Response:
        return await self.token({"grant_type": "refresh_token", "refresh_token": refresh_token})

    async def me(self, access_token: str) -> httpx.Response:
        return await self.http.get(
            f"{self.url}/v1/auth/me", headers={"Authorization": f"Bearer {access_token}"}
        )

    async def logged_in(self, email: str, password: str = PASSWORD) -> Session:
        ip = new_ip()
        response = await self.login(email, password, ip)
        assert response.status_code == 200, response.text
        tokens = response.json()
        me = await self.me(tokens["access_token"])
        assert me.status_code == 200, me.text
        return Session(
            email=email,
            user_id=me.json()["user_id"],
            access_token=tokens["access_token"],
            refresh_token=tokens["refresh_token"],
            ip=ip,
        )

    async def signed_up(self) -> Session:
        email = new_email()
        response = await self.register(email, PASSWORD)
        assert response.status_code == 201, response.text
        return await self.logged_in(email)
