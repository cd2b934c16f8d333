"""Machine clients: OAuth2 client-credentials for bots and services, on Authlib's server parts.

A user creates clients for themselves; each has an id, a secret shown once (stored as a digest)
and scopes. Authlib runs the grant (client authentication by HTTP Basic or form post, grant-type
and scope checks, the RFC 6749 response); this module feeds it the client, which is read from
Postgres before the grant runs because Authlib's server is synchronous.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import asyncpg
from authlib.oauth2.rfc6749 import AuthorizationServer, ClientMixin, OAuth2Request
from authlib.oauth2.rfc6749.errors import InsecureTransportError, InvalidScopeError
from authlib.oauth2.rfc6749.grants import ClientCredentialsGrant
from authlib.oauth2.rfc6749.requests import BasicOAuth2Payload
from authlib.oauth2.rfc6749.util import extract_basic_authorization, scope_to_list

from serve.auth.opaque import digest, matches, new_secret
from serve.auth.roles import CLIENT_GRANTABLE_SCOPES, Role, Scope, grantable_scopes

__all__ = [
    "MachineClient",
    "NewClient",
    "create_client",
    "client_by_id",
    "list_clients",
    "count_live",
    "revoke_client",
    "client_for_request",
    "ClientCredentialsServer",
    "TokenIssuer",
]

_COLUMNS = (
    "c.client_id, c.owner_id::text, c.name, c.secret_hash, c.scopes, c.created_at, c.revoked_at, "
    "u.role AS owner_role, u.disabled AS owner_disabled, u.session_version AS owner_session_version"
)


# Authlib ships no types: to mypy its classes are Any.
@dataclass(frozen=True, slots=True)
class MachineClient(ClientMixin):  # type: ignore[misc]
    client_id: str
    owner_id: str
    name: str
    secret_hash: bytes = field(repr=False)
    scopes: tuple[str, ...]
    created_at: datetime
    revoked_at: datetime | None
    owner_role: Role
    owner_disabled: bool
    owner_session_version: int

    @property
    def usable(self) -> bool:
        return self.revoked_at is None and not self.owner_disabled

    def effective_scopes(self) -> frozenset[Scope]:
        """The client's scopes that its owner's role still holds today."""
        return frozenset(Scope(s) for s in self.scopes) & grantable_scopes(self.owner_role)

    def get_client_id(self) -> str:
        return self.client_id

    def get_default_redirect_uri(self) -> None:
        return None

    def get_allowed_scope(self, scope: str) -> str:
        allowed = {s.value for s in self.effective_scopes()}
        return " ".join(s for s in scope_to_list(scope) or [] if s in allowed)

    def check_redirect_uri(self, redirect_uri: str) -> bool:
        return False

    def check_client_secret(self, client_secret: str) -> bool:
        return matches(client_secret, self.secret_hash)

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        return endpoint == "token" and method in {"client_secret_basic", "client_secret_post"}

    def check_response_type(self, response_type: str) -> bool:
        return False

    def check_grant_type(self, grant_type: str) -> bool:
        return grant_type == "client_credentials"


@dataclass(frozen=True, slots=True)
class NewClient:
    client: MachineClient
    client_secret: str


def _client(row: asyncpg.Record) -> MachineClient:
    return MachineClient(
        **{**dict(row), "scopes": tuple(row["scopes"]), "owner_role": Role(row["owner_role"])}
    )


async def create_client(
    conn: asyncpg.Connection | asyncpg.Pool, owner_id: str, name: str, scopes: frozenset[Scope]
) -> NewClient:
    client_id, client_secret = f"fos_{secrets.token_urlsafe(12)}", new_secret()
    await conn.execute(
        "INSERT INTO oauth_clients (client_id, owner_id, name, secret_hash, scopes) "
        "VALUES ($1, $2::uuid, $3, $4, $5)",
        client_id,
        owner_id,
        name,
        digest(client_secret),
        sorted(scopes),
    )
    row = await conn.fetchrow(
        f"SELECT {_COLUMNS} FROM oauth_clients c JOIN users u ON u.user_id = c.owner_id "
        "WHERE c.client_id = $1",
        client_id,
    )
    return NewClient(client=_client(row), client_secret=client_secret)


async def client_by_id(
    conn: asyncpg.Connection | asyncpg.Pool, client_id: str
) -> MachineClient | None:
    row = await conn.fetchrow(
        f"SELECT {_COLUMNS} FROM oauth_clients c JOIN users u ON u.user_id = c.owner_id "
        "WHERE c.client_id = $1",
        client_id,
    )
    return None if row is None else _client(row)


async def list_clients(
    conn: asyncpg.Connection | asyncpg.Pool, owner_id: str
) -> list[MachineClient]:
    rows = await conn.fetch(
        f"SELECT {_COLUMNS} FROM oauth_clients c JOIN users u ON u.user_id = c.owner_id "
        "WHERE c.owner_id = $1::uuid AND c.revoked_at IS NULL ORDER BY c.created_at",
        owner_id,
    )
    return [_client(row) for row in rows]


async def count_live(conn: asyncpg.Connection | asyncpg.Pool, owner_id: str) -> int:
    count: int = await conn.fetchval(
        "SELECT count(*) FROM oauth_clients WHERE owner_id = $1::uuid AND revoked_at IS NULL",
        owner_id,
    )
    return count


async def revoke_client(
    conn: asyncpg.Connection | asyncpg.Pool, owner_id: str, client_id: str
) -> bool:
    """Revoke one of the owner's clients; False when the owner has no such live client."""
    status: str = await conn.execute(
        "UPDATE oauth_clients SET revoked_at = now() "
        "WHERE client_id = $1 AND owner_id = $2::uuid AND revoked_at IS NULL",
        client_id,
        owner_id,
    )
    return status != "UPDATE 0"


async def client_for_request(
    conn: asyncpg.Connection | asyncpg.Pool, headers: Mapping[str, str], form: dict[str, str]
) -> MachineClient | None:
    """The usable client a token request names (HTTP Basic or form ``client_id``), if any."""
    client_id, _ = extract_basic_authorization(headers)
    client_id = client_id or form.get("client_id")
    if not client_id or len(client_id) > 64:
        return None
    client = await client_by_id(conn, client_id)
    return client if client is not None and client.usable else None


# Authlib ships no types: to mypy its classes are Any.
class _TokenRequest(OAuth2Request):  # type: ignore[misc]
    """A form-encoded token request, already read from the HTTP request."""

    def __init__(self, url: str, headers: Mapping[str, str], form: dict[str, str]) -> None:
        super().__init__("POST", url, headers=headers)
        self._form = form
        self.payload = BasicOAuth2Payload(form)

    @property
    def form(self) -> dict[str, str]:
        return self._form

    @property
    def args(self) -> dict[str, str]:
        return {}


# Authlib ships no types: to mypy its classes are Any.
class _ClientCredentials(ClientCredentialsGrant):  # type: ignore[misc]
    TOKEN_ENDPOINT_AUTH_METHODS = ["client_secret_basic", "client_secret_post"]


# (client, granted scopes) -> access token
TokenIssuer = Callable[[MachineClient, frozenset[Scope]], str]


# Authlib ships no types: to mypy its classes are Any.
class ClientCredentialsServer(AuthorizationServer):  # type: ignore[misc]
    """One token request's authorization server: it knows the one client the request names."""

    def __init__(self, client: MachineClient | None, issue: TokenIssuer, expires_in: int) -> None:
        super().__init__(scopes_supported=sorted(CLIENT_GRANTABLE_SCOPES))
        self._client = client
        self._issue = issue
        self._expires_in = expires_in
        self.register_grant(_ClientCredentials)
        self.register_token_generator("client_credentials", self._generate_token)

    def respond(
        self, url: str, headers: Mapping[str, str], form: dict[str, str]
    ) -> tuple[int, dict[str, Any], list[tuple[str, str]]]:
        """Run the grant: (status, RFC 6749 body, headers)."""
        try:
            request = _TokenRequest(url, headers, form)
        except InsecureTransportError as error:
            # Authlib refuses plain HTTP beyond loopback while reading the request, before the
            # grant's own error handling: answered here as the client's error it is.
            return self.handle_response(*error())
        result: tuple[int, dict[str, Any], list[tuple[str, str]]] = self.create_token_response(
            request
        )
        return result

    def query_client(self, client_id: str) -> MachineClient | None:
        if self._client is not None and self._client.client_id == client_id:
            return self._client
        return None

    def validate_requested_scope(self, scope: str | None) -> None:
        super().validate_requested_scope(scope)
        if scope and self._client is not None:
            allowed = {s.value for s in self._client.effective_scopes()}
            if not set(scope_to_list(scope) or []) <= allowed:
                raise InvalidScopeError("the client may not request that scope")

    def _generate_token(
        self, grant_type: str, client: MachineClient, scope: str | None = None, **_: Any
    ) -> dict[str, Any]:
        granted = (
            frozenset(Scope(s) for s in scope_to_list(scope) or [])
            if scope
            else client.effective_scopes()
        )
        return {
            "access_token": self._issue(client, granted),
            "token_type": "bearer",
            "expires_in": self._expires_in,
            "scope": " ".join(sorted(granted)),
        }

    def save_token(self, token: dict[str, Any], request: OAuth2Request) -> None:
        """Access tokens are self-contained JWTs; nothing to store."""

    def send_signal(self, name: str, *args: Any, **kwargs: Any) -> None:
        """The caller audits the outcome itself, with the request's address."""

    def create_oauth2_request(self, request: OAuth2Request) -> OAuth2Request:
        return request

    def handle_response(
        self, status: int, body: dict[str, Any], headers: list[tuple[str, str]]
    ) -> tuple[int, dict[str, Any], list[tuple[str, str]]]:
        return status, body, headers
