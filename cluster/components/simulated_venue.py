"""The demo's simulated crypto exchange as a component of the stack: one SimulatedVenue actor,
deployed by ``finone up --demo`` only (``registered_components``), before the feeds: the
simulated feed asks it for its URL."""

from __future__ import annotations

from typing import Any

import ray
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from actors.simulated.venue import (
    SIMULATED_VENUE_ACTOR_NAME,
    SimulatedVenue,
    SimulatedVenueReport,
)
from cluster.components.named_actor import NamedActorComponent
from cluster.ports import free_port
from core.health import Check
from core.named_actors import named_actor
from core.settings import Settings

__all__ = ["SimulatedVenueComponent"]

# The same market at every start: a demo that shows something odd can be run again.
_SEED = 1


class SimulatedVenueComponent(NamedActorComponent[SimulatedVenueReport]):
    name = "simulated-venue"
    actor_name = SIMULATED_VENUE_ACTOR_NAME
    actor_class = SimulatedVenue
    report_type = SimulatedVenueReport

    def actor_args(self, settings: Settings) -> tuple[Any, ...]:
        # Chosen here, on the node the actor is pinned to below, and kept in the constructor's
        # arguments: a venue Ray restarts listens where its feed connects.
        return free_port(), _SEED

    def actor_options(self, settings: Settings) -> dict[str, Any]:
        # A driver always runs on a node of its cluster: this one.
        node_id = ray.get_runtime_context().get_node_id()
        return {"scheduling_strategy": NodeAffinitySchedulingStrategy(node_id, soft=False)}

    def health(self, settings: Settings) -> list[Check]:
        try:
            named_actor(self.actor_name)
        except ValueError:
            # Not a demo: no simulated venue, and nothing to say about it.
            return []
        return super().health(settings)

    def check(self, report: SimulatedVenueReport) -> Check:
        prices = ", ".join(f"{symbol} {price}" for symbol, price in sorted(report.prices.items()))
        detail = (
            f"simulated market (made-up prices, OKX protocol) at {report.url}; "
            f"{report.clients} client(s); {prices}"
        )
        return Check(name=self.name, ok=True, detail=detail)
