"""The Serve application: one FastAPI ingress deployment in front of the platform.

``build_app`` is the import path for Serve config files (``serve.app:build_app``); ``finone up``
calls it with the stack's resolved settings.
"""

from __future__ import annotations

from typing import Any, Literal

from fastapi import FastAPI
from pydantic import BaseModel
from ray import serve
from ray.serve import Application

from cluster.health import Check, check_services
from cluster.settings import Settings
from serve.errors import ApiError, ErrorBody, install_error_handlers

__all__ = ["api", "Gateway", "build_app", "APP_NAME"]

APP_NAME = "finone"

api = FastAPI(
    title="Finance One Stop",
    version="0.1.0",
    description="Market data, history, forecasts and a live feed from the Finance One Stop cluster.",
)
install_error_handlers(api)


class Liveness(BaseModel):
    status: Literal["ok"] = "ok"


class ServiceCheck(BaseModel):
    name: str
    ok: bool
    detail: str
    latency_ms: float | None = None


class Readiness(BaseModel):
    status: Literal["ready"] = "ready"
    checks: list[ServiceCheck]


def _as_models(checks: list[Check]) -> list[ServiceCheck]:
    return [ServiceCheck(name=c.name, ok=c.ok, detail=c.detail, latency_ms=c.latency_ms) for c in checks]


@serve.deployment(name="Gateway", ray_actor_options={"num_cpus": 0.1})
@serve.ingress(api)
class Gateway:
    """HTTP entry point of the platform; later routes are added to ``api``."""

    def __init__(self, settings: Settings) -> None:
        if not (settings.redis_url and settings.database_url and settings.mlflow_tracking_uri):
            raise ValueError("the gateway needs REDIS_URL, DATABASE_URL and MLFLOW_TRACKING_URI")
        self._settings = settings

    @api.get("/healthz", tags=["operations"], summary="Liveness: the gateway answers")
    async def healthz(self) -> Liveness:
        return Liveness()

    @api.get(
        "/readyz",
        tags=["operations"],
        summary="Readiness: Redis, Postgres and MLflow all answer",
        responses={503: {"model": ErrorBody, "description": "a dependency is down"}},
    )
    async def readyz(self) -> Readiness:
        s = self._settings
        assert s.redis_url and s.database_url and s.mlflow_tracking_uri
        checks = await check_services(
            s.redis_url, s.database_url, s.mlflow_tracking_uri, s.health_timeout_s
        )
        failed = [c.name for c in checks if not c.ok]
        if failed:
            raise ApiError(
                503,
                "not_ready",
                f"unavailable: {', '.join(failed)}",
                details=[m.model_dump() for m in _as_models(checks)],
            )
        return Readiness(checks=_as_models(checks))


def build_app(args: dict[str, Any]) -> Application:
    """Serve application builder; ``args`` override settings read from the environment."""
    return Gateway.bind(Settings(**args))
