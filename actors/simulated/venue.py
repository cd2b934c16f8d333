"""The simulated venue as a long-lived Ray actor: ``SimulatedMarket`` served over OKX's v5
protocol on a loopback port of its node, for the demo's feed to connect to like any exchange.

It listens on 127.0.0.1 only, so the feed that streams from it must run on the same node; its
report says where (URL and node id). The port is chosen by whoever creates the actor and given
to the constructor, so an actor Ray restarts listens where the feed already connects.
"""

from __future__ import annotations

import asyncio
import time

import msgspec
import ray

from actors.simulated.market import SimulatedMarket, first_trade_id_at
from actors.simulated.okx import OkxServer

__all__ = ["SIMULATED_VENUE_ACTOR_NAME", "SimulatedVenue", "SimulatedVenueReport"]

SIMULATED_VENUE_ACTOR_NAME = "simulated-venue"


class SimulatedVenueReport(msgspec.Struct, frozen=True, kw_only=True):
    """Where the simulated venue listens and how its market stands; ``prices`` holds each
    instrument's latest trade price."""

    url: str
    node_id: str
    clients: int
    prices: dict[str, str]


@ray.remote(max_restarts=-1, num_cpus=0.1)
class SimulatedVenue:
    def __init__(self, port: int, seed: int) -> None:
        market = SimulatedMarket(seed=seed, first_trade_id=first_trade_id_at(time.time_ns()))
        self._market = market
        self._server = OkxServer(market, auto_interval_s=market.step_s, port=port)
        self._node_id = ray.get_runtime_context().get_node_id()
        self._started = asyncio.get_running_loop().create_task(self._server.start())

    async def status(self) -> SimulatedVenueReport:
        # Raises if the port could not be bound: the caller's status line says why.
        await self._started
        return SimulatedVenueReport(
            url=self._server.url,
            node_id=self._node_id,
            clients=self._server.clients,
            prices=self._market.prices(),
        )

    async def shutdown(self) -> None:
        """Close every connection (feeds see the venue go) and stop listening."""
        await self._started
        await self._server.close()
