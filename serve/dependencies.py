"""FastAPI dependencies of the gateway: shared resources, the caller's address and identity, and
the role/scope checks. Endpoints declare what they need with the ``Annotated`` aliases below."""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Awaitable, Callable, Collection
from typing import Annotated, Any

import asyncpg
from fastapi import Depends, Request
from fastapi.security import OAuth2PasswordBearer
from redis.exceptions import RedisError
from starlette.requests import HTTPConnection

from serve.auth import audit
from serve.auth.access_tokens import Principal, TokenError, UnknownKeyError
from serve.auth.rate_limit import Attempt, RateLimit, RateLimited
from serve.auth.roles import Scope
from serve.errors import ApiError
from serve.resources import Resources

__all__ = [
    "TOKEN_URL",
    "ResourcesDep",
    "ClientIp",
    "client_ip_of",
    "audit_refusal",
    "AnyPrincipal",
    "AccountHolder",
    "Operator",
    "Admin",
    "requires",
    "verify_bearer",
    "unauthorized",
    "rate_limited",
    "enforce_rate_limit",
]

log = logging.getLogger(__name__)

TOKEN_URL = "/v1/auth/token"
_REALM = 'Bearer realm="finone"'

bearer = OAuth2PasswordBearer(
    tokenUrl=TOKEN_URL,
    scopes={scope.value: f"{scope.value} access" for scope in Scope},
    auto_error=False,
)


async def get_resources(request: Request) -> Resources:
    # Async, though it awaits nothing: FastAPI runs a plain function in a worker thread.
    resources: Resources = request.app.state.resources
    return resources


ResourcesDep = Annotated[Resources, Depends(get_resources)]


def client_ip_of(connection: HTTPConnection, trusted_proxies: Collection[str]) -> str:
    """The caller's IP (of a request or a WebSocket); behind a trusted proxy, the last address a
    trusted proxy saw."""
    peer = connection.client.host if connection.client else "unknown"
    # Each proxy may add a header line of its own (HAProxy's `option forwardfor` does): in
    # order, they are one list.
    forwarded = ",".join(connection.headers.getlist("x-forwarded-for"))
    if not forwarded or peer not in trusted_proxies:
        return peer
    for hop in reversed([h.strip() for h in forwarded.split(",")]):
        try:
            ipaddress.ip_address(hop)
        except ValueError:
            return peer
        if hop not in trusted_proxies:
            return hop
    return peer


async def client_address(request: Request, resources: ResourcesDep) -> str:
    # Async, though it awaits nothing: FastAPI runs a plain function in a worker thread.
    return client_ip_of(request, resources.trusted_proxies())


ClientIp = Annotated[str, Depends(client_address)]


def unauthorized(message: str, code: str = "invalid_token") -> ApiError:
    challenge = f'{_REALM}, error="invalid_token", error_description="{message}"'
    return ApiError(401, code, message, headers={"WWW-Authenticate": challenge})


def rate_limited(error: RateLimited) -> ApiError:
    return ApiError(
        429, "rate_limited", str(error), headers={"Retry-After": str(error.retry_after_s)}
    )


async def enforce_rate_limit(resources: Resources, rule: RateLimit, subject: str) -> Attempt:
    try:
        return await resources.limiter.hit(rule, subject)
    except RateLimited as error:
        raise rate_limited(error) from None


async def verify_bearer(resources: Resources, token: str) -> Principal:
    """The principal behind an access token: signature, claims and revocation all checked.

    Raises TokenError for any token that must be refused. When Redis cannot be asked about
    revocations its error propagates: no token is accepted unchecked.
    """
    # Refreshes a stale key ring first: a key revoked on another replica stops verifying here.
    await resources.pool()
    try:
        principal = resources.tokens.decode(token)
    except UnknownKeyError:
        # Another replica may have rotated the key a moment ago.
        await resources.keys.refresh_if_stale(await resources.pool(), unknown_kid=True)
        principal = resources.tokens.decode(token)
    await resources.revocations.check(principal)
    return principal


async def audit_refusal(
    resources: Resources, ip: str, details: dict[str, Any], user_id: str | None = None
) -> None:
    """Record a refused request or live-feed handshake (the log limits how many it takes)."""
    try:
        await audit.record_denial(await resources.pool(), resources.limiter, ip, user_id, details)
    except (OSError, asyncpg.PostgresError, RedisError) as failure:
        # The refusal stands either way: an audit log that cannot be written must not turn a
        # 401 into a 503.
        log.warning("could not audit a refused request (%s)", type(failure).__name__)


async def _denied(
    request: Request, resources: Resources, ip: str, error: ApiError, user_id: str | None = None
) -> ApiError:
    """``error``, once recorded in the audit log."""
    details = {
        "status": error.status,
        "code": error.code,
        "reason": error.message,
        "method": request.method,
        "path": request.url.path,
    }
    await audit_refusal(resources, ip, details, user_id)
    return error


async def current_principal(
    request: Request,
    resources: ResourcesDep,
    ip: ClientIp,
    token: Annotated[str | None, Depends(bearer)],
) -> Principal:
    if not token:
        missing = ApiError(
            401,
            "not_authenticated",
            "a bearer token is required",
            headers={"WWW-Authenticate": _REALM},
        )
        raise await _denied(request, resources, ip, missing)
    try:
        return await verify_bearer(resources, token)
    except TokenError as error:
        raise await _denied(request, resources, ip, unauthorized(str(error))) from None


AnyPrincipal = Annotated[Principal, Depends(current_principal)]

_ROLE_FOR_SCOPE = {Scope.operations: "operator", Scope.admin: "admin"}


def requires(scope: Scope) -> Callable[[Principal, Request, Resources, str], Awaitable[Principal]]:
    """A dependency admitting only callers whose token holds ``scope``; others get 403."""

    async def check(
        principal: AnyPrincipal, request: Request, resources: ResourcesDep, ip: ClientIp
    ) -> Principal:
        if scope in principal.scopes:
            return principal
        if principal.client_id is None and scope in _ROLE_FOR_SCOPE:
            refusal = ApiError(403, "forbidden", f"this needs the {_ROLE_FOR_SCOPE[scope]} role")
        else:
            refusal = ApiError(403, "forbidden", f"the token lacks the {scope.value!r} scope")
        raise await _denied(request, resources, ip, refusal, principal.user_id)

    return check


AccountHolder = Annotated[Principal, Depends(requires(Scope.account))]
Operator = Annotated[Principal, Depends(requires(Scope.operations))]
Admin = Annotated[Principal, Depends(requires(Scope.admin))]
