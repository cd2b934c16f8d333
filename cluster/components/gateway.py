"""The Serve application as a component of the stack: deployed, health-checked and stopped."""

from __future__ import annotations

from ray import serve

from cluster.components import WEB_APP
from core.health import Check
from core.settings import Settings
from serve.app import APP_NAME, application
from serve.serve_config import deployment_options

__all__ = ["GatewayComponent"]


class GatewayComponent:
    name = "serve"

    def deploy(self, settings: Settings) -> None:
        serve.start(http_options={"host": settings.host, "port": settings.api_port})
        app = application(settings, deployment_options())
        serve.run(app, name=APP_NAME, route_prefix="/")

    def health(self, settings: Settings) -> list[Check]:
        application = serve.status().applications.get(APP_NAME)
        if application is None:
            return [Check(name=f"serve:{APP_NAME}", ok=False, detail="application not deployed")]
        checks = [
            Check(
                name=f"serve:{APP_NAME}",
                ok=application.status == "RUNNING",
                detail=f"application {application.status.lower()}",
            )
        ]
        for name, deployment in application.deployments.items():
            replicas = sum(deployment.replica_states.values())
            checks.append(
                Check(
                    name=f"serve:{APP_NAME}/{name}",
                    ok=deployment.status == "HEALTHY",
                    detail=f"{deployment.status.lower()}, {replicas} replica(s)",
                )
            )
        return checks

    def stop(self, settings: Settings) -> None:
        serve.shutdown()  # type: ignore[no-untyped-call]  # Ray leaves it unannotated

    def urls(self, settings: Settings) -> dict[str, str]:
        base = f"http://{settings.host}:{settings.api_port}"
        live = f"ws://{settings.host}:{settings.api_port}/v1/stream"
        return {
            WEB_APP: f"{base}/",
            "API": base,
            "API docs": f"{base}/docs",
            "Live feed": live,
        }
