"""An L2 order book of one instrument, with prices and sizes kept as the exchange wrote them.

Levels are ordered by the numeric value of the price (a float sort key: exchange prices carry far
fewer significant digits than a double holds) and store the original strings, so checksums that
exchanges compute over their own spelling of numbers can be reproduced exactly.

Checksummed venues read the best 10-25 levels after every update, while most updates land deeper
in the book; each side therefore keeps its best levels between changes that reach them.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

from sortedcontainers import SortedDict

from cluster.events import PriceLevel

__all__ = ["OrderBook"]


class _Side:
    """One side, keyed so that iteration runs best level first (bids by negated price)."""

    __slots__ = ("_levels", "_sign", "_top", "_top_depth", "_edge")

    def __init__(self, sign: float) -> None:
        self._levels: SortedDict = SortedDict()
        self._sign = sign
        self._top: tuple[PriceLevel, ...] | None = None
        self._top_depth = 0
        # Changes at keys up to here alter the cached top; infinite while the side is shallower.
        self._edge = math.inf

    def __len__(self) -> int:
        return len(self._levels)

    def set(self, price: str, size: str) -> None:
        key = self._sign * float(price)
        if key <= self._edge:
            self._top = None
        if float(size) == 0.0:
            self._levels.pop(key, None)
        else:
            self._levels[key] = (price, size)

    def replace(self, levels: Iterable[PriceLevel]) -> None:
        # One bulk build sorts once: several times faster than inserting level by level.
        sign = self._sign
        self._levels = SortedDict(
            {sign * float(price): (price, size) for price, size in levels if float(size) != 0.0}
        )
        self._top = None

    def truncate(self, depth: int) -> None:
        levels = self._levels
        while len(levels) > depth:
            levels.popitem(-1)
        if depth < self._top_depth:
            self._top = None

    def best_key(self) -> float:
        return float(self._levels.peekitem(0)[0])

    def best(self) -> PriceLevel | None:
        if not self._levels:
            return None
        level: PriceLevel = self._levels.peekitem(0)[1]
        return level

    def levels(self, depth: int | None) -> list[PriceLevel]:
        return list(self._levels.values()[:depth])

    def top(self, depth: int) -> tuple[PriceLevel, ...]:
        """The best ``depth`` levels; the same tuple object until a change reaches them."""
        if self._top is None or self._top_depth != depth:
            levels = self._levels
            keys = levels.keys()[:depth]
            self._top = tuple(map(dict.__getitem__, [levels] * len(keys), keys))
            self._top_depth = depth
            self._edge = keys[-1] if len(keys) == depth else math.inf
        return self._top


class OrderBook:
    __slots__ = ("instrument", "_bids", "_asks")

    def __init__(self, instrument: str) -> None:
        self.instrument = instrument
        self._bids = _Side(-1.0)
        self._asks = _Side(1.0)

    def clear(self) -> None:
        self._bids.replace(())
        self._asks.replace(())

    def __bool__(self) -> bool:
        return bool(len(self._bids) or len(self._asks))

    def set_bid(self, price: str, size: str) -> None:
        self._bids.set(price, size)

    def set_ask(self, price: str, size: str) -> None:
        self._asks.set(price, size)

    def apply(self, bids: Iterable[PriceLevel], asks: Iterable[PriceLevel]) -> None:
        """Apply changes level by level; a size of zero removes the level."""
        for price, size in bids:
            self._bids.set(price, size)
        for price, size in asks:
            self._asks.set(price, size)

    def replace(self, bids: Iterable[PriceLevel], asks: Iterable[PriceLevel]) -> None:
        self._bids.replace(bids)
        self._asks.replace(asks)

    def truncate(self, depth: int) -> None:
        """Keep only the best ``depth`` levels per side (venues that maintain a fixed depth)."""
        self._bids.truncate(depth)
        self._asks.truncate(depth)

    def best_bid(self) -> PriceLevel | None:
        return self._bids.best()

    def best_ask(self) -> PriceLevel | None:
        return self._asks.best()

    def is_crossed(self) -> bool:
        if not len(self._bids) or not len(self._asks):
            return False
        return -self._bids.best_key() >= self._asks.best_key()

    def bids(self, depth: int | None = None) -> list[PriceLevel]:
        """Best first."""
        return self._bids.levels(depth)

    def asks(self, depth: int | None = None) -> list[PriceLevel]:
        """Best first."""
        return self._asks.levels(depth)

    def top_bids(self, depth: int) -> tuple[PriceLevel, ...]:
        """The best ``depth`` bids, as one unchanged object while no change reaches them."""
        return self._bids.top(depth)

    def top_asks(self, depth: int) -> tuple[PriceLevel, ...]:
        """The best ``depth`` asks, as one unchanged object while no change reaches them."""
        return self._asks.top(depth)

    def depth(self) -> tuple[int, int]:
        return len(self._bids), len(self._asks)
