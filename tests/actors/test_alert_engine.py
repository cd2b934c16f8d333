"""Alert conditions on a price path."""

from __future__ import annotations

from decimal import Decimal

from actors.alert_engine import AlertEngine, AlertRule, Condition

S = 1_000_000_000


def _rule(condition: Condition, threshold: str, window_s: int | None = None) -> AlertRule:
    return AlertRule(
        f"a-{condition}", "u1", "okx:BTC-USDT", condition, Decimal(threshold), window_s
    )


def _run(engine: AlertEngine, prices: list[str], step_s: int = 1) -> list[tuple[int, str]]:
    fired = []
    for n, price in enumerate(prices):
        for f in engine.on_price("okx:BTC-USDT", Decimal(price), n * step_s * S):
            fired.append((n, f.rule.alert_id))
    return fired


def test_crosses_fire_once_when_the_price_moves_through_the_threshold() -> None:
    engine = AlertEngine()
    engine.set_rules([_rule(Condition.crosses_above, "100"), _rule(Condition.crosses_below, "90")])

    fired = _run(engine, ["95", "100", "100.01", "99", "101", "89.99", "80", "95", "85"])

    assert fired == [(2, "a-crosses_above"), (5, "a-crosses_below")]


def test_a_price_already_beyond_the_threshold_does_not_fire_without_crossing() -> None:
    engine = AlertEngine()
    engine.set_rules([_rule(Condition.crosses_above, "100")])

    assert _run(engine, ["150", "160"]) == []


def test_percent_move_fires_within_its_window_only() -> None:
    slow = AlertEngine()
    slow.set_rules([_rule(Condition.percent_move, "5", window_s=3)])
    fast = AlertEngine()
    fast.set_rules([_rule(Condition.percent_move, "5", window_s=3)])

    # +6% over 6 seconds (1% a second): never 5% within 3 seconds.
    assert _run(slow, ["100", "101", "102", "103", "104", "105", "106"]) == []
    # -5% within 2 seconds.
    assert _run(fast, ["100", "99", "95"]) == [(2, "a-percent_move")]


def test_other_instruments_and_removed_rules_do_not_fire() -> None:
    engine = AlertEngine()
    engine.set_rules([_rule(Condition.crosses_above, "100")])
    assert engine.on_price("okx:ETH-USDT", Decimal("1"), 0) == []
    engine.on_price("okx:BTC-USDT", Decimal("99"), 0)

    engine.set_rules([])

    assert engine.on_price("okx:BTC-USDT", Decimal("101"), S) == []


def test_a_corrected_or_cancelled_trade_is_revised_in_the_move_window() -> None:
    engine = AlertEngine()
    engine.set_rules([_rule(Condition.percent_move, "5", window_s=10)])
    instrument = "okx:BTC-USDT"

    assert engine.on_price(instrument, Decimal("100"), 0, "1") == []
    assert engine.on_price(instrument, Decimal("104"), S, "2") == []
    # Corrected to 94 (as trade 2c): a revision fires nothing itself.
    engine.on_revision(instrument, "2", Decimal("94"), "2c")
    # 98.5 is 1.5% from 100 and 4.8% from 94 (5.3% from the corrected 104).
    assert engine.on_price(instrument, Decimal("98.5"), 2 * S, "3") == []
    engine.on_revision(instrument, "2c", None)
    # 98.9 is 1.1% from 100 and 0.4% from 98.5 (5.2% from the cancelled 94).
    assert engine.on_price(instrument, Decimal("98.9"), 3 * S, "4") == []
    # The rule is still armed: 104.9 is 6.5% from 98.5.
    fired = engine.on_price(instrument, Decimal("104.9"), 4 * S, "5")
    assert [f.price for f in fired] == [Decimal("104.9")]


def test_a_revision_of_a_trade_not_seen_changes_nothing() -> None:
    engine = AlertEngine()
    engine.set_rules([_rule(Condition.crosses_above, "100")])
    engine.on_price("okx:BTC-USDT", Decimal("99"), 0, "1")

    engine.on_revision("okx:BTC-USDT", "unknown", None)
    engine.on_revision("okx:ETH-USDT", "1", Decimal("150"))

    assert [f.price for f in engine.on_price("okx:BTC-USDT", Decimal("101"), S, "2")] == [
        Decimal("101")
    ]
