"""Per-user price alerts: created and listed here, evaluated on the live stream by the alert
evaluator actor, delivered over the live feed (stream ``alerts``) when they fire."""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal
from typing import Annotated

from fastapi import APIRouter, Path
from pydantic import BaseModel, ConfigDict, Field, model_validator

from actors import alert_store
from actors.alert_engine import Condition
from actors.alert_store import StoredAlert
from serve.dependencies import AccountHolder, ResourcesDep
from serve.errors import ApiError, ErrorBody, token_errors
from serve.fields import INSTRUMENT_PATTERN

__all__ = ["router", "MAX_WAITING_ALERTS"]

MAX_WAITING_ALERTS = 100

router = APIRouter(
    prefix="/v1/alerts",
    tags=["alerts"],
    responses=token_errors("machine clients have no alerts"),
)

# A decimal string: what the exchange writes, kept exact.
Price = Annotated[str, Field(pattern=r"^[0-9]{1,18}(\.[0-9]{1,18})?$", examples=["100000.5"])]
AlertId = Annotated[uuid.UUID, Path(examples=["6936421b-2be3-4f35-a7ca-562fb69abd16"])]

_CROSSING = {
    "instrument": "binance:BTC-USDT",
    "condition": "crosses_above",
    "threshold": "100000.5",
}
_MOVE = {
    "instrument": "alpaca:AAPL",
    "condition": "percent_move",
    "threshold": "2.5",
    "window_s": 3_600,
}


class AlertRequest(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [_CROSSING, _MOVE]})

    instrument: str = Field(pattern=INSTRUMENT_PATTERN, examples=["binance:BTC-USDT"])
    condition: Condition
    threshold: Price = Field(description="A price, or a percentage for percent_move.")
    window_s: int | None = Field(
        default=None, ge=1, le=86_400, description="Required for percent_move, else absent."
    )

    @model_validator(mode="after")
    def _window_only_for_moves(self) -> AlertRequest:
        if (self.condition is Condition.percent_move) != (self.window_s is not None):
            raise ValueError("window_s is required for percent_move and only for it")
        if Decimal(self.threshold) <= 0:
            raise ValueError("threshold must be positive")
        return self


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
    if await alert_store.count_waiting(pool, principal.user_id) >= MAX_WAITING_ALERTS:
        raise ApiError(409, "too_many_alerts", f"at most {MAX_WAITING_ALERTS} alerts waiting")
    created = await alert_store.create_alert(
        pool,
        principal.user_id,
        body.instrument,
        body.condition,
        Decimal(body.threshold),
        body.window_s,
    )
    return AlertView.of(created)


@router.get("", summary="Your alerts, waiting and fired, oldest first")
async def list_all(principal: AccountHolder, resources: ResourcesDep) -> list[AlertView]:
    alerts = await alert_store.list_alerts(await resources.pool(), principal.user_id)
    return [AlertView.of(a) for a in alerts]


@router.delete(
    "/{alert_id}",
    status_code=204,
    summary="Delete an alert",
    responses={404: {"model": ErrorBody, "description": "you have no alert with this id"}},
)
async def delete(alert_id: AlertId, principal: AccountHolder, resources: ResourcesDep) -> None:
    if not await alert_store.delete_alert(await resources.pool(), principal.user_id, str(alert_id)):
        raise ApiError(404, "alert_not_found", "you have no alert with this id")
