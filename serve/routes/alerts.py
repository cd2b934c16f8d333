"""Per-user price alerts: created and listed here, evaluated on the live stream by the alert
evaluator actor, delivered over the live feed (stream ``alerts``) when they fire."""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal
from typing import Annotated, Literal

from fastapi import APIRouter, Path, Query
from pydantic import BaseModel, ConfigDict, Field
from pydantic.config import JsonDict

from actors import alert_store
from actors.alert_engine import Condition
from actors.alert_store import StoredAlert
from serve.dependencies import AccountHolder, ResourcesDep
from serve.errors import ApiError, ErrorBody, token_errors
from serve.fields import INSTRUMENT_PATTERN
from serve.pagination import (
    NUMBER,
    UUID_HEX,
    Page,
    cursor_parts,
    cursor_pattern,
    join_cursor,
    time_at,
    time_of,
)
from serve.quotas import QuotaExceeded, within_quota

__all__ = ["router", "MAX_WAITING_ALERTS"]

MAX_WAITING_ALERTS = 100
# Fired alerts have no quota: they are listed a page at a time.
MAX_PAGE = 500

router = APIRouter(
    prefix="/v1/alerts",
    tags=["alerts"],
    responses=token_errors("machine clients have no alerts"),
)

# A decimal string above zero, kept exact: digits, a dot and digits, at least one not 0.
Positive = Annotated[
    str,
    Field(
        pattern=r"^(?:[0-9]*[1-9][0-9]*(?:\.[0-9]+)?|[0-9]+\.[0-9]*[1-9][0-9]*)$",
        max_length=37,
        examples=["100000.5"],
    ),
]
Cursor = Annotated[
    str | None,
    Query(
        pattern=cursor_pattern(NUMBER, UUID_HEX),
        description="next_cursor of the last page",
        examples=["1764150422880163-6936421b2be34f35a7ca562fb69abd16"],
    ),
]
AlertId = Annotated[uuid.UUID, Path(examples=["6936421b-2be3-4f35-a7ca-562fb69abd16"])]

_CROSSING: JsonDict = {
    "instrument": "binance:BTC-USDT",
    "condition": "crosses_above",
    "threshold": "100000.5",
}
_MOVE: JsonDict = {
    "instrument": "alpaca:AAPL",
    "condition": "percent_move",
    "threshold": "2.5",
    "window_s": 3_600,
}


class CrossingAlert(BaseModel):
    """An alert on a price: fires when a trade crosses it."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [_CROSSING]})

    instrument: str = Field(pattern=INSTRUMENT_PATTERN, examples=["binance:BTC-USDT"])
    condition: Literal[Condition.crosses_above, Condition.crosses_below]
    threshold: Positive = Field(description="The price.")


class MoveAlert(BaseModel):
    """An alert on a move: fires when the price moves by ``threshold`` percent within
    ``window_s`` seconds."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [_MOVE]})

    instrument: str = Field(pattern=INSTRUMENT_PATTERN, examples=["alpaca:AAPL"])
    condition: Literal[Condition.percent_move]
    threshold: Positive = Field(description="The move, in percent.", examples=["2.5"])
    window_s: int = Field(ge=1, le=86_400, description="The window the move happens within.")


# One schema per kind, told apart by condition: the rules live in the OpenAPI document, where
# generated clients (the web app's included) can see them.
AlertRequest = Annotated[CrossingAlert | MoveAlert, Field(discriminator="condition")]


class AlertView(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "alert_id": "6936421b-2be3-4f35-a7ca-562fb69abd16",
                    **_MOVE,
                    "created_at": "2025-11-26T09:47:02.880163Z",
                    "triggered_at": "2025-11-26T15:31:44.102938Z",
                    "triggered_price": "231.87",
                }
            ]
        }
    )

    alert_id: str
    instrument: str
    condition: Condition
    threshold: str
    window_s: int | None
    created_at: datetime
    triggered_at: datetime | None
    triggered_price: str | None

    @classmethod
    def of(cls, alert: StoredAlert) -> AlertView:
        price = alert.triggered_price
        return cls(
            alert_id=alert.alert_id,
            instrument=alert.instrument_id,
            condition=alert.condition,
            threshold=format(alert.threshold, "f"),
            window_s=alert.window_s,
            created_at=alert.created_at,
            triggered_at=alert.triggered_at,
            triggered_price=None if price is None else format(price, "f"),
        )


@router.post(
    "",
    status_code=201,
    summary="Create a price alert; it fires once, over the live feed",
    responses={409: {"model": ErrorBody, "description": "too many alerts waiting"}},
)
async def create(
    body: AlertRequest, principal: AccountHolder, resources: ResourcesDep
) -> AlertView:
    pool = await resources.pool()
    user = principal.user_id
    try:
        async with within_quota(
            pool, "alerts", user, MAX_WAITING_ALERTS, alert_store.count_waiting
        ) as db:
            created = await alert_store.create_alert(
                db,
                user,
                body.instrument,
                body.condition,
                Decimal(body.threshold),
                body.window_s if isinstance(body, MoveAlert) else None,
            )
    except QuotaExceeded:
        raise ApiError(
            409, "too_many_alerts", f"at most {MAX_WAITING_ALERTS} alerts waiting"
        ) from None
    return AlertView.of(created)


@router.get(
    "",
    summary="Your alerts, newest first, a page at a time",
)
async def list_all(
    principal: AccountHolder,
    resources: ResourcesDep,
    state: Annotated[
        Literal["waiting", "fired"] | None,
        Query(
            description="Only waiting or only fired alerts; both when absent.",
            examples=["fired"],
        ),
    ] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE, examples=[100])] = MAX_WAITING_ALERTS,
    cursor: Cursor = None,
) -> Page[AlertView]:
    before = _position(cursor) if cursor else None
    fired = None if state is None else state == "fired"
    alerts = await alert_store.list_alerts(
        await resources.pool(), principal.user_id, fired, limit, before
    )
    last = alerts[-1] if len(alerts) == limit else None
    next_cursor = (
        join_cursor(time_of(last.created_at), uuid.UUID(last.alert_id).hex) if last else None
    )
    return Page(items=[AlertView.of(a) for a in alerts], next_cursor=next_cursor)


def _position(cursor: str) -> tuple[datetime, str]:
    created_at, alert_id = cursor_parts(cursor, 2)
    return time_at(created_at), str(uuid.UUID(alert_id))


@router.delete(
    "/{alert_id}",
    status_code=204,
    summary="Delete an alert",
    responses={404: {"model": ErrorBody, "description": "you have no alert with this id"}},
)
async def delete(alert_id: AlertId, principal: AccountHolder, resources: ResourcesDep) -> None:
    if not await alert_store.delete_alert(await resources.pool(), principal.user_id, str(alert_id)):
        raise ApiError(404, "alert_not_found", "you have no alert with this id")
