"""The Serve application: one FastAPI ingress deployment in front of the platform, and the
inference deployment it calls for forecasts.

``build_app`` is the import path for Serve config files (``serve/serve_config.yaml``); ``finone
up`` calls ``application`` with the stack's resolved settings and that file's deployment options.
Routes live in ``serve/routes/``, one module per area of the API; ``create_api`` assembles them
for one deployment's settings.
"""

from __future__ import annotations

from typing import Any, cast

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from ray import serve
from ray.serve import Application, Deployment
from ray.serve.handle import DeploymentHandle

from core.settings import Settings
from serve.errors import install_error_handlers
from serve.inference.deployment import Forecaster
from serve.metrics import RequestMetrics
from serve.request_limits import RequestSizeLimit
from serve.resources import Resources
from serve.routes import (
    account,
    admin,
    alerts,
    clients,
    health,
    history,
    market,
    operations,
    predictions,
    stream,
    watchlists,
)
from serve.web_app import install_web_app

__all__ = ["create_api", "Gateway", "application", "build_app", "openapi_document", "APP_NAME"]

APP_NAME = "finone"


def create_api(resources: Resources) -> FastAPI:
    settings = resources.settings
    api = FastAPI(
        title="Finance One Stop",
        version="0.1.0",
        description=(
            "Market data, history, forecasts and a live feed from the Finance One Stop cluster. "
            "Errors always read {code, message, details}; `code` is stable."
        ),
        # Served by serve.web_app from local assets, so they work without internet.
        docs_url=None,
        redoc_url=None,
    )
    api.state.resources = resources
    install_error_handlers(api)
    routers = (
        health.router,
        account.router,
        clients.router,
        market.router,
        history.router,
        watchlists.router,
        alerts.router,
        predictions.router,
        stream.router,
        admin.router,
        operations.router,
    )
    for router in routers:
        api.include_router(router)
    install_web_app(api, settings.web_dist)
    api.add_middleware(RequestSizeLimit, max_bytes=settings.max_request_bytes)
    api.add_middleware(
        CORSMiddleware,
        allow_origins=settings.allowed_origins,
        allow_methods=["GET", "POST", "PUT", "DELETE"],
        allow_headers=["Authorization", "Content-Type"],
    )
    # Added last, so outermost: request timings include the size limit and CORS.
    api.add_middleware(RequestMetrics)
    return api


# Every open live-feed connection holds one of a replica's ongoing requests for its lifetime.
@serve.deployment(name="Gateway", ray_actor_options={"num_cpus": 0.1}, max_ongoing_requests=2_000)
@serve.ingress()
class Gateway:
    """HTTP entry point of the platform; each replica builds its app for its settings."""

    def __init__(
        self, settings: Settings, forecaster: DeploymentHandle[Forecaster] | None = None
    ) -> None:
        if not settings.mlflow_tracking_uri:
            raise ValueError("the gateway needs MLFLOW_TRACKING_URI")
        self._resources = Resources(settings, forecaster)
        # Reading the cluster's nodes waits for the GCS: once here, before requests arrive on
        # this event loop, and off it from then on.
        self._resources.trusted_proxies()

    def __serve_build_asgi_app__(self) -> FastAPI:
        return create_api(self._resources)

    async def __del__(self) -> None:
        await self._resources.close()


def application(
    settings: Settings, options: dict[str, dict[str, Any]] | None = None
) -> Application:
    """The gateway bound to its inference deployment; ``options``: deployment name -> Serve
    deployment options (replicas, autoscaling) overriding the code's defaults."""
    options = options or {}
    # @serve.deployment made both classes Deployments; mypy keeps a decorated class's own type.
    inference = cast(Deployment, Forecaster).options(**options.get("Forecaster", {}))
    forecaster = inference.bind(settings)
    return (
        cast(Deployment, Gateway).options(**options.get("Gateway", {})).bind(settings, forecaster)
    )


def build_app(args: dict[str, Any]) -> Application:
    """Serve application builder; ``args`` override settings read from the environment. The
    config file that names it sets the deployments' options itself."""
    return application(Settings(**args))


def openapi_document() -> dict[str, Any]:
    """The OpenAPI document the gateway serves, built without reaching any service (nothing
    connects until a request needs it)."""
    settings = Settings(
        environment="development",
        redis_url="redis://127.0.0.1:1",
        database_url="postgresql://finone@127.0.0.1:1/finone",
        mlflow_tracking_uri="http://127.0.0.1:1",
    )
    return create_api(Resources(settings)).openapi()
