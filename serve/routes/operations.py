"""Operational endpoints for the operator role."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query
from pydantic import BaseModel, ConfigDict, Field
from pydantic.config import JsonValue

from core.intervals import Interval
from serve.dependencies import Operator, ResourcesDep
from serve.errors import ApiError, ErrorBody, OpenApiResponses, token_errors
from serve.feeds import FeedNotFound, feed_reports, restart_feed, set_recording
from serve.retraining import SchedulerMissing, retrain_report, trigger_retrain
from serve.routes.health import SERVICE_CHECKS_EXAMPLE, ServiceCheck, service_checks

__all__ = [
    "router",
    "ServicesReport",
    "FeedStatusView",
    "RetrainProgressView",
    "RetrainStatus",
    "Consoles",
]

router = APIRouter(
    prefix="/v1/ops",
    tags=["operations"],
    responses=token_errors("the caller is not an operator"),
)


class ServicesReport(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={"examples": [{"healthy": True, "checks": SERVICE_CHECKS_EXAMPLE}]}
    )

    healthy: bool
    checks: list[ServiceCheck]


@router.get("/services", summary="Every backing service's health, with versions and latency")
async def services(operator: Operator, resources: ResourcesDep) -> ServicesReport:
    checks = await service_checks(resources)
    return ServicesReport(healthy=all(c.ok for c in checks), checks=checks)


class FeedStatusView(BaseModel):
    """One feed connection as its actor reports it."""

    # Field for field actors.feed.FeedReport (tests/serve/test_report_views.py keeps them equal).

    model_config = ConfigDict(
        from_attributes=True,
        json_schema_extra={
            "examples": [
                {
                    "venue": "binance",
                    "connection": "binance-0",
                    "state": "live",
                    "detail": "",
                    "symbols": ["BTC-USDT", "ETH-USDT", "SOL-USDT"],
                    "connected_since_ns": 1_764_144_000_000_000_000,
                    "last_message_age_s": 0.04,
                    "messages": 3_281_554,
                    "events": 4_330_712,
                    "messages_per_s": 182.4,
                    "events_per_s": 240.7,
                    "gaps": 0,
                    "reconnects": 1,
                    "rotations": 0,
                    "problems": {"unknown_message": 3},
                    "recording": False,
                    "published": 4_330_698,
                    "unpublished": 14,
                    "redis_ok": True,
                }
            ]
        },
    )

    venue: str
    connection: str
    state: str
    detail: str
    symbols: list[str] = []
    connected_since_ns: int | None = None
    last_message_age_s: float | None = None
    messages: int | None = None
    events: int | None = None
    messages_per_s: float | None = None
    events_per_s: float | None = None
    gaps: int | None = None
    reconnects: int | None = None
    rotations: int | None = Field(
        default=None,
        description="Connections replaced at the venue's age limit without a gap (overlapping)",
    )
    problems: dict[str, int] = {}
    recording: bool | None = None
    # Events written to Redis, and those queued for it (grows while Redis is unreachable).
    published: int | None = None
    unpublished: int | None = None
    redis_ok: bool | None = None


class RecordingSwitch(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"on": True}]})

    on: bool


class RecordingState(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "connection": "okx-0",
                    "recording": True,
                    "capture_file": "/srv/finone/.finone/captures/okx-0.20251126T131208.ws",
                }
            ]
        }
    )

    connection: str
    recording: bool
    capture_file: str | None


Connection = Annotated[
    str, Path(pattern=r"^[a-z0-9_]{1,32}-[a-z0-9_]{1,16}$", examples=["okx-0", "alpaca-iex"])
]
_NO_FEED: OpenApiResponses = {
    404: {"model": ErrorBody, "description": "no feed connection by that name"}
}


def _not_found(connection: str) -> ApiError:
    return ApiError(404, "feed_not_found", f"no feed connection named {connection!r}")


@router.get("/feeds", summary="Status of every feed connection")
async def feeds(operator: Operator) -> list[FeedStatusView]:
    return [FeedStatusView.model_validate(report) for report in await feed_reports()]


@router.post(
    "/feeds/{connection}/restart",
    status_code=202,
    summary="Drop the connection; it reconnects at once and publishes a gap",
    responses=_NO_FEED,
)
async def restart(connection: Connection, operator: Operator) -> None:
    try:
        await restart_feed(connection)
    except FeedNotFound:
        raise _not_found(connection) from None


@router.put(
    "/feeds/{connection}/recording",
    summary="Switch recording of raw frames to capture files",
    responses=_NO_FEED,
)
async def recording(
    connection: Connection, body: RecordingSwitch, operator: Operator
) -> RecordingState:
    try:
        path = await set_recording(connection, body.on)
    except FeedNotFound:
        raise _not_found(connection) from None
    return RecordingState(connection=connection, recording=path is not None, capture_file=path)


_DECISIONS: list[JsonValue] = [
    {
        "model": "finone-returns",
        "version": "4",
        "alias": "champion",
        "reason": "pinball 0.00412 beats every baseline and champion v3 (0.00431)",
    },
    {
        "model": "finone-volatility",
        "version": "4",
        "alias": "challenger",
        "reason": "qlike 1.31824 does not beat champion v3 (1.29377)",
    },
]
_RETRAIN_INSTRUMENTS: list[JsonValue] = ["alpaca:AAPL", "alpaca:GOOG", "alpaca:IBM", "alpaca:MSFT"]


class RetrainDecision(BaseModel):
    model_config = ConfigDict(from_attributes=True, json_schema_extra={"examples": _DECISIONS[:1]})

    model: str
    version: str
    alias: str
    reason: str


_PROGRESS: JsonValue = {
    "phase": "search",
    "done": 3,
    "total": 8,
    "unit": "trial 3/8 (gru, 12 epochs)",
}


class RetrainProgressView(BaseModel):
    """The running retraining's latest step."""

    # Field for field actors.retrain_scheduler.RetrainProgress (a test keeps them equal).

    model_config = ConfigDict(from_attributes=True, json_schema_extra={"examples": [_PROGRESS]})

    phase: str = Field(
        description="What the run is doing: `search` (the Tune search's trials), then "
        "`walk-forward` (judging the winner beside the baselines); more may come"
    )
    done: int = Field(description="Units of the phase finished so far")
    total: int = Field(description="Units of the phase in all")
    unit: str = Field(description="The unit finished last, in words")


class RetrainStatus(BaseModel):
    """What the retrain scheduler is doing."""

    # Field for field actors.retrain_scheduler.RetrainReport (a test keeps them equal).

    model_config = ConfigDict(
        from_attributes=True,
        json_schema_extra={
            "examples": [
                {
                    "state": "idle",
                    "detail": "last run 3f9c2b7e41d84a0f9b6e1c5a7d2e8f40 (schedule)",
                    "runs": 4,
                    "last_run_at": 1_764_147_600.25,
                    "last_run_duration_s": 734.6,
                    "decisions": _DECISIONS,
                    "instruments": _RETRAIN_INSTRUMENTS,
                    "intervals": ["1d"],
                    "interval": "1d",
                    "started_at": None,
                    "elapsed_s": None,
                    "progress": None,
                },
                {
                    "state": "training",
                    "detail": "running (requested): trial 3/8 (gru, 12 epochs) done",
                    "runs": 4,
                    "last_run_at": 1_764_147_600.25,
                    "last_run_duration_s": 734.6,
                    "decisions": _DECISIONS,
                    "instruments": _RETRAIN_INSTRUMENTS,
                    "intervals": ["1d"],
                    "interval": "1d",
                    "started_at": 1_764_151_200.5,
                    "elapsed_s": 72.4,
                    "progress": _PROGRESS,
                },
            ]
        },
    )

    state: str = Field(description="waiting, training, idle or failed")
    detail: str = Field(
        description="In words: the run's reason and latest step, the last run, why it waits "
        "or why the last run failed"
    )
    runs: int = Field(description="Runs finished since the scheduler started")
    last_run_at: float | None = Field(description="When the last finished run ended (Unix s)")
    last_run_duration_s: float | None = Field(description="Seconds the last finished run took")
    decisions: list[RetrainDecision] = Field(
        description="The latest run's decisions of every interval (model names carry theirs)"
    )
    instruments: list[str]
    intervals: list[str] = Field(description="Bar intervals retrained, each into its own models")
    interval: str | None = Field(
        description="The interval of the run in progress, else of the last run; null before any"
    )
    # Defaults, so that examples of a report outside a run (nulls, which the OpenAPI document
    # leaves out) still validate.
    started_at: float | None = Field(
        default=None, description="When the run in progress started (Unix s); null outside a run"
    )
    elapsed_s: float | None = Field(
        default=None,
        description="Seconds the run in progress has taken, as of this answer; null outside a run",
    )
    progress: RetrainProgressView | None = Field(
        default=None,
        description="The run's latest step; null outside a run and until its first step ends",
    )


class Consoles(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {"mlflow_ui": "http://127.0.0.1:5000", "ray_dashboard": "http://127.0.0.1:8265"}
            ]
        }
    )

    mlflow_ui: str | None = Field(description="The MLflow UI: runs, metrics, registered models")
    ray_dashboard: str | None = Field(
        description="The Ray dashboard: actors, Serve deployments, logs (signs in with a token)"
    )


@router.get("/consoles", summary="Where the operators' consoles are: MLflow UI, Ray dashboard")
async def consoles(operator: Operator, resources: ResourcesDep) -> Consoles:
    settings = resources.settings
    return Consoles(
        mlflow_ui=settings.mlflow_ui_url or settings.mlflow_tracking_uri,
        ray_dashboard=settings.ray_dashboard_url,
    )


_NO_SCHEDULER: OpenApiResponses = {
    503: {"model": ErrorBody, "description": "the retrain scheduler is not running"}
}


def _no_scheduler() -> ApiError:
    return ApiError(503, "retrain_unavailable", "the retrain scheduler is not running")


@router.get("/retrain", summary="What the retrain scheduler is doing", responses=_NO_SCHEDULER)
async def retrain(operator: Operator) -> RetrainStatus:
    try:
        return RetrainStatus.model_validate(await retrain_report())
    except SchedulerMissing:
        raise _no_scheduler() from None


@router.post(
    "/retrain",
    status_code=202,
    summary="Start a retraining now (search, judge, log, gate) of one interval or each in turn",
    responses={
        **_NO_SCHEDULER,
        409: {"model": ErrorBody, "description": "one is running"},
        404: {"model": ErrorBody, "description": "that interval is not retrained here"},
    },
)
async def start_retrain(
    operator: Operator,
    interval: Annotated[
        Interval | None,
        Query(
            description="The bar interval to retrain; every retrained interval in turn when absent",
            examples=["1d"],
        ),
    ] = None,
) -> RetrainStatus:
    try:
        reply = await trigger_retrain(interval)
    except SchedulerMissing:
        raise _no_scheduler() from None
    if reply.outcome == "not_retrained":
        raise ApiError(404, "interval_not_retrained", f"{interval} bars are not retrained here")
    if reply.outcome == "running":
        raise ApiError(409, "retrain_running", "a retraining is already running")
    return RetrainStatus.model_validate(reply.report)
