"""Venue adapters, one module each; ``ADAPTERS`` is the registry ``finone`` looks venues up in.

Adding a venue: write ``actors/venues/<venue>.py`` with a ``VenueAdapter`` subclass, then add it
to ``ADAPTERS`` below.
"""

from __future__ import annotations

from actors.venues.alpaca import AlpacaAdapter
from actors.venues.base import VenueAdapter
from actors.venues.binance import BinanceAdapter
from actors.venues.coinbase import CoinbaseAdapter
from actors.venues.kraken import KrakenAdapter
from actors.venues.okx import OkxAdapter
from actors.venues.simulated import SimulatedAdapter

__all__ = ["ADAPTERS", "adapter_for"]

ADAPTERS: dict[str, type[VenueAdapter]] = {
    AlpacaAdapter.venue: AlpacaAdapter,
    BinanceAdapter.venue: BinanceAdapter,
    CoinbaseAdapter.venue: CoinbaseAdapter,
    KrakenAdapter.venue: KrakenAdapter,
    OkxAdapter.venue: OkxAdapter,
    SimulatedAdapter.venue: SimulatedAdapter,
}


def adapter_for(venue: str) -> type[VenueAdapter]:
    try:
        return ADAPTERS[venue]
    except KeyError:
        known = ", ".join(sorted(ADAPTERS)) or "none"
        raise KeyError(f"unknown venue {venue!r} (known: {known})") from None
