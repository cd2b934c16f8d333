"""The order book against a plain model of it, under random updates (Hypothesis)."""

from __future__ import annotations

from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from actors.book import OrderBook

PRICES = [f"{100 + n * 0.5:.2f}" for n in range(40)]
Operation = tuple[str, str, str]  # (side, price, size)

operations = st.lists(
    st.tuples(
        st.sampled_from(["bid", "ask", "truncate", "replace"]),
        st.sampled_from(PRICES),
        st.sampled_from(["0", "0.5", "1.25", "3", "10.000"]),
    ),
    max_size=120,
)


def _model_side(levels: dict[str, str], best_first_descending: bool) -> list[tuple[str, str]]:
    ordered = sorted(levels, key=Decimal, reverse=best_first_descending)
    return [(price, levels[price]) for price in ordered]


@settings(max_examples=300, deadline=None)
@given(operations, st.sampled_from([1, 3, 10, 25]))
def test_book_matches_a_plain_model_and_its_cached_tops_stay_true(
    ops: list[Operation], depth: int
) -> None:
    book = OrderBook("test:X-Y")
    bids: dict[str, str] = {}
    asks: dict[str, str] = {}
    for kind, price, size in ops:
        if kind == "bid" or kind == "ask":
            side = bids if kind == "bid" else asks
            (book.set_bid if kind == "bid" else book.set_ask)(price, size)
            if size == "0":
                side.pop(price, None)
            else:
                side[price] = size
        elif kind == "truncate":
            keep = PRICES.index(price) % 8
            book.truncate(keep)
            bids = dict(_model_side(bids, True)[:keep])
            asks = dict(_model_side(asks, False)[:keep])
        else:
            snapshot_bids = [(p, size) for p in PRICES[:20:3]]
            snapshot_asks = [(p, size) for p in PRICES[20::3]]
            book.replace(snapshot_bids, snapshot_asks)
            bids = {p: s for p, s in snapshot_bids if s != "0"}
            asks = {p: s for p, s in snapshot_asks if s != "0"}
        # Read the cached tops after every step, so stale caches would show.
        assert list(book.top_bids(depth)) == _model_side(bids, True)[:depth]
        assert list(book.top_asks(depth)) == _model_side(asks, False)[:depth]

    assert book.bids() == _model_side(bids, True)
    assert book.asks() == _model_side(asks, False)
    assert book.depth() == (len(bids), len(asks))
    assert book.best_bid() == (_model_side(bids, True) or [None])[0]
    assert book.best_ask() == (_model_side(asks, False) or [None])[0]


def test_unchanged_top_is_the_same_object_until_a_change_reaches_it() -> None:
    book = OrderBook("test:X-Y")
    book.replace([(f"{100 - n}", "1") for n in range(10)], [(f"{101 + n}", "1") for n in range(10)])
    top = book.top_bids(3)

    book.set_bid("92", "5")  # below the best three
    assert book.top_bids(3) is top
    book.set_bid("98", "2")  # the third level
    assert book.top_bids(3) is not top
    assert book.top_bids(3) == (("100", "1"), ("99", "1"), ("98", "2"))


def test_crossed_book_is_detected() -> None:
    book = OrderBook("test:X-Y")
    book.replace([("100", "1")], [("101", "1")])
    assert not book.is_crossed()

    book.set_bid("101.5", "1")

    assert book.is_crossed()
