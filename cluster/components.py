"""What ``finone up`` deploys onto Ray, in order: adding a part of the platform means adding it here.

Each component deploys itself from the resolved settings (every service URL filled in), reports
its own health from inside a connected Ray driver, stops itself gracefully, and names the URLs
it offers people. Actors are named and detached: Ray would collect a non-detached one as soon
as the deploying handle went out of scope, and ``stop`` ends them explicitly.
"""

from __future__ import annotations

import logging
from typing import Any, Protocol

from cluster.errors import PlatformError
from cluster.health import Check
from cluster.settings import Settings

__all__ = [
    "Component",
    "RAY_NAMESPACE",
    "registered_components",
    "components_to_deploy",
    "named_actor_status",
    "stop_named_actor",
]

RAY_NAMESPACE = "finone"
STATUS_TIMEOUT_S = 5.0
_SHUTDOWN_TIMEOUT_S = 15.0

log = logging.getLogger(__name__)


class Component(Protocol):
    name: str

    def deploy(self, settings: Settings) -> None: ...

    def health(self, settings: Settings) -> list[Check]: ...

    def stop(self, settings: Settings) -> None: ...

    def urls(self, settings: Settings) -> dict[str, str]: ...


def registered_components() -> list[Component]:
    # Imported here so commands that never deploy stay light.
    from actors.alerts_component import AlertsComponent
    from actors.feeds_component import FeedsComponent
    from actors.recorder_component import RecorderComponent
    from actors.retrain_component import RetrainComponent
    from serve.component import GatewayComponent

    return [
        RecorderComponent(),
        AlertsComponent(),
        RetrainComponent(),
        FeedsComponent(),
        GatewayComponent(),
    ]


def components_to_deploy(settings: Settings) -> list[Component]:
    """The registered components, less those the settings leave to something else (KubeRay
    deploys the Serve application itself, for instance)."""
    registered = registered_components()
    unknown = set(settings.skip_components) - {c.name for c in registered}
    if unknown:
        raise PlatformError(
            f"FINONE_SKIP_COMPONENTS names no component: {', '.join(sorted(unknown))} "
            f"(components: {', '.join(c.name for c in registered)})"
        )
    return [c for c in registered if c.name not in settings.skip_components]


def named_actor_status(name: str) -> dict[str, Any]:
    """``status()`` of the platform's actor called ``name``; raises when it is missing or stuck."""
    import ray

    actor = ray.get_actor(name, namespace=RAY_NAMESPACE)
    status: dict[str, Any] = ray.get(actor.status.remote(), timeout=STATUS_TIMEOUT_S)
    return status


def stop_named_actor(name: str, graceful: bool = True) -> None:
    """End the platform's actor called ``name``: after its ``shutdown()`` when ``graceful``."""
    import ray

    try:
        actor = ray.get_actor(name, namespace=RAY_NAMESPACE)
    except ValueError:
        return
    if graceful:
        try:
            ray.get(actor.shutdown.remote(), timeout=_SHUTDOWN_TIMEOUT_S)
        except Exception as error:  # it is killed below either way
            log.warning("%s did not shut down cleanly: %s", name, error)
    ray.kill(actor, no_restart=True)
