"""Machine clients a user creates for their bots and services (OAuth2 client credentials)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Path
from pydantic import BaseModel, ConfigDict, Field
from pydantic.config import JsonDict

from serve.auth import audit
from serve.auth import clients as machine_clients
from serve.auth.audit import AuditEvent
from serve.auth.clients import MachineClient
from serve.auth.roles import Scope, grantable_scopes
from serve.dependencies import AccountHolder, ClientIp, ResourcesDep
from serve.errors import ApiError, ErrorBody, token_errors
from serve.fields import NAME_PATTERN
from serve.quotas import QuotaExceeded, within_quota

__all__ = ["router", "MAX_CLIENTS_PER_USER"]

router = APIRouter(
    prefix="/v1/auth/clients",
    tags=["machine clients"],
    responses=token_errors("machine clients cannot manage clients"),
)

MAX_CLIENTS_PER_USER = 20

_CLIENT_ID = "fos_8SvuRSpWNznepsr8"
_CLIENT: JsonDict = {
    "client_id": _CLIENT_ID,
    "name": "trading bot",
    "scopes": ["market:read"],
    "created_at": "2025-11-26T09:42:03.512907Z",
}


class ClientRequest(BaseModel):
    name: str = Field(min_length=1, max_length=100, pattern=NAME_PATTERN, examples=["trading bot"])
    scopes: list[Scope] = Field(min_length=1, max_length=10, examples=[["market:read"]])


class ClientView(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [_CLIENT]})

    client_id: str
    name: str
    scopes: list[str]
    created_at: datetime

    @classmethod
    def of(cls, client: MachineClient) -> ClientView:
        return cls(
            client_id=client.client_id,
            name=client.name,
            scopes=list(client.scopes),
            created_at=client.created_at,
        )


class CreatedClient(ClientView):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {**_CLIENT, "client_secret": "l1zH5I-gs67KUpjC5lC7BbeDE4uz-LwZ4xvS33h9w1Q"}
            ]
        }
    )

    client_secret: str = Field(description="Shown once; only a digest is stored.")


@router.post(
    "",
    status_code=201,
    summary="Create a machine client (client-credentials grant) for yourself",
    responses={
        403: {"model": ErrorBody, "description": "a scope your role does not hold"},
        409: {"model": ErrorBody, "description": "too many clients"},
    },
)
async def create_client(
    body: ClientRequest, principal: AccountHolder, resources: ResourcesDep, ip: ClientIp
) -> CreatedClient:
    requested = frozenset(body.scopes)
    refused = requested - grantable_scopes(principal.role)
    if refused:
        raise ApiError(
            403,
            "scope_not_grantable",
            f"a client of yours cannot hold: {', '.join(sorted(refused))}",
        )
    pool = await resources.pool()
    owner = principal.user_id
    try:
        async with within_quota(
            pool, "clients", owner, MAX_CLIENTS_PER_USER, machine_clients.count_live
        ) as db:
            created = await machine_clients.create_client(db, owner, body.name, requested)
    except QuotaExceeded:
        raise ApiError(
            409, "too_many_clients", f"at most {MAX_CLIENTS_PER_USER} clients per user"
        ) from None
    await audit.record(
        pool,
        AuditEvent.client_created,
        user_id=principal.user_id,
        client_ip=ip,
        details={"client_id": created.client.client_id, "scopes": sorted(requested)},
    )
    return CreatedClient(
        **ClientView.of(created.client).model_dump(), client_secret=created.client_secret
    )


@router.get("", summary="Your live machine clients")
async def list_clients(principal: AccountHolder, resources: ResourcesDep) -> list[ClientView]:
    pool = await resources.pool()
    return [ClientView.of(c) for c in await machine_clients.list_clients(pool, principal.user_id)]


@router.delete(
    "/{client_id}",
    status_code=204,
    summary="Revoke a machine client; its tokens stop working at once",
    responses={404: {"model": ErrorBody, "description": "no such client of yours"}},
)
async def revoke_client(
    client_id: Annotated[str, Path(examples=[_CLIENT_ID])],
    principal: AccountHolder,
    resources: ResourcesDep,
    ip: ClientIp,
) -> None:
    pool = await resources.pool()
    if not await machine_clients.revoke_client(pool, principal.user_id, client_id):
        raise ApiError(404, "client_not_found", "you have no live client with this id")
    await resources.revocations.revoke_client(client_id)
    await audit.record(
        pool,
        AuditEvent.client_revoked,
        user_id=principal.user_id,
        client_ip=ip,
        details={"client_id": client_id},
    )
