"""Accounts and sessions: register, the OAuth2 token endpoint, me, password change, log out.

The token endpoint speaks OAuth2 (form-encoded): ``password`` logs a person in (so the OpenAPI
"Authorize" button works), ``refresh_token`` rotates a session, ``client_credentials`` serves
machine clients. Its errors keep the API's one error format with the OAuth2 error names as codes.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Form, Request, Response
from pydantic import BaseModel, ConfigDict, Field
from pydantic.config import JsonDict

from serve.auth import accounts, audit, refresh_cookie, sessions
from serve.auth.accounts import User
from serve.auth.audit import AuditEvent
from serve.auth.clients import (
    ClientCredentialsServer,
    MachineClient,
    TokenIssuer,
    client_for_request,
)
from serve.auth.passwords import (
    MAX_PASSWORD_LENGTH,
    MIN_PASSWORD_LENGTH,
    PasswordPolicyError,
    check_password_policy,
)
from serve.auth.rate_limit import RateLimited, address_subject
from serve.auth.roles import ROLE_SCOPES, Role, Scope
from serve.dependencies import (
    AccountHolder,
    AnyPrincipal,
    ClientIp,
    ResourcesDep,
    enforce_rate_limit,
    rate_limited,
)
from serve.errors import ApiError, ErrorBody, OpenApiResponses
from serve.fields import Email
from serve.resources import Resources

__all__ = ["router", "UserView", "TokenResponse"]

router = APIRouter(prefix="/v1/auth", tags=["auth"])

_NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}
_LOGIN_FAILED = "incorrect email or password"
_DISABLED = "this account is disabled"
_CHANGED = "the account changed meanwhile; log in again"
_ERRORS: OpenApiResponses = {
    400: {"model": ErrorBody, "description": "invalid request or grant"},
    401: {"model": ErrorBody, "description": "missing, invalid, expired or revoked token"},
    429: {"model": ErrorBody, "description": "too many attempts; see Retry-After"},
}

_USER: JsonDict = {
    "user_id": "08bcfd37-3775-48a7-b4d4-8ffa3d5a0fe1",
    "email": "ann@example.com",
    "role": "user",
    "disabled": False,
    "created_at": "2025-11-26T09:40:12.345678Z",
}
_ACCESS_TOKEN = (
    "eyJ0eXAiOiJhdCtqd3QiLCJhbGciOiJFUzI1NiIsImtpZCI6IjZMenNLRGdCam5PT3RmS0gifQ."
    "eyJpc3MiOiJmaW5vbmUiLCJhdWQiOiJmaW5vbmUtYXBpIiwic3ViIjoiMDhiY2ZkMzctMzc3NS00OGE3LWI0ZDQt"
    "OGZmYTNkNWEwZmUxIiwiaWF0IjoxNzY0MTUwMDAwLCJleHAiOjE3NjQxNTA5MDAsImp0aSI6ImR5azJQWG00aTRL"
    "YnpsOXJZN0FYUWciLCJyb2xlIjoidXNlciIsInNjb3BlIjoiYWNjb3VudCBtYXJrZXQ6cmVhZCBwcmVkaWN0aW9u"
    "czpyZWFkIHN0cmVhbTpyZWFkIiwic3YiOjEsInNpZCI6ImRiN2M0ZTcyLTYwYzUtNDJlMS1hNDljLTExMzQ0OGQ3"
    "NmQ4NiJ9."
    "Uwi_S9Ah9SUm-IlJ1wFJWohmIpSB8WVJSGbf1rxGIWjTkJb9XyMXbIQWE1WLPk99T3B33Apt2hz28S-MTHKDIA"
)
_REFRESH_TOKEN = "04DYLmknlPFU-fcG7F1XLWWZWUHJ-zDgGrI0SSQQoAY"
_USER_SCOPES = "account market:read predictions:read stream:read"
_CLIENT_ID = "fos_8SvuRSpWNznepsr8"
_CLIENT_SECRET = "l1zH5I-gs67KUpjC5lC7BbeDE4uz-LwZ4xvS33h9w1Q"


class Registration(BaseModel):
    email: Email
    # The lengths are the policy's, in the schema for generated clients; "not common, not the
    # email" is checked in code.
    password: str = Field(
        min_length=MIN_PASSWORD_LENGTH,
        max_length=MAX_PASSWORD_LENGTH,
        examples=["correct horse battery staple"],
    )


class UserView(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [_USER]})

    user_id: str
    email: str
    role: Role
    disabled: bool
    created_at: datetime

    @classmethod
    def of(cls, user: User) -> UserView:
        return cls(
            user_id=user.user_id,
            email=user.email,
            role=user.role,
            disabled=user.disabled,
            created_at=user.created_at,
        )


class Me(UserView):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{**_USER, "scopes": ["market:read"], "client_id": _CLIENT_ID}]
        }
    )

    scopes: list[Scope]
    client_id: str | None = Field(description="Set when the token belongs to a machine client.")


class TokenResponse(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "access_token": _ACCESS_TOKEN,
                    "token_type": "bearer",
                    "expires_in": 900,
                    "refresh_token": _REFRESH_TOKEN,
                    "scope": _USER_SCOPES,
                }
            ]
        }
    )

    access_token: str
    token_type: str = "bearer"
    expires_in: int = Field(description="Seconds the access token stays valid.")
    refresh_token: str | None = Field(
        default=None, description="Single-use; trade it at the token endpoint for a new pair."
    )
    scope: str


class PasswordChange(BaseModel):
    current_password: str = Field(max_length=1_024, examples=["correct horse battery staple"])
    new_password: str = Field(
        min_length=MIN_PASSWORD_LENGTH,
        max_length=MAX_PASSWORD_LENGTH,
        examples=["a new long passphrase"],
    )


def _weak_password(error: PasswordPolicyError) -> ApiError:
    return ApiError(422, "weak_password", str(error))


def _grant_error(code: str, message: str) -> ApiError:
    return ApiError(400, code, message, headers=_NO_STORE)


def _session_tokens(
    resources: Resources, user: User, refresh_token: str, session_id: str
) -> TokenResponse:
    scopes = ROLE_SCOPES[user.role]
    access = resources.tokens.issue(
        user.user_id, user.role, scopes, user.session_version, session_id=session_id
    )
    return TokenResponse(
        access_token=access,
        expires_in=resources.tokens.ttl_s,
        refresh_token=refresh_token,
        scope=" ".join(sorted(scopes)),
    )


def _deliver(
    request: Request, response: Response, resources: Resources, tokens: TokenResponse
) -> TokenResponse:
    """The tokens, with the refresh token moved to its cookie when the browser asked for that."""
    lifetime_s = resources.settings.refresh_token_lifetime_s
    body_token = refresh_cookie.deliver(request, response, tokens.refresh_token, lifetime_s)
    return tokens.model_copy(update={"refresh_token": body_token})


async def _new_session(resources: Resources, user: User) -> TokenResponse:
    session = await sessions.start_session(
        await resources.pool(), user, resources.settings.refresh_token_lifetime_s
    )
    if session is None:
        raise _grant_error("invalid_grant", _CHANGED)
    return _session_tokens(resources, session.user, session.refresh_token, session.family_id)


@router.post(
    "/register",
    status_code=201,
    summary="Create an account",
    responses={
        409: {"model": ErrorBody, "description": "the email is already registered"},
        422: {"model": ErrorBody, "description": "invalid email or unacceptable password"},
        429: _ERRORS[429],
    },
)
async def register(body: Registration, resources: ResourcesDep, ip: ClientIp) -> UserView:
    await enforce_rate_limit(resources, resources.auth_requests, address_subject(ip))
    try:
        check_password_policy(body.password, body.email)
    except PasswordPolicyError as error:
        raise _weak_password(error) from None
    # Hashed before the insert either way, so a taken address costs the same time as a new one.
    password_hash = await resources.passwords.hash(body.password)
    pool = await resources.pool()
    user = await accounts.create_user(pool, body.email, password_hash)
    if user is None:
        raise ApiError(409, "email_taken", "an account with this email already exists")
    await audit.record(pool, AuditEvent.registered, user_id=user.user_id, client_ip=ip)
    return UserView.of(user)


@router.post(
    "/token",
    summary="OAuth2 token endpoint: password, refresh_token and client_credentials grants",
    responses=_ERRORS,
)
async def token(
    request: Request,
    response: Response,
    resources: ResourcesDep,
    ip: ClientIp,
    grant_type: Annotated[
        str, Form(max_length=64, examples=["password", "refresh_token", "client_credentials"])
    ],
    username: Annotated[str | None, Form(max_length=254, examples=["ann@example.com"])] = None,
    password: Annotated[
        str | None, Form(max_length=1_024, examples=["correct horse battery staple"])
    ] = None,
    refresh_token: Annotated[str | None, Form(max_length=256, examples=[_REFRESH_TOKEN])] = None,
    scope: Annotated[
        str | None, Form(max_length=512, examples=["market:read predictions:read"])
    ] = None,
    client_id: Annotated[str | None, Form(max_length=64, examples=[_CLIENT_ID])] = None,
    client_secret: Annotated[str | None, Form(max_length=256, examples=[_CLIENT_SECRET])] = None,
) -> TokenResponse:
    await enforce_rate_limit(resources, resources.auth_requests, address_subject(ip))
    response.headers.update(_NO_STORE)
    if grant_type == "password":
        if not username or password is None:
            raise _grant_error("invalid_request", "username and password are required")
        tokens = await _password_grant(resources, username, password, ip)
        return _deliver(request, response, resources, tokens)
    if grant_type == "refresh_token":
        refresh_token = refresh_token or refresh_cookie.cookie_token(request)
        if not refresh_token:
            raise _grant_error("invalid_request", "refresh_token is required")
        tokens = await _refresh_grant(resources, refresh_token, ip)
        return _deliver(request, response, resources, tokens)
    if grant_type == "client_credentials":
        form = {
            k: v
            for k, v in {
                "grant_type": grant_type,
                "scope": scope,
                "client_id": client_id,
                "client_secret": client_secret,
            }.items()
            if v is not None
        }
        return await _client_credentials_grant(request, resources, form, ip)
    raise _grant_error("unsupported_grant_type", f"grant_type {grant_type!r} is not supported")


async def _password_grant(
    resources: Resources, email: str, password: str, ip: str
) -> TokenResponse:
    pool = await resources.pool()
    subject = accounts.normalize_email(email)
    try:
        # Counted before the password is checked, in one atomic step: parallel guesses each
        # take a slot of the allowance, so no more than the limit are ever checked. A login that
        # succeeds gives its slot back, so the limit counts failures.
        attempt = await resources.limiter.hit(resources.login_failures, subject)
    except RateLimited as error:
        await audit.record(
            pool, AuditEvent.login_rate_limited, client_ip=ip, details={"email": subject}
        )
        raise rate_limited(error) from None
    user = await accounts.user_by_email(pool, subject)
    verified = await resources.passwords.verify(user.password_hash if user else None, password)
    if user is not None and user.disabled:
        # Whatever the password, alike: a disabled account must not tell guesses apart.
        await audit.record(
            pool,
            AuditEvent.login_failed,
            user_id=user.user_id,
            client_ip=ip,
            details={"email": subject, "reason": "disabled"},
        )
        raise _grant_error("invalid_grant", _DISABLED)
    if not verified:
        await audit.record(
            pool,
            AuditEvent.login_failed,
            user_id=user.user_id if user else None,
            client_ip=ip,
            details={"email": subject},
        )
        raise _grant_error("invalid_grant", _LOGIN_FAILED)
    assert user is not None
    await resources.limiter.forgive(attempt)
    if resources.passwords.needs_rehash(user.password_hash):
        await accounts.set_password_hash(
            pool, user.user_id, await resources.passwords.hash(password), changed=False
        )
    await audit.record(pool, AuditEvent.login_succeeded, user_id=user.user_id, client_ip=ip)
    return await _new_session(resources, user)


async def _refresh_grant(resources: Resources, refresh_token: str, ip: str) -> TokenResponse:
    pool = await resources.pool()
    async with pool.acquire() as conn:
        outcome = await sessions.rotate(conn, refresh_token, resources.settings.refresh_idle_s)
    if isinstance(outcome, sessions.Refused):
        if outcome.reason is sessions.Refusal.reused:
            assert outcome.family_id is not None
            await resources.revocations.end_session(outcome.family_id)
            await audit.record(
                pool,
                AuditEvent.refresh_token_reused,
                user_id=outcome.user_id,
                client_ip=ip,
                details={"session_id": outcome.family_id},
            )
        raise _grant_error("invalid_grant", outcome.reason.value)
    return _session_tokens(resources, outcome.user, outcome.refresh_token, outcome.family_id)


def _issuer(resources: Resources) -> TokenIssuer:
    def issue(client: MachineClient, scopes: frozenset[Scope]) -> str:
        return resources.tokens.issue(
            client.owner_id,
            client.owner_role,
            scopes,
            client.owner_session_version,
            client_id=client.client_id,
        )

    return issue


async def _client_credentials_grant(
    request: Request, resources: Resources, form: dict[str, str], ip: str
) -> TokenResponse:
    pool = await resources.pool()
    headers = request.headers  # case-insensitive, as Authlib expects "Authorization"
    client = await client_for_request(pool, headers, form)
    server = ClientCredentialsServer(client, _issuer(resources), resources.tokens.ttl_s)
    status, body, response_headers = server.respond(_public_url(request, resources), headers, form)
    if status != 200:
        if body.get("error") == "invalid_client":
            await audit.record(
                pool,
                AuditEvent.client_authentication_failed,
                user_id=client.owner_id if client else None,
                client_ip=ip,
                details={"client_id": client.client_id if client else None},
            )
        raise ApiError(
            status,
            str(body.get("error", "invalid_request")),
            str(body.get("error_description") or "the client credentials request was refused"),
            headers={**dict(response_headers), **_NO_STORE},
        )
    return TokenResponse(**body)


def _public_url(request: Request, resources: Resources) -> str:
    """The URL the client used: behind a trusted TLS-terminating proxy, https."""
    url = request.url
    peer = request.client.host if request.client else None
    if peer in resources.trusted_proxies() and request.headers.get("x-forwarded-proto") == "https":
        url = url.replace(scheme="https")
    return str(url)


@router.get("/me", summary="The caller's account", responses={401: _ERRORS[401]})
async def me(principal: AnyPrincipal, resources: ResourcesDep) -> Me:
    user = await accounts.user_by_id(await resources.pool(), principal.user_id)
    if user is None:
        raise ApiError(401, "invalid_token", "the account no longer exists")
    return Me(
        **UserView.of(user).model_dump(),
        scopes=sorted(principal.scopes),
        client_id=principal.client_id,
    )


@router.post(
    "/password",
    summary="Change the password; every session ends and this one gets new tokens",
    responses={
        **_ERRORS,
        403: {"model": ErrorBody, "description": "the current password is not correct"},
        422: {"model": ErrorBody, "description": "unacceptable new password"},
    },
)
async def change_password(
    body: PasswordChange,
    principal: AccountHolder,
    resources: ResourcesDep,
    ip: ClientIp,
    request: Request,
    response: Response,
) -> TokenResponse:
    pool = await resources.pool()
    user = await accounts.user_by_id(pool, principal.user_id)
    if user is None:
        raise ApiError(401, "invalid_token", "the account no longer exists")
    # Counted before the check, as at login: a stolen access token must not buy parallel guesses.
    attempt = await enforce_rate_limit(resources, resources.login_failures, user.email)
    if not await resources.passwords.verify(user.password_hash, body.current_password):
        # 403: the caller is known, and refused this change; the request itself was valid.
        raise ApiError(403, "wrong_password", "the current password is not correct")
    await resources.limiter.forgive(attempt)
    try:
        check_password_policy(body.new_password, user.email)
    except PasswordPolicyError as error:
        raise _weak_password(error) from None
    new_hash = await resources.passwords.hash(body.new_password)
    async with pool.acquire() as conn, conn.transaction():
        await accounts.set_password_hash(conn, user.user_id, new_hash, changed=True)
        version = await accounts.end_all_access(conn, user.user_id)
    await resources.revocations.end_sessions(user.user_id, version)
    await audit.record(pool, AuditEvent.password_changed, user_id=user.user_id, client_ip=ip)
    refreshed = await accounts.user_by_id(pool, user.user_id)
    assert refreshed is not None
    return _deliver(request, response, resources, await _new_session(resources, refreshed))


@router.post("/logout", status_code=204, summary="End this session", responses={401: _ERRORS[401]})
async def logout(
    principal: AccountHolder, resources: ResourcesDep, ip: ClientIp, response: Response
) -> None:
    assert principal.session_id is not None
    refresh_cookie.clear(response)
    pool = await resources.pool()
    async with pool.acquire() as conn:
        await sessions.end_session(conn, principal.session_id)
    await resources.revocations.end_session(principal.session_id)
    await audit.record(pool, AuditEvent.logged_out, user_id=principal.user_id, client_ip=ip)


@router.post(
    "/logout-all",
    status_code=204,
    summary="End every session of the account",
    responses={401: _ERRORS[401]},
)
async def logout_everywhere(
    principal: AccountHolder, resources: ResourcesDep, ip: ClientIp, response: Response
) -> None:
    refresh_cookie.clear(response)
    pool = await resources.pool()
    async with pool.acquire() as conn, conn.transaction():
        version = await accounts.end_all_access(conn, principal.user_id)
    await resources.revocations.end_sessions(principal.user_id, version)
    await audit.record(
        pool, AuditEvent.logged_out_everywhere, user_id=principal.user_id, client_ip=ip
    )


class JsonWebKeySet(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "keys": [
                        {
                            "crv": "P-256",
                            "x": "5z79XdkzqkJOkZ873cIBd8YkZpZ-pxBTkU7yZnjBtXI",
                            "y": "YtyOJgEyiqCWOnjESoDLa-g9-4C7f1skcel1YJJWcpo",
                            "kid": "6LzsKDgBjnOOtfKH",
                            "alg": "ES256",
                            "use": "sig",
                            "kty": "EC",
                        }
                    ]
                }
            ]
        }
    )

    keys: list[dict[str, str]]


@router.get("/jwks", summary="Public keys that verify access tokens (JWKS)")
async def jwks(resources: ResourcesDep) -> JsonWebKeySet:
    await resources.pool()
    return JsonWebKeySet(**resources.keys.jwks())
