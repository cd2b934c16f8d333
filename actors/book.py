"""The feed's per-level hot path: L2 order books, price-level validation and OKX's checksum.

Real book channels carry tens of levels per message and hundreds to thousands per snapshot;
every level is validated, placed in its book and, on checksummed venues, read again for the
checksum. Done level by level in Python that capped a feed far below its ingest target, so this
path is compiled (``actors/_book.c``, built by ``pip install``); the adapters decide what the
levels mean and keep everything else in Python.

``OrderBook(instrument)`` keeps each level as the exchange spelled it, a ``(price, size)`` tuple
of str, so checksums that exchanges compute over their own spelling can be reproduced exactly.
Levels are ordered by the price's value, best first. Methods:

- ``apply(bids, asks)``: changed levels, a size of zero (in any spelling) removes the level.
  ``replace(bids, asks)``: the book becomes a snapshot. Both take any sequences whose items'
  first two entries are a price and a size, check every number first and raise ``ValueError``
  naming the first bad one with the book unchanged. ``set_bid``/``set_ask`` change one level.
- ``truncate(depth)``, ``clear()``, ``depth()``, ``best_bid()``/``best_ask()``, ``is_crossed()``,
  ``bids(depth=None)``/``asks(depth=None)`` as lists.
- ``top_bids(depth)``/``top_asks(depth)``: the best levels as a tuple that stays the same object
  until a change reaches them, so a venue recomputes its checksum only when the top changed.

``price_levels(raw)`` reads a level array straight from the frame's JSON text
(``[["price", "size", ...], ...]``, as OKX and Binance send them) into checked ``(price, size)``
tuples: decoding a level list through a general JSON decoder first costs twice the rest of the
message. ``checked_levels(levels)`` checks levels already decoded. Both hold numbers to the rule of
``cluster.events.checked_decimal`` (positive prices, non-negative sizes).
``okx_checksum(bids, asks)`` is OKX's signed CRC32 over the best 25 levels per side.
"""

from __future__ import annotations

from actors._book import OrderBook, checked_levels, okx_checksum, price_levels

__all__ = ["OrderBook", "checked_levels", "okx_checksum", "price_levels"]
