"""Forecasts of the champion models: the next return's quantiles and the next volatility."""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable
from typing import Annotated, Literal, TypeVar

import msgspec
from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, ConfigDict, Field
from pydantic.config import JsonDict
from ray.exceptions import RayError
from ray.serve.exceptions import RayServeException

from core.events import Forecast
from serve.auth.roles import Scope
from serve.dependencies import ResourcesDep, requires
from serve.errors import ApiError, ErrorBody, token_errors
from serve.fields import INSTRUMENT_PATTERN
from serve.inference.champions import ServedModel
from serve.inference.forecasts import Refusal, RefusalCode

__all__ = ["router", "PredictionView", "ModelsView"]

router = APIRouter(
    prefix="/v1",
    tags=["predictions"],
    dependencies=[Depends(requires(Scope.predictions_read))],
    responses=token_errors("the token lacks predictions:read"),
)

_STATUS: dict[RefusalCode, int] = {
    "unknown_instrument": 404,
    "insufficient_history": 422,
    "model_unavailable": 503,
    "service_unavailable": 503,
}


class ModelView(BaseModel):
    model: str = Field(description="Registered model name in MLflow.", examples=["finone-returns"])
    version: str = Field(description="The registered version that made the forecast.")
    interval: str = Field(description="Bar length the model reads.", examples=["1d"])
    horizon: int = Field(description="Bars ahead the forecast covers.")
    bar_start_ts_ns: int = Field(description="Start of the latest bar the forecast is made from.")


class ReturnForecastView(ModelView):
    q10: float = Field(description="10% quantile of the log return over the horizon.")
    q50: float = Field(description="Median log return.")
    q90: float = Field(description="90% quantile of the log return.")
    prob_up: float = Field(ge=0, le=1, description="Probability that the return is positive.")


class VolatilityForecastView(ModelView):
    volatility: float = Field(
        description="Realized volatility over the horizon: root of the summed squared log returns."
    )


_EXAMPLE: JsonDict = {
    "instrument": "alpaca:IBM",
    "made_at_ns": 1_764_154_800_000_000_000,
    "returns": {
        "model": "finone-returns",
        "version": "3",
        "interval": "1d",
        "horizon": 1,
        "bar_start_ts_ns": 1_362_096_000_000_000_000,
        "q10": -0.0131,
        "q50": 0.0004,
        "q90": 0.0142,
        "prob_up": 0.52,
    },
    "volatility": {
        "model": "finone-volatility",
        "version": "3",
        "interval": "1d",
        "horizon": 5,
        "bar_start_ts_ns": 1_362_096_000_000_000_000,
        "volatility": 0.0236,
    },
}


class PredictionView(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [_EXAMPLE]})

    instrument: str = Field(examples=["alpaca:IBM"])
    made_at_ns: int = Field(description="When the forecast was made (ns since the epoch, UTC).")
    returns: ReturnForecastView | None = Field(
        description="Null while the returns model has no champion."
    )
    volatility: VolatilityForecastView | None = Field(
        description="Null while the volatility model has no champion."
    )

    @classmethod
    def of(cls, forecast: Forecast) -> PredictionView:
        return cls.model_validate(
            msgspec.to_builtins(forecast) | {"made_at_ns": forecast.receive_ts_ns}
        )


# FastAPI leaves nulls out of the document, examples included: every field here is set.
_MODELS_EXAMPLE: JsonDict = {
    "models": [
        {
            "target": target,
            "model": f"finone-{target}",
            "version": "3",
            "interval": "1d",
            "horizon": horizon,
            "bars_needed": 21,
            "refused": f"finone-{target} v4 has no signature: the platform's training did not "
            f"register it as it is; an operator who trusts it can sign it with "
            f"`finone sign-model finone-{target} 4`",
        }
        for target, horizon in (("returns", 1), ("volatility", 5))
    ]
}


class ServedModelView(BaseModel):
    target: Literal["returns", "volatility"]
    model: str = Field(description="Registered model name in MLflow.", examples=["finone-returns"])
    version: str | None = Field(
        description="The champion version served; null while none is (the first is training)."
    )
    interval: str | None = Field(description="Bar length the model reads.", examples=["1d"])
    horizon: int | None = Field(description="Bars ahead its forecasts cover.")
    bars_needed: int | None = Field(
        description="Unbroken bars of `interval`, the latest ones, an instrument needs before "
        "the model can forecast it."
    )
    refused: str | None = Field(
        description="Why the version the `champion` alias names is not served (its signature "
        "does not verify); the version before it, if any, serves meanwhile."
    )

    @classmethod
    def of(cls, served: ServedModel) -> ServedModelView:
        fields = dataclasses.asdict(served)
        fields["model"] = fields.pop("name")
        return cls.model_validate(fields)


class ModelsView(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [_MODELS_EXAMPLE]})

    models: list[ServedModelView]


_T = TypeVar("_T")


async def _ask_inference(call: Awaitable[_T]) -> _T:
    try:
        return await call
    except (RayError, RayServeException) as error:
        raise ApiError(
            503,
            "service_unavailable",
            "inference is unavailable; retry shortly",
            headers={"Retry-After": "5"},
        ) from error


@router.get(
    "/models",
    summary="The models serving forecasts: each target's champion and what it reads",
    responses={503: {"model": ErrorBody, "description": "inference is down or not deployed"}},
)
async def models(resources: ResourcesDep) -> ModelsView:
    if resources.forecaster is None:
        raise ApiError(503, "model_unavailable", "this gateway is deployed without inference")
    served: list[ServedModel] = await _ask_inference(resources.forecaster.served.remote())
    return ModelsView(models=[ServedModelView.of(model) for model in served])


@router.get(
    "/predictions",
    summary="The champion models' current forecast for an instrument",
    responses={
        404: {"model": ErrorBody, "description": "no bars of the model's interval for it"},
        422: {"model": ErrorBody, "description": "too little or degenerate recent history"},
        503: {
            "model": ErrorBody,
            "description": "no champion model yet (`model_unavailable`) or inference is down",
        },
    },
)
async def prediction(
    resources: ResourcesDep,
    instrument: Annotated[str, Query(pattern=INSTRUMENT_PATTERN, examples=["alpaca:IBM"])],
) -> PredictionView:
    if resources.forecasts is None:
        raise ApiError(503, "model_unavailable", "this gateway is deployed without inference")
    result = await _ask_inference(resources.forecasts(instrument))
    if isinstance(result, Refusal):
        headers = {"Retry-After": "30"} if _STATUS[result.code] == 503 else None
        raise ApiError(_STATUS[result.code], result.code, result.message, headers=headers)
    return PredictionView.of(result)
