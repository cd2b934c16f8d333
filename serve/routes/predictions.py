"""Forecasts of the champion models (the next return's quantiles and the next volatility), and
insights: a plain-language reading of an instrument made from its forecast and history; each at
a bar interval forecast here (``Settings.retrain_intervals``), daily unless asked."""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable
from typing import Annotated, Literal, TypeVar

import msgspec
from fastapi import APIRouter, Depends, Query
from fastapi.types import DecoratedCallable
from pydantic import BaseModel, ConfigDict, Field
from pydantic.config import JsonDict
from ray.exceptions import RayError
from ray.serve.exceptions import RayServeException

from core.events import FindingKind, Forecast, Insight, Verdict
from core.intervals import Interval
from serve.auth.roles import Scope
from serve.coalescing import Coalescing
from serve.dependencies import ResourcesDep, requires
from serve.errors import ApiError, ErrorBody, OpenApiResponses, token_errors
from serve.fields import INSTRUMENT_PATTERN
from serve.inference.champions import ServedModel
from serve.inference.forecasts import ForecastRequest, Refusal, RefusalCode

__all__ = ["router", "PredictionView", "ModelsView", "InsightView"]

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
_REFUSALS: OpenApiResponses = {
    404: {
        "model": ErrorBody,
        "description": "no bars of the interval for it (`unknown_instrument`), or no forecasts "
        "of that interval are made here (`interval_not_served`)",
    },
    422: {
        "model": ErrorBody,
        "description": "too little or degenerate recent history (`insufficient_history`)",
    },
    503: {
        "model": ErrorBody,
        "description": "no champion model yet (`model_unavailable`) or inference is down",
    },
}


class ModelView(BaseModel):
    model: str = Field(description="Registered model name in MLflow.", examples=["finone-returns"])
    version: str = Field(description="The registered version that made the forecast.")
    interval: str = Field(
        description="Bar length the model reads: the interval asked for.", examples=["1d"]
    )
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


_INTRADAY_EXAMPLE: JsonDict = {
    "instrument": "binance:BTC-USDT",
    "made_at_ns": 1_764_154_830_000_000_000,
    "returns": {
        "model": "finone-returns-1m",
        "version": "12",
        "interval": "1m",
        "horizon": 1,
        "bar_start_ts_ns": 1_764_154_740_000_000_000,
        "q10": -0.00071,
        "q50": 0.00002,
        "q90": 0.00074,
        "prob_up": 0.51,
    },
    "volatility": {
        "model": "finone-volatility-1m",
        "version": "12",
        "interval": "1m",
        "horizon": 5,
        "bar_start_ts_ns": 1_764_154_740_000_000_000,
        "volatility": 0.0013,
    },
}


class PredictionView(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [_EXAMPLE, _INTRADAY_EXAMPLE]})

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
            "model": model,
            "interval": interval,
            "version": "3",
            "horizon": horizon,
            "bars_needed": 21,
            "refused": f"{model} v4 has no signature: the platform's training did not register "
            f"it as it is; an operator who trusts it can sign it with "
            f"`finone sign-model {model} 4`",
        }
        for interval, suffix in (("1d", ""), ("1m", "-1m"))
        for target, horizon in (("returns", 1), ("volatility", 5))
        for model in (f"finone-{target}{suffix}",)
    ]
}


class ServedModelView(BaseModel):
    target: Literal["returns", "volatility"]
    model: str = Field(
        description="Registered model name in MLflow: one per target and interval.",
        examples=["finone-returns"],
    )
    interval: Interval = Field(
        description="Bar length the model reads: forecasts of it are asked with `interval`.",
        examples=["1d"],
    )
    version: str | None = Field(
        description="The champion version served; null while none is (the first is training)."
    )
    horizon: int | None = Field(description="Bars ahead its forecasts cover.")
    bars_needed: int | None = Field(
        description="Unbroken bars of `interval`, the latest ones, an instrument needs before "
        "the model can forecast it."
    )
    refused: str | None = Field(
        description="Why the version the `champion` alias names is not served (its signature "
        "does not verify, or it reads bars of another interval); the version before it, if "
        "any, serves meanwhile."
    )

    @classmethod
    def of(cls, served: ServedModel) -> ServedModelView:
        fields = dataclasses.asdict(served)
        fields["model"] = fields.pop("name")
        return cls.model_validate(fields)


class ModelsView(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [_MODELS_EXAMPLE]})

    models: list[ServedModelView]


_INSIGHT_EXAMPLE: JsonDict = {
    "instrument": "alpaca:IBM",
    "interval": "1d",
    "as_of_ts_ns": 1_362_096_000_000_000_000,
    "returns": {"model": "finone-returns", "version": "3"},
    "volatility": {"model": "finone-volatility", "version": "3"},
    "summary": "Volatility typical (78th percentile of the past year); 80% range for the next "
    "1d bar 199.37 to 204.98; no directional edge.",
    "findings": [
        {
            "kind": "volatility_regime",
            "verdict": "typical",
            "numbers": {
                "forecast_volatility": 0.0236,
                "recent_volatility": 0.0269,
                "percentile": 78.1,
                "range_low": 0.0025,
                "range_high": 0.0421,
                "windows": 252.0,
                "history_days": 365.0,
            },
            "text": "Volatility looks typical: over the next 5 bars it is forecast at 2.4%, the "
            "78th percentile of 5-bar volatility over the past year (0.25% to 4.2%); the last 5 "
            "bars realized 2.7%.",
        },
        {
            "kind": "next_bar_range",
            "verdict": "range",
            "numbers": {
                "close": 202.04,
                "low": 199.37,
                "high": 204.98,
                "low_percent": -1.32,
                "high_percent": 1.45,
            },
            "text": "Over the next 1d bar the model puts an 80% chance on a close between "
            "199.37 and 204.98, -1.3% to +1.4% from the last close of 202.04.",
        },
        {
            "kind": "directional_edge",
            "verdict": "no_edge",
            "numbers": {"hit_rate": 0.516, "p_value": 0.21},
            "text": "The model has no directional edge: out of sample it called up or down "
            "right 51.6% of the time, no better than a coin (p = 0.21), so do not read its "
            "median as a call on the direction.",
        },
        {
            "kind": "calibration",
            "verdict": "calibrated",
            "numbers": {"coverage_80": 0.797},
            "text": "Out of sample 79.7% of outcomes fell inside its 80% ranges: they are well "
            "calibrated.",
        },
        {
            "kind": "skill",
            "verdict": "mixed",
            "numbers": {"returns_dm_p": 0.003, "volatility_dm_p": 0.31},
            "text": "Against the best simple baseline out of sample, its return quantiles are "
            "better (Diebold-Mariano p = 0.003) and its volatility forecasts are not "
            "significantly better (p = 0.31).",
        },
    ],
}


class ModelRefView(BaseModel):
    model: str = Field(description="Registered model name in MLflow.", examples=["finone-returns"])
    version: str = Field(description="The registered version.", examples=["3"])


class FindingView(BaseModel):
    kind: FindingKind = Field(description="What the finding is about.")
    verdict: Verdict = Field(
        description="Its outcome, for programs: volatility_regime calm, typical or elevated; "
        "next_bar_range range; directional_edge edge or no_edge; calibration calibrated, "
        "too_narrow or too_wide; skill beats_baselines, mixed or no_better; any of them "
        "not_measured when the history or the champion's training run cannot say."
    )
    numbers: dict[str, float | None] = Field(
        description="The numbers it rests on, unrounded; null where one was not measured. "
        "volatility_regime: forecast_volatility, recent_volatility (the last bars', over the "
        "same horizon), percentile (0-100) and range_low/range_high of that volatility over the "
        "past year, windows compared, history_days (under 365: less than a year of history); "
        "next_bar_range: close, low and high (prices), low_percent and high_percent; "
        "directional_edge: hit_rate, p_value (one-sided binomial); calibration: coverage_80; "
        "skill: returns_dm_p, volatility_dm_p (Diebold-Mariano)."
    )
    text: str = Field(description="The finding in one sentence, numbers rounded.")


class InsightView(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [_INSIGHT_EXAMPLE]})

    instrument: str = Field(examples=["alpaca:IBM"])
    interval: str = Field(description="Bar length the models read.", examples=["1d"])
    as_of_ts_ns: int = Field(description="Start of the latest bar the insight reads.")
    returns: ModelRefView | None = Field(
        description="The returns model read; null while it has no champion."
    )
    volatility: ModelRefView | None = Field(
        description="The volatility model read; null while it has no champion."
    )
    summary: str = Field(description="The main findings in one short sentence.")
    findings: list[FindingView]

    @classmethod
    def of(cls, insight: Insight) -> InsightView:
        return cls.model_validate(
            msgspec.to_builtins(insight) | {"as_of_ts_ns": insight.exchange_ts_ns}
        )


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
    summary="The models serving forecasts: each target's champion of each interval, and what "
    "it reads",
    responses={503: {"model": ErrorBody, "description": "inference is down or not deployed"}},
)
async def models(resources: ResourcesDep) -> ModelsView:
    if resources.forecaster is None:
        raise ApiError(503, "model_unavailable", "this gateway is deployed without inference")
    served: list[ServedModel] = await _ask_inference(resources.forecaster.served.remote())
    return ModelsView(models=[ServedModelView.of(model) for model in served])


def _asked(
    resources: ResourcesDep,
    instrument: Annotated[str, Query(pattern=INSTRUMENT_PATTERN, examples=["alpaca:IBM"])],
    interval: Annotated[
        Interval,
        Query(
            description="The bar interval: that interval's champions read the instrument's "
            "bars of it. One of those `GET /v1/models` lists; others are refused "
            "(`interval_not_served`).",
            examples=["1d", "1m"],
        ),
    ] = "1d",
) -> ForecastRequest:
    served = resources.settings.retrain_intervals
    if interval not in served:
        raise ApiError(
            404,
            "interval_not_served",
            f"no forecasts of {interval} bars are made here; those of {', '.join(served)} are",
        )
    return ForecastRequest(instrument, interval)


_AskedDep = Annotated[ForecastRequest, Depends(_asked)]


def _model_route(
    path: str, summary: str, description: str
) -> Callable[[DecoratedCallable], DecoratedCallable]:
    """``GET`` of what inference makes: its parameters (``_asked``) and refusals are the same."""
    return router.get(path, summary=summary, description=description, responses=_REFUSALS)


@_model_route(
    "/predictions",
    summary="The champion models' current forecast for an instrument at an interval",
    description="The next bar's log-return quantiles and the next volatility, each made by "
    "the interval's champion from the instrument's latest bars of that interval.",
)
async def prediction(resources: ResourcesDep, asked: _AskedDep) -> PredictionView:
    return PredictionView.of(await _model_answer(resources.forecasts, asked))


@_model_route(
    "/insights",
    summary="A plain-language reading of an instrument from its forecast and history",
    description="Where the volatility forecast stands in the past year's range, the 80% range "
    "of the next bar's close, whether the returns model has a directional edge out of sample "
    "(and saying so when it has none), how well its 80% ranges were calibrated and whether it "
    "beats the best simple baseline, all at the interval asked for. The same bars and models "
    "always give the same answer; what the champions' training runs did not measure is said "
    "to be not measured.",
)
async def insight(resources: ResourcesDep, asked: _AskedDep) -> InsightView:
    return InsightView.of(await _model_answer(resources.insights, asked))


async def _model_answer(
    ask: Coalescing[ForecastRequest, _T | Refusal] | None, asked: ForecastRequest
) -> _T:
    """What inference answers for ``asked``, or its refusal as the API's error."""
    if ask is None:
        raise ApiError(503, "model_unavailable", "this gateway is deployed without inference")
    result = await _ask_inference(ask(asked))
    if isinstance(result, Refusal):
        headers = {"Retry-After": "30"} if _STATUS[result.code] == 503 else None
        raise ApiError(_STATUS[result.code], result.code, result.message, headers=headers)
    return result
