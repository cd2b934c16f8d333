"""Liveness and readiness probes (no authentication: load balancers and Kubernetes call them)."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict
from pydantic.config import JsonValue

from core.health import Check, check_services
from serve.dependencies import ResourcesDep
from serve.errors import ApiError, ErrorBody
from serve.resources import Resources

__all__ = ["router", "ServiceCheck", "service_checks", "SERVICE_CHECKS_EXAMPLE"]

router = APIRouter(tags=["operations"])

SERVICE_CHECKS_EXAMPLE: list[JsonValue] = [
    {
        "name": "redis",
        "ok": True,
        "detail": "redis 7.4.1 at redis://redis:6379/0",
        "latency_ms": 1.27,
    },
    {
        "name": "postgres",
        "ok": True,
        "detail": "postgres 16.4 at postgresql://finone:***@postgres:5432/finone",
        "latency_ms": 6.84,
    },
    {
        "name": "mlflow",
        "ok": True,
        "detail": "mlflow tracking server at http://mlflow:5000",
        "latency_ms": 12.5,
    },
]


class Liveness(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"status": "ok"}]})

    status: Literal["ok"] = "ok"


class ServiceCheck(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": SERVICE_CHECKS_EXAMPLE[:1]})

    name: str
    ok: bool
    detail: str
    latency_ms: float | None = None

    @classmethod
    def of(cls, check: Check) -> ServiceCheck:
        return cls(name=check.name, ok=check.ok, detail=check.detail, latency_ms=check.latency_ms)


class Readiness(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"status": "ready"}]})

    status: Literal["ready"] = "ready"


async def service_checks(resources: Resources) -> list[ServiceCheck]:
    """Redis, Postgres and MLflow probed concurrently."""
    s = resources.settings
    assert s.redis_url and s.database_url and s.mlflow_tracking_uri
    checks = await check_services(
        s.redis_url, s.database_url, s.mlflow_tracking_uri, s.health_timeout_s
    )
    return [ServiceCheck.of(c) for c in checks]


@router.get("/healthz", summary="Liveness: the gateway answers")
async def healthz() -> Liveness:
    return Liveness()


@router.get(
    "/readyz",
    summary="Readiness: Redis, Postgres and MLflow all answer",
    description="Status only, for anyone (probes carry no token): which service is down, its "
    "version and address are for operators, at `GET /v1/ops/services`.",
    responses={503: {"model": ErrorBody, "description": "a dependency is down"}},
)
async def readyz(resources: ResourcesDep) -> Readiness:
    checks = await service_checks(resources)
    if not all(c.ok for c in checks):
        raise ApiError(503, "not_ready", "a service the gateway needs is down")
    return Readiness()
