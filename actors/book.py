"""An L2 order book of one instrument, with prices and sizes kept as the exchange wrote them.

Levels are ordered by the numeric value of the price (a float sort key: exchange prices carry far
fewer significant digits than a double holds) and store the original strings, so checksums that
exchanges compute over their own spelling of numbers can be reproduced exactly.
"""

from __future__ import annotations

from collections.abc import Iterable

from sortedcontainers import SortedDict

from cluster.events import PriceLevel

__all__ = ["OrderBook"]


class OrderBook:
    __slots__ = ("instrument", "_bids", "_asks")

    def __init__(self, instrument: str) -> None:
        self.instrument = instrument
        # Bids keyed by the negated price, so both sides iterate best level first.
        self._bids: SortedDict = SortedDict()
        self._asks: SortedDict = SortedDict()

    def clear(self) -> None:
        self._bids.clear()
        self._asks.clear()

    def __bool__(self) -> bool:
        return bool(self._bids or self._asks)

    def set_bid(self, price: str, size: str) -> None:
        key = -float(price)
        if float(size) == 0.0:
            self._bids.pop(key, None)
        else:
            self._bids[key] = (price, size)

    def set_ask(self, price: str, size: str) -> None:
        key = float(price)
        if float(size) == 0.0:
            self._asks.pop(key, None)
        else:
            self._asks[key] = (price, size)

    def apply(self, bids: Iterable[PriceLevel], asks: Iterable[PriceLevel]) -> None:
        for price, size in bids:
            self.set_bid(price, size)
        for price, size in asks:
            self.set_ask(price, size)

    def replace(self, bids: Iterable[PriceLevel], asks: Iterable[PriceLevel]) -> None:
        self.clear()
        self.apply(bids, asks)

    def truncate(self, depth: int) -> None:
        """Keep only the best ``depth`` levels per side (venues that maintain a fixed depth)."""
        for side in (self._bids, self._asks):
            while len(side) > depth:
                side.popitem(-1)

    def best_bid(self) -> PriceLevel | None:
        return self._bids.peekitem(0)[1] if self._bids else None

    def best_ask(self) -> PriceLevel | None:
        return self._asks.peekitem(0)[1] if self._asks else None

    def is_crossed(self) -> bool:
        if not self._bids or not self._asks:
            return False
        return -self._bids.peekitem(0)[0] >= self._asks.peekitem(0)[0]

    def bids(self, depth: int | None = None) -> list[PriceLevel]:
        """Best first."""
        return list(self._bids.values()[:depth])

    def asks(self, depth: int | None = None) -> list[PriceLevel]:
        """Best first."""
        return list(self._asks.values()[:depth])

    def depth(self) -> tuple[int, int]:
        return len(self._bids), len(self._asks)
