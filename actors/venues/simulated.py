"""The demo's simulated exchange (``actors/simulated/``), which speaks OKX's v5 protocol: OKX's
own adapter under another name, so its instruments (``simulated:BTC-USDT``), connections
(``simulated-0``) and feed status say simulated and nobody takes its made-up prices for OKX's."""

from __future__ import annotations

from typing import ClassVar

from actors.venues.base import ConfigError, VenueConfig
from actors.venues.okx import OkxAdapter

__all__ = ["SimulatedAdapter"]


class SimulatedAdapter(OkxAdapter):
    venue: ClassVar[str] = "simulated"
    # It has no address of its own: the SimulatedVenue actor listens on a port of its node.
    default_ws_url: ClassVar[str] = ""
    default_rest_url: ClassVar[str] = ""

    def __init__(self, config: VenueConfig) -> None:
        super().__init__(config)
        if not self.ws_url:
            raise ConfigError(
                "simulated: no ws_url; the simulated venue runs in the demo (finone up --demo), "
                "which tells its feed where"
            )
