"""Administration: users, roles, the audit log and signing-key rotation (admin role only)."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Path, Query
from pydantic import BaseModel, ConfigDict, Field

from serve.auth import accounts, audit
from serve.auth.accounts import User
from serve.auth.audit import AuditEvent, AuditRecord
from serve.auth.roles import Role
from serve.dependencies import Admin, ClientIp, ResourcesDep
from serve.errors import ApiError, ErrorBody, OpenApiResponses, token_errors
from serve.pagination import NUMBER, TEXT, Page, cursor_pattern, number_at, text_at, text_of
from serve.resources import Resources
from serve.routes.account import UserView

__all__ = ["router"]

router = APIRouter(
    prefix="/v1/admin",
    tags=["administration"],
    responses=token_errors("the caller is not an admin"),
)

_NOT_FOUND: OpenApiResponses = {404: {"model": ErrorBody, "description": "no such user"}}
_SELF: OpenApiResponses = {
    409: {"model": ErrorBody, "description": "admins cannot demote or disable themselves"}
}
_USER_ID = "08bcfd37-3775-48a7-b4d4-8ffa3d5a0fe1"
_ADMIN_ID = "181dc18a-e996-4204-acef-d7510226475d"
_AUDIT_PAGE = {
    "items": [
        {
            "event_id": 1043,
            "at": "2025-11-26T10:02:44.918273Z",
            "event": "role_changed",
            "user_id": _USER_ID,
            "actor_id": _ADMIN_ID,
            "client_ip": "203.0.113.7",
            "details": {"from": "user", "to": "operator"},
        },
        {
            "event_id": 1042,
            "at": "2025-11-26T10:01:57.204551Z",
            "event": "user_enabled",
            "user_id": _USER_ID,
            "actor_id": _ADMIN_ID,
            "client_ip": "203.0.113.7",
            "details": {},
        },
    ],
    "next_cursor": "1042",
}

UserId = Annotated[uuid.UUID, Path(examples=[_USER_ID])]
Limit = Annotated[int, Query(ge=1, le=500, examples=[100])]


class RoleChange(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"role": "operator"}]})

    role: Role


class RotatedKey(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"kid": "Xq3vN8tLr2KpWm5a"}]})

    kid: str


class RevokedKey(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={"examples": [{"revoked": "Xq3vN8tLr2KpWm5a", "signing": "pL7cQe2Wn9Rt"}]}
    )

    revoked: str
    signing: str = Field(description="The key that signs new tokens now.")


Kid = Annotated[str, Path(min_length=1, max_length=64, examples=["Xq3vN8tLr2KpWm5a"])]


def _refuse_self(admin_id: str, user_id: uuid.UUID) -> None:
    # The last admin must not be able to lock everyone out of administration.
    if str(user_id) == admin_id:
        raise ApiError(409, "cannot_modify_self", "admins cannot demote or disable themselves")


def _found(user: User | None) -> User:
    if user is None:
        raise ApiError(404, "user_not_found", "no user with this id")
    return user


@router.get("/users", summary="List users by email")
async def list_users(
    admin: Admin,
    resources: ResourcesDep,
    limit: Limit = 100,
    cursor: Annotated[
        str | None, Query(pattern=cursor_pattern(TEXT), examples=["616e6e406578616d706c652e636f6d"])
    ] = None,
) -> Page[UserView]:
    after = text_at(cursor) if cursor else None
    users = await accounts.list_users(await resources.pool(), limit, after)
    next_cursor = text_of(users[-1].email) if len(users) == limit else None
    return Page(items=[UserView.of(u) for u in users], next_cursor=next_cursor)


async def _set_access(
    resources: Resources, admin_id: str, user_id: uuid.UUID, disabled: bool, ip: str
) -> User:
    pool = await resources.pool()
    async with pool.acquire() as conn, conn.transaction():
        user = _found(await accounts.set_disabled(conn, str(user_id), disabled))
        version = await accounts.end_all_access(conn, user.user_id) if disabled else None
    if version is not None:
        await resources.revocations.end_sessions(user.user_id, version)
    event = AuditEvent.user_disabled if disabled else AuditEvent.user_enabled
    await audit.record(pool, event, user_id=user.user_id, actor_id=admin_id, client_ip=ip)
    return user


@router.post(
    "/users/{user_id}/disable",
    summary="Disable a user: every session and client token stops working",
    responses={**_NOT_FOUND, **_SELF},
)
async def disable_user(
    user_id: UserId, admin: Admin, resources: ResourcesDep, ip: ClientIp
) -> UserView:
    _refuse_self(admin.user_id, user_id)
    return UserView.of(await _set_access(resources, admin.user_id, user_id, True, ip))


@router.post("/users/{user_id}/enable", summary="Enable a disabled user", responses=_NOT_FOUND)
async def enable_user(
    user_id: UserId, admin: Admin, resources: ResourcesDep, ip: ClientIp
) -> UserView:
    return UserView.of(await _set_access(resources, admin.user_id, user_id, False, ip))


@router.put(
    "/users/{user_id}/role",
    summary="Change a user's role; their access tokens are renewed with it on next refresh",
    responses={**_NOT_FOUND, **_SELF},
)
async def change_role(
    user_id: UserId, body: RoleChange, admin: Admin, resources: ResourcesDep, ip: ClientIp
) -> UserView:
    _refuse_self(admin.user_id, user_id)
    pool = await resources.pool()
    async with pool.acquire() as conn, conn.transaction():
        before = _found(await accounts.user_by_id(conn, str(user_id)))
        user = _found(await accounts.set_role(conn, str(user_id), body.role))
        version = await accounts.bump_session_version(conn, user.user_id)
    await resources.revocations.end_sessions(user.user_id, version)
    await audit.record(
        pool,
        AuditEvent.role_changed,
        user_id=user.user_id,
        actor_id=admin.user_id,
        client_ip=ip,
        details={"from": before.role.value, "to": user.role.value},
    )
    return UserView.of(user)


@router.get(
    "/audit",
    summary="The audit log, newest first",
    responses={
        200: {"content": {"application/json": {"example": _AUDIT_PAGE}}},
    },
)
async def audit_log(
    admin: Admin,
    resources: ResourcesDep,
    user_id: Annotated[uuid.UUID | None, Query(examples=[_USER_ID])] = None,
    event: Annotated[AuditEvent | None, Query(examples=["role_changed"])] = None,
    limit: Limit = 100,
    cursor: Annotated[str | None, Query(pattern=cursor_pattern(NUMBER), examples=["1042"])] = None,
) -> Page[AuditRecord]:
    before = number_at(cursor) if cursor else None
    records = await audit.list_events(
        await resources.pool(), limit, before, str(user_id) if user_id else None, event
    )
    next_cursor = str(records[-1].event_id) if len(records) == limit else None
    return Page(items=records, next_cursor=next_cursor)


@router.post("/signing-keys/rotate", summary="Sign new tokens with a fresh key")
async def rotate_signing_key(admin: Admin, resources: ResourcesDep, ip: ClientIp) -> RotatedKey:
    pool = await resources.pool()
    async with pool.acquire() as conn:
        kid = await resources.keys.rotate(conn)
    await audit.record(
        pool,
        AuditEvent.signing_key_rotated,
        actor_id=admin.user_id,
        client_ip=ip,
        details={"kid": kid},
    )
    return RotatedKey(kid=kid)


@router.post(
    "/signing-keys/{kid}/revoke",
    summary="Revoke a signing key at once: the tokens it signed stop working",
    responses={404: {"model": ErrorBody, "description": "no such key"}},
)
async def revoke_signing_key(
    kid: Kid, admin: Admin, resources: ResourcesDep, ip: ClientIp
) -> RevokedKey:
    pool = await resources.pool()
    async with pool.acquire() as conn:
        signing = await resources.keys.revoke(conn, kid)
    if signing is None:
        raise ApiError(404, "signing_key_not_found", "no signing key with this kid")
    await audit.record(
        pool,
        AuditEvent.signing_key_revoked,
        actor_id=admin.user_id,
        client_ip=ip,
        details={"kid": kid, "signing_kid": signing},
    )
    return RevokedKey(revoked=kid, signing=signing)
