"""Per-user watchlists: named lists of instruments (subscribable on the live feed at once)."""

from __future__ import annotations

import uuid
from dataclasses import asdict
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Path
from pydantic import BaseModel, ConfigDict, Field, field_validator

from serve import watchlists
from serve.dependencies import AccountHolder, ResourcesDep
from serve.errors import ApiError, ErrorBody, OpenApiResponses, token_errors
from serve.fields import INSTRUMENT_PATTERN, NAME_PATTERN
from serve.quotas import QuotaExceeded, within_quota
from serve.watchlists import Watchlist, WatchlistNameTaken

__all__ = ["router", "MAX_WATCHLISTS", "MAX_INSTRUMENTS"]

MAX_WATCHLISTS = 50
MAX_INSTRUMENTS = 200

router = APIRouter(
    prefix="/v1/watchlists",
    tags=["watchlists"],
    responses=token_errors("machine clients have no watchlists"),
)
_NOT_FOUND: OpenApiResponses = {
    404: {"model": ErrorBody, "description": "you have no watchlist with this id"}
}
_TAKEN: OpenApiResponses = {
    409: {"model": ErrorBody, "description": "name taken, or too many watchlists"}
}
_WATCHLIST_ID = "78e547a9-ddfc-4a13-b789-d7bef1a2f399"

WatchlistId = Annotated[uuid.UUID, Path(examples=[_WATCHLIST_ID])]


class WatchlistBody(BaseModel):
    name: str = Field(min_length=1, max_length=100, pattern=NAME_PATTERN, examples=["majors"])
    instruments: list[Annotated[str, Field(pattern=INSTRUMENT_PATTERN)]] = Field(
        max_length=MAX_INSTRUMENTS, examples=[["binance:BTC-USDT", "alpaca:AAPL"]]
    )

    @field_validator("instruments")
    @classmethod
    def _once_each(cls, value: list[str]) -> list[str]:
        return list(dict.fromkeys(value))


class WatchlistView(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "watchlist_id": _WATCHLIST_ID,
                    "name": "majors",
                    "instruments": ["binance:BTC-USDT", "alpaca:AAPL"],
                    "created_at": "2025-11-26T09:50:17.443210Z",
                    "updated_at": "2025-11-26T10:05:42.019876Z",
                }
            ]
        }
    )

    watchlist_id: str
    name: str
    instruments: list[str]
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, watchlist: Watchlist) -> WatchlistView:
        return cls(**asdict(watchlist))


def _taken(name: str) -> ApiError:
    return ApiError(409, "watchlist_exists", f"you already have a watchlist named {name!r}")


def _missing() -> ApiError:
    return ApiError(404, "watchlist_not_found", "you have no watchlist with this id")


@router.post("", status_code=201, summary="Create a watchlist", responses=_TAKEN)
async def create(
    body: WatchlistBody, principal: AccountHolder, resources: ResourcesDep
) -> WatchlistView:
    pool = await resources.pool()
    user = principal.user_id
    try:
        async with within_quota(
            pool, "watchlists", user, MAX_WATCHLISTS, watchlists.count_for
        ) as db:
            created = await watchlists.create(db, user, body.name, body.instruments)
    except QuotaExceeded:
        raise ApiError(
            409, "too_many_watchlists", f"at most {MAX_WATCHLISTS} watchlists per user"
        ) from None
    except WatchlistNameTaken:
        raise _taken(body.name) from None
    return WatchlistView.of(created)


@router.get("", summary="Your watchlists, by name")
async def list_all(principal: AccountHolder, resources: ResourcesDep) -> list[WatchlistView]:
    found = await watchlists.list_for(await resources.pool(), principal.user_id)
    return [WatchlistView.of(w) for w in found]


@router.get("/{watchlist_id}", summary="One of your watchlists", responses=_NOT_FOUND)
async def get(
    watchlist_id: WatchlistId, principal: AccountHolder, resources: ResourcesDep
) -> WatchlistView:
    found = await watchlists.get(await resources.pool(), principal.user_id, str(watchlist_id))
    if found is None:
        raise _missing()
    return WatchlistView.of(found)


@router.put(
    "/{watchlist_id}",
    summary="Replace a watchlist's name and instruments",
    responses={**_NOT_FOUND, **_TAKEN},
)
async def replace(
    watchlist_id: WatchlistId,
    body: WatchlistBody,
    principal: AccountHolder,
    resources: ResourcesDep,
) -> WatchlistView:
    try:
        updated = await watchlists.replace(
            await resources.pool(),
            principal.user_id,
            str(watchlist_id),
            body.name,
            body.instruments,
        )
    except WatchlistNameTaken:
        raise _taken(body.name) from None
    if updated is None:
        raise _missing()
    return WatchlistView.of(updated)


@router.delete(
    "/{watchlist_id}", status_code=204, summary="Delete a watchlist", responses=_NOT_FOUND
)
async def delete(
    watchlist_id: WatchlistId, principal: AccountHolder, resources: ResourcesDep
) -> None:
    if not await watchlists.delete(await resources.pool(), principal.user_id, str(watchlist_id)):
        raise _missing()
