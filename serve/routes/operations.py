"""Operational endpoints for the operator role."""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel

from serve.dependencies import Operator, ResourcesDep
from serve.errors import ErrorBody
from serve.routes.health import ServiceCheck, service_checks

__all__ = ["router", "ServicesReport"]

router = APIRouter(
    prefix="/v1/ops",
    tags=["operations"],
    responses={
        401: {"model": ErrorBody, "description": "missing or invalid token"},
        403: {"model": ErrorBody, "description": "the caller is not an operator"},
    },
)


class ServicesReport(BaseModel):
    healthy: bool
    checks: list[ServiceCheck]


@router.get("/services", summary="Every backing service's health, with versions and latency")
async def services(operator: Operator, resources: ResourcesDep) -> ServicesReport:
    checks = await service_checks(resources)
    return ServicesReport(healthy=all(c.ok for c in checks), checks=checks)
