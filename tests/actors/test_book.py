"""The compiled order book: against a plain model under random updates (Hypothesis), against
the schema's number rule, and for what it keeps alive."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from actors.book import OrderBook, checked_levels, okx_checksum
from core.events import checked_decimal

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


# The compiled book reads numbers itself; it must agree with the schema's rule everywhere.
number_text = st.text(alphabet="0123456789.eE+- x", max_size=12) | st.decimals(
    min_value=0, max_value=10**12, allow_nan=False, allow_infinity=False
).map(str)


@settings(max_examples=2_000, deadline=None)
@given(number_text)
def test_levels_follow_the_schema_number_rule(text: str) -> None:
    try:
        checked_decimal(text)
        price_ok = True
    except ValueError:
        price_ok = False
    try:
        checked_decimal(text, allow_zero=True)
        size_ok = True
    except ValueError:
        size_ok = False

    assert _accepted(lambda: checked_levels([(text, "1")])) == price_ok
    assert _accepted(lambda: checked_levels([("1", text)])) == size_ok
    as_json = json.dumps(text).encode()
    assert _accepted(lambda: json_levels(b'[[%s, "1"]]' % as_json)) == price_ok
    assert _accepted(lambda: json_levels(b'[["1", %s, "0", "4"]]' % as_json)) == size_ok
    if price_ok:
        book = OrderBook("test:X-Y")
        book.set_bid(text, "1")
        book.set_ask(text, "2")
        assert book.best_bid() == (text, "1")
    if size_ok:
        book = OrderBook("test:X-Y")
        book.set_bid("5", "1")
        book.set_bid("5", text)
        assert book.depth() == ((0, 0) if float(text) == 0.0 else (1, 0))


def json_levels(raw: bytes) -> list[tuple[str, str]]:
    """The bid levels ``apply_json`` reads from ``raw`` into an empty book."""
    bids, _ = OrderBook("test:X-Y").apply_json(raw, b"[]")
    return bids


def _accepted(call: Callable[[], object]) -> bool:
    try:
        call()
    except ValueError:
        return False
    return True


@settings(max_examples=300, deadline=None)
@given(st.lists(st.decimals(min_value="0.00000001", max_value=10**9, places=8), max_size=60))
def test_levels_order_by_value_whatever_the_spelling(values: list[Decimal]) -> None:
    spellings = [_spelled(value, n) for n, value in enumerate(values)]
    book = OrderBook("test:X-Y")
    book.replace([(text, "1") for text in spellings], [])

    by_value: dict[float, str] = {}
    for text in spellings:
        by_value[float(text)] = text  # one level per value: the last spelling wins
    expected = [by_value[key] for key in sorted(by_value, reverse=True)]
    assert [price for price, _ in book.bids()] == expected


def _spelled(value: Decimal, n: int) -> str:
    """The same number as exchanges variously write it."""
    plain = format(value, "f")
    if n % 3 == 1 and "." in plain:
        return plain + "000"
    if n % 3 == 2:
        return format(value, "e") if value else plain
    return plain


def test_a_bad_level_changes_nothing() -> None:
    book = OrderBook("test:X-Y")
    book.replace([("100", "1")], [("101", "1")])

    book.apply([["99.5", "2", "0", "4"]], [("101", "0")])
    assert book.bids() == [("100", "1"), ("99.5", "2")]
    assert book.asks() == []

    for bad in (["-1", "1"], ["1", "abc"], ["1"], "1:1", [1.5, "1"], ["0", "1"], ["1", " 1"]):
        with pytest.raises(ValueError):
            book.apply([("98", "1")], [bad])
    assert book.bids() == [("100", "1"), ("99.5", "2")]


def test_levels_read_from_json_as_venues_send_them() -> None:
    okx = b'[["8476.98", "415", "0", "13"], ["8477", "7", "0", "2"]]'
    binance = b' [ ["0.0024","10"] ,\n["0.0023", "0.000"]]'

    assert json_levels(okx) == [("8476.98", "415"), ("8477", "7")]
    assert json_levels(binance) == [("0.0024", "10"), ("0.0023", "0.000")]
    assert json_levels(b"[]") == []

    for bad in (
        b'[["1"]]',  # no size
        b'[[1.5, "1"]]',  # numbers must be strings, as the venues send them
        b'[["1", "1"]',  # unclosed
        b'[["1", "1"]] x',  # trailing text
        b'[["\\u0031", "1"]]',  # escapes never spell a number the venues send
        b'[["1", "1", ["nested"]]]',
        b'{"price": "1"}',
        b'[["0", "1"]]',  # prices are positive
        b'[["1", "-1"]]',
    ):
        with pytest.raises(ValueError):
            json_levels(bad)


def test_json_levels_change_the_book_as_decoded_levels_do() -> None:
    snapshot_bids = [["100", "1", "0", "1"], ["99", "2", "0", "1"], ["98", "3", "0", "1"]]
    snapshot_asks = [["101", "1", "0", "1"], ["102", "2", "0", "1"]]
    bids = [["99", "0", "0", "0"], ["99.5", "4", "0", "1"]]
    asks = [["101", "1.5", "0", "2"]]
    from_json, decoded = OrderBook("test:X-Y"), OrderBook("test:X-Y")
    from_json.replace_json(json.dumps(snapshot_bids).encode(), json.dumps(snapshot_asks).encode())
    decoded.replace(snapshot_bids, snapshot_asks)

    changed = from_json.apply_json(json.dumps(bids).encode(), json.dumps(asks).encode())
    decoded.apply(bids, asks)

    assert changed == ([("99", "0"), ("99.5", "4")], [("101", "1.5")])
    assert (from_json.bids(), from_json.asks()) == (decoded.bids(), decoded.asks())
    assert from_json.bids() == [("100", "1"), ("99.5", "4"), ("98", "3")]


def test_json_levels_with_one_bad_number_change_nothing() -> None:
    book = OrderBook("test:X-Y")
    book.replace_json(b'[["100", "1"]]', b'[["101", "1"]]')

    with pytest.raises(ValueError, match="abc"):
        book.apply_json(b'[["99", "5"]]', b'[["101", "0"], ["102", "abc"]]')
    with pytest.raises(ValueError):
        book.replace_json(b'[["99", "5"]]', b'[["0", "1"]]')

    assert (book.bids(), book.asks()) == ([("100", "1")], [("101", "1")])


def test_levels_are_released_when_the_book_lets_them_go() -> None:
    price, size = "".join(["123.", "45"]), "".join(["6.", "7"])  # objects of this test alone
    baseline = (sys.getrefcount(price), sys.getrefcount(size))
    book = OrderBook("test:X-Y")
    for _ in range(100):
        book.replace([(price, size)], [[price + "1", size, "0", "1"]])
        book.apply([(price, size), (price, "0")], [])
        book.top_bids(5)
        book.okx_checksum()
        book.set_ask(price + "1", size)
        book.truncate(0)
    book.replace([(price, size)], [])
    book.clear()

    assert (sys.getrefcount(price), sys.getrefcount(size)) == baseline


def test_okx_checksum_reads_lists_and_tuples_alike() -> None:
    bids = [["3366.1", "7", "0", "1"], ["3366", "6", "0", "2"]]
    asks = [("3366.8", "9")]

    assert okx_checksum(bids, asks) == okx_checksum([tuple(b[:2]) for b in bids], asks)
    with pytest.raises(ValueError):
        okx_checksum([("3366.1",)], asks)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.booleans(),
            st.integers(min_value=1, max_value=60),
            st.sampled_from(["0", "1", "2.5", "10"]),
        ),
        max_size=80,
    )
)
def test_book_checksum_follows_every_change_that_reaches_the_top(
    changes: list[tuple[bool, int, str]],
) -> None:
    book = OrderBook("test:X-Y")
    book.replace(
        [(str(1000 - n), "1") for n in range(30)], [(str(1001 + n), "1") for n in range(30)]
    )
    for is_bid, offset, size in changes:
        if is_bid:
            book.set_bid(str(1000 - offset), size)
        else:
            book.set_ask(str(1000 + offset), size)
        if book.is_crossed():
            book.set_ask(str(1000 + offset), "0")
            book.set_bid(str(1000 - offset), "0")
        assert book.okx_checksum() == okx_checksum(book.bids(), book.asks())
