"""The Serve application as a component of the stack: deployed, health-checked and stopped."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from ray import serve

from cluster.health import Check
from cluster.settings import Settings
from serve.app import APP_NAME, application

__all__ = ["GatewayComponent", "SERVE_CONFIG", "deployment_options"]

SERVE_CONFIG = Path(__file__).with_name("serve_config.yaml")


def deployment_options(path: Path = SERVE_CONFIG) -> dict[str, dict[str, Any]]:
    """Deployment name -> its options in the Serve config file's application."""
    config = yaml.safe_load(path.read_text())
    (app,) = (a for a in config["applications"] if a["name"] == APP_NAME)
    return {
        d["name"]: {k: v for k, v in d.items() if k != "name"} for d in app.get("deployments", [])
    }


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
        serve.shutdown()

    def urls(self, settings: Settings) -> dict[str, str]:
        base = f"http://{settings.host}:{settings.api_port}"
        live = f"ws://{settings.host}:{settings.api_port}/v1/stream"
        return {"API": base, "API docs": f"{base}/docs", "Live feed": live}
