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
- ``apply_json(bids, asks)``/``replace_json(bids, asks)``: the same, with the levels read
  straight from the JSON text of the frame's two level arrays (``[["price", "size", ...],
  ...]``, as OKX and Binance send them; bytes or ``msgspec.Raw``); ``apply_json`` returns the
  levels it applied as ``(bids, asks)`` lists, the delta to publish. Decoding a level list
  through a general JSON decoder first, then checking each number, then reading it again to
  place it, cost twice the rest of the message; here each number is read once.
- ``truncate(depth)``, ``clear()``, ``depth()``, ``best_bid()``/``best_ask()``, ``is_crossed()``,
  ``bids(depth=None)``/``asks(depth=None)`` as lists.
- ``top_bids(depth)``/``top_asks(depth)``: the best levels as a tuple that stays the same object
  until a change reaches them, so a venue recomputes its checksum only when the top changed.
- ``okx_checksum()``: ``okx_checksum`` of the book's best levels, recomputed only when a change
  reached them.

``checked_levels(levels)`` checks levels already decoded. Every reader of levels holds numbers to
the rule of ``core.events.checked_decimal`` (positive prices, non-negative sizes).
``okx_checksum(bids, asks)`` is OKX's signed CRC32 over the best 25 levels per side.
"""

from __future__ import annotations

from actors._book import OrderBook, checked_levels, okx_checksum

__all__ = ["OrderBook", "checked_levels", "okx_checksum"]
