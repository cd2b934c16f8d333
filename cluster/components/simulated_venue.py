"""The demo's simulated crypto exchange as a component of the stack: one SimulatedVenue actor,
deployed by ``finone up --demo`` only (``registered_components``), before the feeds: the
simulated feed asks it for its URL."""

from __future__ import annotations

import errno
import logging
import time
from typing import Any

import ray
from ray.exceptions import RayTaskError
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from actors.simulated.venue import (
    SIMULATED_VENUE_ACTOR_NAME,
    SimulatedVenue,
    SimulatedVenueReport,
)
from cluster.components.named_actor import NamedActorComponent
from cluster.ports import free_port
from core.health import Check
from core.named_actors import actor_report, named_actor
from core.settings import Settings

__all__ = ["SimulatedVenueComponent"]

log = logging.getLogger(__name__)

# The same market at every start: a demo that shows something odd can be run again.
_SEED = 1
# Tries at binding a port that was free when chosen.
_BIND_ATTEMPTS = 3


def _port_taken(error: Exception) -> bool:
    cause = error.cause if isinstance(error, RayTaskError) else error
    return isinstance(cause, OSError) and cause.errno == errno.EADDRINUSE


class SimulatedVenueComponent(NamedActorComponent[SimulatedVenueReport]):
    name = "simulated-venue"
    actor_name = SIMULATED_VENUE_ACTOR_NAME
    actor_class = SimulatedVenue
    report_type = SimulatedVenueReport

    def actor_args(self, settings: Settings) -> tuple[Any, ...]:
        # Chosen here, on the node the actor is pinned to below, and kept in the constructor's
        # arguments: a venue Ray restarts listens where its feed connects.
        return free_port(), _SEED

    def deploy(self, settings: Settings) -> None:
        # The port is free when chosen, but anything on the node (Ray's own workers among
        # them) may take it before the actor binds it: a venue that could not listen is
        # replaced by one on another port. Any other failure, and the last one, is for the
        # feeds to report: they ask the venue where it listens.
        for _ in range(_BIND_ATTEMPTS - 1):
            super().deploy(settings)
            try:
                actor_report(self.actor_name, self.report_type, settings.startup_timeout_s)
                return
            except Exception as error:  # reported by the feeds, unless the port was taken
                if not _port_taken(error):
                    return
                log.warning("the simulated venue's port was taken (%s); trying another", error)
                self._kill(settings)
        super().deploy(settings)

    def _kill(self, settings: Settings) -> None:
        ray.kill(named_actor(self.actor_name), no_restart=True)
        deadline = time.monotonic() + settings.startup_timeout_s
        # Until the name is released, deploy would get the dead actor back.
        while time.monotonic() < deadline:
            try:
                named_actor(self.actor_name)
            except ValueError:
                return
            time.sleep(0.1)

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
