"""The demo's simulated crypto market: OKX's protocol (``actors.simulated.okx``) around prices
that move, so a feed, the recorder and the charts have something alive to show with no
internet. Nothing here is a real market; the venue is called ``simulated`` wherever it shows.

Each instrument's mid price is a drift-free random walk of its logarithm whose volatility
clusters: the log of the volatility is itself a mean-reverting walk with a memory of about a
minute, so calm and busy stretches alternate as they do on real exchanges. At every step (100 ms,
OKX's books cadence) the book follows the mid: the touch moves with it, the levels it passed
go, new ones fill in behind it a few ticks apart, a few sizes change, and the far end is topped
up or trimmed to ``depth`` levels a side. Trades arrive a few a second at the touch (a buy at the
best ask, a sell at the best bid) and take their size off it; a ticker goes out whenever the top
of the book changed. Every books update carries OKX's checksum and continues the seqId chain, so
the OKX adapter checks it exactly as it checks OKX.

Deterministic for a seed: the walk, the books and the trades repeat; only the times differ.
They are the wall clock's as served, or a virtual clock's (``clock``): that is how
``actors.simulated.market_capture`` writes a long stretch of the market far faster than it
would stream.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from actors.simulated.okx import FIRST_TRADE_ID, ExchangeBook, OkxMarket, decimal_text

__all__ = ["Listing", "LISTINGS", "STEP_S", "SimulatedMarket", "first_trade_id_at"]

STEP_S = 0.1
DEPTH = 50
_SECONDS_PER_YEAR = 365 * 86_400
# How long a burst of volatility lasts, and how far the volatility strays from its long-run
# level (the standard deviation of its log).
_VOLATILITY_MEMORY_S = 60.0
_VOL_OF_VOL = 0.5
# A trade's median size as a share of a resting level's.
_TRADE_SHARE = 0.1
# The touch levels are usually one tick apart, now and then two or three.
_WIDE_SPREAD_ODDS = 0.2
# Levels near the top whose size may change at a step, and how often a change pulls one.
_CHURN_LEVELS = 10
_PULL_ODDS = 0.25


@dataclass(frozen=True, slots=True)
class Listing:
    """One instrument of the simulated exchange. Its tick is one unit of the price's last
    decimal, its lot one unit of the size's."""

    inst_id: str
    price: float
    price_decimals: int
    size_decimals: int
    # Median size of a resting level.
    typical_size: float
    annual_volatility: float
    trades_per_s: float
    # Most ticks between two neighbouring levels of a side.
    level_spacing: int


# Prices of late 2024; tick and lot sizes as OKX lists these pairs.
LISTINGS = (
    Listing("BTC-USDT", 97_000.0, 1, 8, 0.25, 0.50, 4.0, 5),
    Listing("ETH-USDT", 3_600.0, 2, 6, 4.0, 0.65, 3.0, 4),
    Listing("SOL-USDT", 240.0, 2, 4, 60.0, 0.85, 2.0, 2),
)


def first_trade_id_at(time_ns: int) -> int:
    """The first trade id of a market opening at ``time_ns``: a market opened later (a venue
    restarted, the next demo, another capture on the same database) never repeats an earlier
    one's ids, which the recorder keeps one trade per. Milliseconds since the epoch, times a
    thousand, stay ahead of a few trades a second."""
    return time_ns // 1_000_000 * 1_000


class _VolatilityWalk:
    """The log mid price: a random walk without drift whose step size is itself random and
    persistent (log volatility an AR(1) process)."""

    def __init__(self, listing: Listing, step_s: float) -> None:
        self.log_price = math.log(listing.price)
        self._sigma = listing.annual_volatility * math.sqrt(step_s / _SECONDS_PER_YEAR)
        self._persistence = math.exp(-step_s / _VOLATILITY_MEMORY_S)
        self._shock = _VOL_OF_VOL * math.sqrt(1 - self._persistence**2)
        self._log_vol = 0.0

    def step(self, rng: random.Random) -> float:
        """The next mid price."""
        self._log_vol = self._persistence * self._log_vol + self._shock * rng.gauss(0.0, 1.0)
        # Scaled so that the long-run variance of a step is the listing's, whatever the vol of vol.
        sigma = self._sigma * math.exp(self._log_vol - _VOL_OF_VOL**2)
        self.log_price += sigma * rng.gauss(0.0, 1.0)
        return math.exp(self.log_price)


class SimulatedMarket(OkxMarket):
    """The listings' books, moving at every ``stream_frames`` step; ``OkxServer`` serves it."""

    def __init__(
        self,
        listings: Sequence[Listing] = LISTINGS,
        *,
        seed: int = 1,
        depth: int = DEPTH,
        step_s: float = STEP_S,
        first_trade_id: int = FIRST_TRADE_ID,
        clock: Callable[[], int] = time.time_ns,
    ) -> None:
        super().__init__((), seed=seed, depth=depth, first_trade_id=first_trade_id, clock=clock)
        self.step_s = step_s
        self.listings = {listing.inst_id: listing for listing in listings}
        self._walks = {listing.inst_id: _VolatilityWalk(listing, step_s) for listing in listings}
        # The top of each book as the last ticker told it: (bid, its size, ask, its size).
        self._told: dict[str, tuple[int, int, int, int]] = {}
        # Each book's (bids, asks) as price ticks -> size units, kept beside the spelled levels
        # of the exchange's book: the walk works in units, and reading them back from the
        # spelled levels took a third of a step.
        self._sides: dict[str, tuple[dict[int, int], dict[int, int]]] = {}
        for listing in listings:
            book = ExchangeBook(
                seq=self.rng.randint(1_000, 100_000), decimals=listing.price_decimals
            )
            self.books[listing.inst_id] = book
            bids, asks = self._follow(listing, {}, {}, listing.price)
            self._sides[listing.inst_id] = bids, asks
            book.mid = round(listing.price * 10.0**listing.price_decimals)
            for ticks, units in bids.items():
                book.set("bids", book.price(ticks), _size_text(listing, units))
            for ticks, units in asks.items():
                book.set("asks", book.price(ticks), _size_text(listing, units))

    def prices(self) -> dict[str, str]:
        """The latest trade's price per instrument (the best bid before the first trade)."""
        return {
            inst_id: book.last[0] if book.last else self.best_bid(inst_id)
            for inst_id, book in self.books.items()
        }

    def stream_frames(self, step: int) -> list[tuple[str, str, str]]:
        frames: list[tuple[str, str, str]] = []
        for inst_id in self.books:
            frames += self._step(inst_id)
        return frames

    # -- one step of one instrument -------------------------------------------------------

    def _step(self, inst_id: str) -> list[tuple[str, str, str]]:
        listing, book = self.listings[inst_id], self.books[inst_id]
        frames: list[tuple[str, str, str]] = []
        for _ in range(self._poisson(listing.trades_per_s * self.step_s)):
            frames += self._trade(listing, book)
        mid = self._walks[inst_id].step(self.rng)
        book.mid = round(mid * 10.0**listing.price_decimals)
        bids, asks = self._sides[inst_id]
        new_bids, new_asks = self._follow(listing, bids, asks, mid)
        self._sides[inst_id] = new_bids, new_asks
        update = self.update_frame(
            inst_id,
            _changes(book, listing, bids, new_bids, descending=True),
            _changes(book, listing, asks, new_asks, descending=False),
        )
        frames.append(("books", inst_id, update))
        best_bid, best_ask = max(new_bids), min(new_asks)
        top = (best_bid, new_bids[best_bid], best_ask, new_asks[best_ask])
        if self._told.get(inst_id) != top:
            self._told[inst_id] = top
            frames.append(("tickers", inst_id, self.ticker_frame(inst_id)))
        return frames

    def _trade(self, listing: Listing, book: ExchangeBook) -> list[tuple[str, str, str]]:
        """A trade at the touch, and the books update taking its size off the touch."""
        inst_id = listing.inst_id
        side = self.rng.choice(("buy", "sell"))
        bids, asks = self._sides[inst_id]
        resting, ticks = (asks, min(asks)) if side == "buy" else (bids, max(bids))
        touch = resting[ticks]
        units = min(touch, self._draw_units(listing, listing.typical_size * _TRADE_SHARE))
        trade = self.trade_frame(inst_id, side=side, size=_size_text(listing, units))
        if units < touch:
            resting[ticks] = touch - units
        else:
            del resting[ticks]
        left = [[book.price(ticks), _size_text(listing, touch - units)]]
        if side == "buy":
            update = self.update_frame(inst_id, asks=left)
        else:
            update = self.update_frame(inst_id, bids=left)
        return [("trades", inst_id, trade), ("books", inst_id, update)]

    def _follow(
        self, listing: Listing, bids: dict[int, int], asks: dict[int, int], mid: float
    ) -> tuple[dict[int, int], dict[int, int]]:
        """The sides (price ticks -> size units) once the book has followed the mid to ``mid``."""
        mid_ticks = mid * 10.0**listing.price_decimals
        spread = self.rng.randint(2, 3) if self.rng.random() < _WIDE_SPREAD_ODDS else 1
        best_bid = math.floor(mid_ticks - spread / 2)
        return (
            self._side(listing, bids, best_bid, away=-1),
            self._side(listing, asks, best_bid + spread, away=1),
        )

    def _side(
        self, listing: Listing, levels: dict[int, int], touch: int, *, away: int
    ) -> dict[int, int]:
        """One side with its best level at ``touch``; ``away`` is the direction of worse prices."""

        # Best first: bids from the highest price, asks from the lowest.
        descending = away < 0
        # Levels the touch moved past were taken or pulled.
        kept = [
            ticks for ticks in sorted(levels, reverse=descending) if (ticks - touch) * away >= 0
        ]
        side = {ticks: levels[ticks] for ticks in kept}
        side.setdefault(touch, self._draw_units(listing, listing.typical_size))
        # Behind a touch that moved, new levels fill in, spaced like the rest.
        offset = self._gap(listing)
        while kept and offset < (kept[0] - touch) * away:
            side[touch + away * offset] = self._draw_units(listing, listing.typical_size)
            offset += self._gap(listing)
        order = sorted(side, reverse=descending)
        for _ in range(self.rng.randint(1, 2)):
            ticks = self.rng.choice(order[:_CHURN_LEVELS])
            if ticks != touch and self.rng.random() < _PULL_ODDS:
                del side[ticks]
                order.remove(ticks)
            else:
                side[ticks] = self._draw_units(listing, listing.typical_size)
        farthest = (order[-1] - touch) * away
        while len(side) < self.depth:
            farthest += self._gap(listing)
            side[touch + away * farthest] = self._draw_units(listing, listing.typical_size)
        for ticks in order[self.depth :]:
            del side[ticks]
        return side

    # -- draws ----------------------------------------------------------------------------

    def _gap(self, listing: Listing) -> int:
        return self.rng.randint(1, listing.level_spacing)

    def _draw_units(self, listing: Listing, median: float) -> int:
        size = self.rng.lognormvariate(math.log(median), 1.0)
        return max(1, round(size * 10.0**listing.size_decimals))

    def _poisson(self, mean: float) -> int:
        # Knuth's method: fine for the small means of one step.
        threshold, count, product = math.exp(-mean), 0, self.rng.random()
        while product > threshold:
            count += 1
            product *= self.rng.random()
        return count


def _size_text(listing: Listing, units: int) -> str:
    return decimal_text(units, listing.size_decimals)


def _changes(
    book: ExchangeBook,
    listing: Listing,
    old: dict[int, int],
    new: dict[int, int],
    *,
    descending: bool,
) -> list[list[str]]:
    """The levels that differ between two states of a side, as OKX lists them (size "0": gone)."""
    # A level that changed is in one side's (ticks, units) and not in the other's.
    changed = sorted({ticks for ticks, _ in old.items() ^ new.items()}, reverse=descending)
    return [[book.price(ticks), _size_text(listing, new.get(ticks, 0))] for ticks in changed]
