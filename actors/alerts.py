"""The alert evaluator: one long-lived actor that watches the prices of instruments with alerts
waiting, fires them once, and delivers each to its user's alert stream for the live feed.

Prices are trade prices and bar closes, read from the same Redis streams as everyone else (one
XREAD over the instruments concerned). Waiting alerts are re-read from Postgres every second, so
alerts created or deleted over REST take effect without any call between the two.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from decimal import Decimal, InvalidOperation

import asyncpg
import msgspec
import ray
import redis.asyncio as aioredis
import redis.exceptions
from ray.util.metrics import Counter, Gauge
from redis.typing import KeyT, StreamIdT

from actors.alert_engine import AlertEngine, Fired
from actors.alert_store import mark_triggered, waiting_rules
from core.events import (
    AlertTriggered,
    AnyEvent,
    Bar,
    Trade,
    TradeCancel,
    TradeCorrection,
    decode_event,
    encode_event,
)
from core.redis_keys import EVENT_FIELD, alert_stream_key, stream_key
from core.redis_replies import stream_entries, stream_reads
from core.stream_ids import read_lag_s

__all__ = ["ALERTS_ACTOR_NAME", "AlertEvaluator", "AlertsReport", "AlertEvaluatorCore"]

log = logging.getLogger(__name__)

ALERTS_ACTOR_NAME = "alerts"
_RELOAD_S = 1.0
_BLOCK_MS = 200
_RETRY_S = 1.0
_ALERT_STREAM_MAXLEN = 1_000


class AlertEvaluatorCore:
    def __init__(
        self,
        redis_url: str,
        database_url: str,
        on_fired: Callable[[], None] | None = None,
        on_read: Callable[[float], None] | None = None,
    ) -> None:
        self._redis = aioredis.from_url(redis_url, socket_timeout=5)
        self._on_fired = on_fired
        # Told how far behind the publishers each read of the streams is, in seconds.
        self._on_read = on_read
        self._database_url = database_url
        self._pool: asyncpg.Pool | None = None
        self._engine = AlertEngine()
        # Typed as XREAD takes it: redis-py asks for a Dict of any key and id spelling.
        self._positions: dict[KeyT, StreamIdT] = {}
        self.fired = 0
        self.errors = 0
        self.waiting = 0

    async def run(self, stop: asyncio.Event) -> None:
        reloaded = 0.0
        while not stop.is_set():
            try:
                if time.monotonic() - reloaded >= _RELOAD_S:
                    await self._reload()
                    reloaded = time.monotonic()
                await self._evaluate()
            except (redis.exceptions.RedisError, OSError, asyncpg.PostgresError) as error:
                # Redis or Postgres away: alerts wait, nothing is lost (streams keep the prices).
                self.errors += 1
                log.warning("alert evaluation paused: %s", type(error).__name__)
                await asyncio.sleep(_RETRY_S)

    async def close(self) -> None:
        if self._pool is not None:
            await self._pool.close()
        await self._redis.aclose()

    async def _reload(self) -> None:
        if self._pool is None:
            self._pool = await asyncpg.create_pool(self._database_url, min_size=1, max_size=2)
        rules = await waiting_rules(self._pool)
        self._engine.set_rules(rules)
        self.waiting = len(rules)
        wanted = {
            stream_key(channel, instrument)
            for instrument in self._engine.instruments
            for channel in ("trades", "bars")
        }
        for key in set(self._positions) - wanted:
            del self._positions[key]
        for key in wanted - set(self._positions):
            newest = stream_entries(await self._redis.xrevrange(key, count=1))
            self._positions[key] = newest[0][0].decode() if newest else "0-0"

    async def _evaluate(self) -> None:
        if not self._positions:
            await asyncio.sleep(_BLOCK_MS / 1000)
            return
        replies = stream_reads(
            await self._redis.xread(self._positions, count=1_000, block=_BLOCK_MS)
        )
        if self._on_read is not None:
            self._on_read(read_lag_s(replies))
        for key, entries in replies:
            for entry_id, fields in entries:
                self._positions[key.decode()] = entry_id.decode()
                for fired in self._fire(fields):
                    await self._deliver(fired)

    def _fire(self, fields: dict[bytes, bytes]) -> list[Fired]:
        try:
            event = decode_event(fields[EVENT_FIELD])
        except (KeyError, msgspec.ValidationError, msgspec.DecodeError):
            return []
        try:
            return self._judge(event)
        except InvalidOperation:  # a price that is no number: nothing to judge
            return []

    def _judge(self, event: AnyEvent) -> list[Fired]:
        """Fired alerts of a price event; a correction or cancel revises the prices seen."""
        engine = self._engine
        if isinstance(event, Trade):
            return engine.on_price(
                event.instrument, Decimal(event.price), event.exchange_ts_ns, event.trade_id
            )
        if isinstance(event, Bar):
            return engine.on_price(event.instrument, Decimal(event.close), event.exchange_ts_ns)
        if isinstance(event, TradeCorrection):
            engine.on_revision(
                event.instrument,
                event.original_trade_id,
                Decimal(event.corrected_price),
                event.corrected_trade_id,
            )
        elif isinstance(event, TradeCancel):
            engine.on_revision(event.instrument, event.trade_id, None)
        return []

    async def _deliver(self, fired: Fired) -> None:
        assert self._pool is not None
        rule = fired.rule
        if not await mark_triggered(self._pool, rule.alert_id, fired.price):
            return
        now = time.time_ns()
        event = AlertTriggered(
            instrument=rule.instrument,
            exchange_ts_ns=fired.exchange_ts_ns,
            receive_ts_ns=now,
            user_id=rule.user_id,
            alert_id=rule.alert_id,
            condition=rule.condition.value,
            threshold=format(rule.threshold, "f"),
            price=format(fired.price, "f"),
            window_s=rule.window_s,
        )
        await self._redis.xadd(
            alert_stream_key(rule.user_id),
            {EVENT_FIELD: encode_event(event)},
            maxlen=_ALERT_STREAM_MAXLEN,
            approximate=True,
        )
        self.fired += 1
        if self._on_fired is not None:
            self._on_fired()


class AlertsReport(msgspec.Struct, frozen=True, kw_only=True):
    running: bool
    waiting: int
    fired: int
    errors: int


@ray.remote(max_restarts=-1, num_cpus=0.1)
class AlertEvaluator:
    """The evaluator as a long-lived Ray actor; restarted by Ray if its process dies."""

    def __init__(self, redis_url: str, database_url: str) -> None:
        fired = Counter("finone_alerts_fired", "Alerts fired and delivered to their user")
        lag = Gauge(
            "finone_alerts_stream_lag_seconds",
            "Age of the newest trade or bar the alert evaluator just read (0 when none was new)",
        )
        self._core = AlertEvaluatorCore(
            redis_url, database_url, on_fired=fired.inc, on_read=lag.set
        )
        self._stop = asyncio.Event()
        self._task = asyncio.get_running_loop().create_task(self._core.run(self._stop))

    async def status(self) -> AlertsReport:
        return AlertsReport(
            running=not self._task.done(),
            waiting=self._core.waiting,
            fired=self._core.fired,
            errors=self._core.errors,
        )

    async def shutdown(self) -> None:
        self._stop.set()
        await asyncio.wait([self._task], timeout=10)
        await self._core.close()
