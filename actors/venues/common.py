"""Pieces of frame reading that several venue adapters share.

How a venue marks an empty side of its ticker, or spells its numbers, is its protocol and stays
in its module; what follows is the same for every venue that comes to it.
"""

from __future__ import annotations

from actors.venues.base import Problem
from core.events import checked_decimal

__all__ = ["QuoteSide", "excerpt", "quote_side", "unknown_symbol"]

# (price, size) of one side of a best bid/offer; both None when that side of the book is empty.
QuoteSide = tuple[str | None, str | None]


def quote_side(price: str, size: str) -> QuoteSide:
    """One side of a best bid/offer from the venue's decimal text: (None, None) when nothing is
    offered (a zero size, however spelled). ValueError when either is no decimal number, and for
    a zero price with something offered at it."""
    checked_decimal(size, allow_zero=True)
    checked_decimal(price, allow_zero=True)
    if float(size) == 0.0:
        return None, None
    return checked_decimal(price), size


def excerpt(frame: str | bytes, limit: int = 200) -> str:
    """The first ``limit`` characters of a frame, for a problem's detail."""
    text = frame if isinstance(frame, str) else frame.decode("utf-8", "replace")
    return text[:limit]


def unknown_symbol(what: str, symbol: str) -> Problem:
    """Data (``what``: "trade", "book"...) about a symbol this adapter does not stream."""
    return Problem("unknown_message", f"{what} for unknown symbol {symbol!r}")
