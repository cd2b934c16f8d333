"""What ``finone up`` deploys onto Ray, in order: a new part of the platform is added here.

Each component deploys itself from the resolved settings (every service URL filled in), reports
its own health from inside a connected Ray driver, stops itself gracefully, and names the URLs
it offers people. One module per component in this package; those that are one named actor
share ``named_actor.NamedActorComponent``.
"""

from __future__ import annotations

from typing import Protocol

from core.errors import PlatformError
from core.health import Check
from core.settings import Settings

__all__ = ["Component", "registered_components", "components_to_deploy", "WEB_APP"]

# The label of the address most people want: the URL block prints it first.
WEB_APP = "Web app"


class Component(Protocol):
    # Read-only, so a name set on the class (as every component does) satisfies it.
    @property
    def name(self) -> str: ...

    def deploy(self, settings: Settings) -> None: ...

    def health(self, settings: Settings) -> list[Check]: ...

    def stop(self, settings: Settings) -> None: ...

    def urls(self, settings: Settings) -> dict[str, str]: ...


def registered_components(*, demo: bool = True) -> list[Component]:
    """Every component in deploy order; ``demo=False`` leaves out what only ``finone up
    --demo`` deploys (the simulated venue, which its feed needs running first)."""
    # Imported here so commands that never deploy stay light.
    from cluster.components.alerts import AlertsComponent
    from cluster.components.feeds import FeedsComponent
    from cluster.components.gateway import GatewayComponent
    from cluster.components.recorder import RecorderComponent
    from cluster.components.retrain import RetrainComponent
    from cluster.components.simulated_venue import SimulatedVenueComponent

    return [
        RecorderComponent(),
        AlertsComponent(),
        RetrainComponent(),
        *([SimulatedVenueComponent()] if demo else []),
        FeedsComponent(),
        GatewayComponent(),
    ]


def components_to_deploy(settings: Settings) -> list[Component]:
    """The registered components, less those the settings leave to something else (KubeRay
    deploys the Serve application itself, for instance)."""
    registered = registered_components(demo=settings.demo)
    unknown = set(settings.skip_components) - {c.name for c in registered}
    if unknown:
        raise PlatformError(
            f"FINONE_SKIP_COMPONENTS names no component: {', '.join(sorted(unknown))} "
            f"(components: {', '.join(c.name for c in registered)})"
        )
    return [c for c in registered if c.name not in settings.skip_components]
