"""What ``finone up`` deploys onto Ray, in order: adding a part of the platform means adding it here.

Each component deploys itself from the resolved settings (every service URL filled in), reports
its own health from inside a connected Ray driver, stops itself gracefully, and names the URLs
it offers people. Actors are named and detached: Ray would collect a non-detached one as soon
as the deploying handle went out of scope, and ``stop`` ends them explicitly.
"""

from __future__ import annotations

from typing import Protocol

from cluster.health import Check
from cluster.settings import Settings

__all__ = ["Component", "RAY_NAMESPACE", "registered_components"]

RAY_NAMESPACE = "finone"


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
