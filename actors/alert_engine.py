"""Price alerts evaluated on prices as they stream (sans-IO: the evaluator actor feeds it).

Conditions: ``crosses_above`` / ``crosses_below`` fire when the price moves from one side of the
threshold to the other (the first price seen only sets the starting side); ``percent_move``
fires when the price has moved by at least ``threshold`` percent, either way, from any price
seen within the last ``window_s`` seconds of exchange time.

Prices are the exchange's record, which it may revise: a trade it corrects or cancels afterwards
(``on_revision``) is corrected or dropped in what the engine remembers, the last price and the
windows, so a withdrawn print is never the side a later price crosses from, nor the start of a
move. A revision fires nothing itself; an alert already fired on the withdrawn print stays fired.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum

__all__ = ["Condition", "AlertRule", "Fired", "AlertEngine"]

_NS = 1_000_000_000
# Trades per instrument whose revision is still applied; exchanges revise recent trades, and
# one older than this many later trades no longer decides the last price.
_REVISABLE = 256


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
        # Per instrument: the latest prices as (trade id, price), the last one is the price now.
        self._latest: dict[str, deque[tuple[str | None, Decimal]]] = {}
        # Per instrument: (exchange time, price, trade id) over the longest percent-move window
        # asked for.
        self._history: dict[str, deque[tuple[int, Decimal, str | None]]] = {}
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

    def on_price(
        self, instrument: str, price: Decimal, exchange_ts_ns: int, trade_id: str | None = None
    ) -> list[Fired]:
        """Judge the rules on ``price``; ``trade_id`` names the trade, so that the exchange's
        revision of it can be applied (a bar's close has none)."""
        latest = self._latest.setdefault(instrument, deque(maxlen=_REVISABLE))
        previous = latest[-1][1] if latest else None
        latest.append((trade_id, price))
        rules = self._rules.get(instrument)
        if not rules:
            return []
        history = self._window(instrument, price, exchange_ts_ns, trade_id)
        fired = [
            Fired(rule, price, exchange_ts_ns)
            for rule in rules
            if _fires(rule, previous, price, history, exchange_ts_ns)
        ]
        if fired:
            spent = {f.rule.alert_id for f in fired}
            self._rules[instrument] = [r for r in rules if r.alert_id not in spent]
        return fired

    def on_revision(
        self, instrument: str, trade_id: str, price: Decimal | None, new_trade_id: str | None = None
    ) -> None:
        """The exchange corrected trade ``trade_id`` to ``price`` (under ``new_trade_id`` when
        it gave the corrected trade another id), or withdrew it (``price`` None)."""
        revised_id = new_trade_id or trade_id
        if latest := self._latest.get(instrument):
            latest_kept: list[tuple[str | None, Decimal]] = []
            for seen, then in latest:
                if seen != trade_id:
                    latest_kept.append((seen, then))
                elif price is not None:
                    latest_kept.append((revised_id, price))
            self._latest[instrument] = deque(latest_kept, maxlen=_REVISABLE)
        if history := self._history.get(instrument):
            history_kept: list[tuple[int, Decimal, str | None]] = []
            for at, then, seen in history:
                if seen != trade_id:
                    history_kept.append((at, then, seen))
                elif price is not None:
                    history_kept.append((at, price, revised_id))
            self._history[instrument] = deque(history_kept)

    def _window(
        self, instrument: str, price: Decimal, exchange_ts_ns: int, trade_id: str | None
    ) -> deque[tuple[int, Decimal, str | None]]:
        horizon = self._horizon_ns.get(instrument, 0)
        history = self._history.setdefault(instrument, deque())
        if horizon:
            history.append((exchange_ts_ns, price, trade_id))
            while history and history[0][0] < exchange_ts_ns - horizon:
                history.popleft()
        return history


def _fires(
    rule: AlertRule,
    previous: Decimal | None,
    price: Decimal,
    history: deque[tuple[int, Decimal, str | None]],
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
        for at, then, _ in history
        if at >= since
    )
