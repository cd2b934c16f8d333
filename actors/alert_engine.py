"""Price alerts evaluated on prices as they stream (sans-IO: the evaluator actor feeds it).

Conditions: ``crosses_above`` / ``crosses_below`` fire when the price moves from one side of the
threshold to the other (the first price seen only sets the starting side); ``percent_move``
fires when the price has moved by at least ``threshold`` percent, either way, from any price
seen within the last ``window_s`` seconds of exchange time.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum

__all__ = ["Condition", "AlertRule", "Fired", "AlertEngine"]

_NS = 1_000_000_000


class Condition(StrEnum):
    crosses_above = "crosses_above"
    crosses_below = "crosses_below"
    percent_move = "percent_move"


@dataclass(frozen=True, slots=True)
class AlertRule:
    alert_id: str
    user_id: str
    instrument: str
    condition: Condition
    threshold: Decimal
    window_s: int | None = None


@dataclass(frozen=True, slots=True)
class Fired:
    rule: AlertRule
    price: Decimal
    exchange_ts_ns: int


class AlertEngine:
    def __init__(self) -> None:
        self._rules: dict[str, list[AlertRule]] = {}
        self._last: dict[str, Decimal] = {}
        # Per instrument: (exchange time, price) over the longest percent-move window asked for.
        self._history: dict[str, deque[tuple[int, Decimal]]] = {}
        self._horizon_ns: dict[str, int] = {}

    def set_rules(self, rules: list[AlertRule]) -> None:
        """Replace the active rules; prices seen so far are kept."""
        by_instrument: dict[str, list[AlertRule]] = {}
        for rule in rules:
            by_instrument.setdefault(rule.instrument, []).append(rule)
        self._rules = by_instrument
        self._horizon_ns = {
            instrument: max((r.window_s or 0) for r in found) * _NS
            for instrument, found in by_instrument.items()
        }
        for instrument in list(self._history):
            if not self._horizon_ns.get(instrument):
                del self._history[instrument]

    @property
    def instruments(self) -> set[str]:
        return set(self._rules)

    def on_price(self, instrument: str, price: Decimal, exchange_ts_ns: int) -> list[Fired]:
        rules = self._rules.get(instrument)
        previous = self._last.get(instrument)
        self._last[instrument] = price
        if not rules:
            return []
        history = self._window(instrument, price, exchange_ts_ns)
        fired = [
            Fired(rule, price, exchange_ts_ns)
            for rule in rules
            if _fires(rule, previous, price, history, exchange_ts_ns)
        ]
        if fired:
            spent = {f.rule.alert_id for f in fired}
            self._rules[instrument] = [r for r in rules if r.alert_id not in spent]
        return fired

    def _window(
        self, instrument: str, price: Decimal, exchange_ts_ns: int
    ) -> deque[tuple[int, Decimal]]:
        horizon = self._horizon_ns.get(instrument, 0)
        history = self._history.setdefault(instrument, deque())
        if horizon:
            history.append((exchange_ts_ns, price))
            while history and history[0][0] < exchange_ts_ns - horizon:
                history.popleft()
        return history


def _fires(
    rule: AlertRule,
    previous: Decimal | None,
    price: Decimal,
    history: deque[tuple[int, Decimal]],
    exchange_ts_ns: int,
) -> bool:
    if rule.condition is Condition.crosses_above:
        return previous is not None and previous <= rule.threshold < price
    if rule.condition is Condition.crosses_below:
        return previous is not None and previous >= rule.threshold > price
    assert rule.window_s is not None
    since = exchange_ts_ns - rule.window_s * _NS
    return any(
        then > 0 and abs(price / then - 1) * 100 >= rule.threshold
        for at, then in history
        if at >= since
    )
