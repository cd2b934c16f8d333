"""The recorder: persists every trade from the Redis streams to Postgres, with 1 s and 1 min bars.

It reads the trade and bar streams as a consumer group. A batch is written in one transaction —
trades inserted with ``ON CONFLICT DO NOTHING``, then the bars of every bucket the batch touched
recomputed from the stored trades — and only then acknowledged with ``XACK``. Bars a venue
publishes itself (daily bars, klines) are stored too, without overwriting: bars computed from
recorded trades take precedence. A recorder killed at any point leaves its entries pending; the
restarted one finishes them first, and the unique keys make the replay harmless: nothing is lost,
nothing is duplicated.

Trade corrections and cancels travel on the trade streams and are applied in the same
transaction, in stream order: a correction replaces the original trade with the corrected one
(its id, price and size, at the original's time), a cancel or error deletes it; the bars of the
buckets they touch are recomputed from the stored trades like any others, and a bucket left
without trades loses its bars. A revision whose trade is gone (revised already, or never
recorded) changes nothing, and a replay repeats a trade before its revision, so replays stay
harmless.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from dataclasses import dataclass

import asyncpg
import msgspec
import ray
import redis.asyncio as aioredis
from ray.util.metrics import Counter, Gauge
from redis.exceptions import RedisError, ResponseError

from core.events import (
    AnyEvent,
    Bar,
    Trade,
    TradeCancel,
    TradeCorrection,
    checked_decimal,
    decode_event,
)
from core.intervals import INTERVAL_NS
from core.redis_keys import EVENT_FIELD, stream_key
from core.redis_replies import StreamReads, stream_reads

__all__ = [
    "Recorder",
    "RecorderReport",
    "RecorderCore",
    "BAR_INTERVALS",
    "RECORDER_ACTOR_NAME",
    "CONSUMER_GROUP",
]

log = logging.getLogger(__name__)

RECORDER_ACTOR_NAME = "recorder"
CONSUMER_GROUP = "recorder"
BAR_INTERVALS: dict[str, int] = {i: INTERVAL_NS[i] for i in ("1s", "1m")}
DISCOVERY_INTERVAL_S = 5.0

# (instrument_id, trade_id, exchange_ts_ns, receive_ts_ns, price, size, side), as stored.
_TradeRow = tuple[str, str, int, int, str, str, str | None]
# What a batch does, in stream order: insert a run of trades, or revise one earlier trade.
_Step = list[_TradeRow] | TradeCorrection | TradeCancel

_INSERT_VENUE_BARS = """
INSERT INTO bars (instrument_id, interval, start_ts_ns, open, high, low, close, volume,
                  trade_count, vwap)
SELECT * FROM unnest($1::text[], $2::text[], $3::bigint[], $4::numeric[], $5::numeric[],
                     $6::numeric[], $7::numeric[], $8::numeric[], $9::bigint[], $10::numeric[])
ON CONFLICT (instrument_id, interval, start_ts_ns) DO NOTHING
"""

_UPSERT_BARS = """
WITH touched AS (
    SELECT * FROM unnest($1::text[], $2::bigint[]) AS touched(instrument_id, bucket)
), emptied AS (
    -- A bucket whose last trade was canceled has no bar any more.
    DELETE FROM bars USING touched
    WHERE bars.instrument_id = touched.instrument_id AND bars.interval = $3
      AND bars.start_ts_ns = touched.bucket
      AND NOT EXISTS (
          SELECT FROM trades
          WHERE trades.instrument_id = touched.instrument_id
            AND trades.exchange_ts_ns >= touched.bucket
            AND trades.exchange_ts_ns < touched.bucket + $4
      )
)
INSERT INTO bars (instrument_id, interval, start_ts_ns, open, high, low, close, volume,
                  trade_count, vwap)
SELECT t.instrument_id, $3::text, t.bucket,
       (array_agg(t.price ORDER BY t.exchange_ts_ns, t.receive_ts_ns, t.trade_id))[1],
       max(t.price), min(t.price),
       (array_agg(t.price
                  ORDER BY t.exchange_ts_ns DESC, t.receive_ts_ns DESC, t.trade_id DESC))[1],
       sum(t.size), count(*), sum(t.price * t.size) / sum(t.size)
FROM (
    SELECT trades.*, trades.exchange_ts_ns - trades.exchange_ts_ns % $4 AS bucket
    FROM trades
    JOIN touched
      ON trades.instrument_id = touched.instrument_id
     AND trades.exchange_ts_ns >= touched.bucket
     AND trades.exchange_ts_ns < touched.bucket + $4
) AS t
GROUP BY t.instrument_id, t.bucket
ON CONFLICT (instrument_id, interval, start_ts_ns) DO UPDATE SET
    open = EXCLUDED.open, high = EXCLUDED.high, low = EXCLUDED.low, close = EXCLUDED.close,
    volume = EXCLUDED.volume, trade_count = EXCLUDED.trade_count, vwap = EXCLUDED.vwap
"""

# The corrected trade keeps the original's times and side. When a replay has inserted the
# original again beside its already corrected self, the original just gives way.
_CORRECT_TRADE = """
WITH original AS (
    DELETE FROM trades WHERE instrument_id = $1 AND trade_id = $2
    RETURNING exchange_ts_ns, receive_ts_ns, side
)
INSERT INTO trades (instrument_id, trade_id, exchange_ts_ns, receive_ts_ns, price, size, side)
SELECT $1, $3, exchange_ts_ns, receive_ts_ns, $4::numeric, $5::numeric, side FROM original
ON CONFLICT (instrument_id, trade_id) DO UPDATE SET price = EXCLUDED.price, size = EXCLUDED.size
RETURNING exchange_ts_ns
"""

_CANCEL_TRADE = """
DELETE FROM trades WHERE instrument_id = $1 AND trade_id = $2 RETURNING exchange_ts_ns
"""


@dataclass
class RecorderStats:
    batches: int = 0
    entries: int = 0
    trades_written: int = 0
    # Stored trades corrected or deleted by the exchange's corrections and cancels.
    trades_revised: int = 0
    bars_written: int = 0
    skipped: int = 0
    errors: int = 0
    streams: int = 0
    last_commit_ns: int | None = None
    # Redis's own time (ms) of the newest entry committed, from its stream id.
    newest_committed_ms: int | None = None
    # The last read took every entry there was, and it is committed.
    caught_up: bool = False


class RecorderCore:
    """The recording loop, independent of Ray so it can be driven directly too."""

    def __init__(
        self,
        redis_url: str,
        database_url: str,
        *,
        consumer: str = "recorder-1",
        batch_size: int = 2_000,
        block_ms: int = 500,
    ) -> None:
        self._redis = aioredis.from_url(redis_url, socket_timeout=10, socket_connect_timeout=5)
        self._database_url = database_url
        self._pool: asyncpg.Pool | None = None
        self.consumer = consumer
        self.batch_size = batch_size
        self.block_ms = block_ms
        self.stats = RecorderStats()
        self._streams: set[str] = set()
        self._last_discovery = 0.0

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                await self._run_until_failure(stop)
            except (RedisError, OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as error:
                self.stats.errors += 1
                self.stats.caught_up = False
                log.error("recorder paused after %s: %s; retrying", type(error).__name__, error)
                # Whatever was not acknowledged stays pending and is taken up again below.
                self._last_discovery = 0.0
                await asyncio.sleep(1.0)

    async def close(self) -> None:
        if self._pool is not None:
            await self._pool.close()
        await self._redis.aclose()

    async def _run_until_failure(self, stop: asyncio.Event) -> None:
        if self._pool is None:
            self._pool = await asyncpg.create_pool(self._database_url, min_size=1, max_size=2)
        await self._discover()
        # Entries delivered before a crash and never acknowledged come first ("0"), then new ones.
        await self._drain_pending()
        while not stop.is_set():
            if time.monotonic() - self._last_discovery > DISCOVERY_INTERVAL_S:
                await self._discover()
            if not self._streams:
                await asyncio.sleep(self.block_ms / 1000)
                continue
            replies = stream_reads(
                await self._redis.xreadgroup(
                    CONSUMER_GROUP,
                    self.consumer,
                    {key: ">" for key in self._streams},
                    count=self.batch_size,
                    block=self.block_ms,
                )
            )
            if replies:
                await self._record(replies)
            else:
                self.stats.caught_up = True

    async def _discover(self) -> None:
        """Find every trade and bar stream (instruments appear while running); join their group."""
        found: set[str] = set()
        for channel in ("trades", "bars"):
            pattern = stream_key(channel, "*")
            found |= {
                key.decode() async for key in self._redis.scan_iter(match=pattern, _type="stream")
            }
        for key in found - self._streams:
            try:
                await self._redis.xgroup_create(key, CONSUMER_GROUP, id="0", mkstream=True)
            except ResponseError as error:
                if "BUSYGROUP" not in str(error):
                    raise
        self._streams |= found
        self.stats.streams = len(self._streams)
        self._last_discovery = time.monotonic()

    async def _drain_pending(self) -> None:
        while self._streams:
            replies = stream_reads(
                await self._redis.xreadgroup(
                    CONSUMER_GROUP,
                    self.consumer,
                    {key: "0" for key in self._streams},
                    count=self.batch_size,
                )
            )
            if not any(entries for _, entries in replies):
                return
            await self._record(replies)

    async def _record(self, replies: StreamReads) -> None:
        acks: dict[str, list[bytes]] = {}
        steps: list[_Step] = []
        venue_bars: list[Bar] = []
        for key, entries in replies:
            stream = key.decode()
            for entry_id, fields in entries:
                acks.setdefault(stream, []).append(entry_id)
                event = _decode(fields)
                if isinstance(event, Trade) and _is_valid_trade(event):
                    # Consecutive trades share one insert: a batch without revisions is one COPY.
                    run = steps[-1] if steps else None
                    if not isinstance(run, list):
                        run = []
                        steps.append(run)
                    run.append(_trade_row(event))
                elif isinstance(event, TradeCancel) or (
                    isinstance(event, TradeCorrection) and _is_valid_correction(event)
                ):
                    steps.append(event)
                elif isinstance(event, Bar) and _is_valid_bar(event):
                    venue_bars.append(event)
                else:
                    # Gaps, and anything the table constraints would refuse: one bad entry
                    # must not hold back the batch it came in.
                    self.stats.skipped += 1
        if not acks:
            return
        assert self._pool is not None
        written = revised = 0
        # (instrument, exchange time) of every trade written or revised: their bars change.
        touched: list[tuple[str, int]] = []
        async with self._pool.acquire() as conn, conn.transaction():
            for step in steps:
                if isinstance(step, list):
                    written += await _insert_trades(conn, step)
                    touched += ((row[0], row[2]) for row in step)
                else:
                    times = await _revise_trade(conn, step)
                    revised += len(times)
                    touched += ((step.instrument, ts) for ts in times)
            await _recompute_bars(conn, touched)
            self.stats.bars_written += await _insert_venue_bars(conn, venue_bars)
        for stream, ids in acks.items():
            await self._redis.xack(stream, CONSUMER_GROUP, *ids)
        self.stats.batches += 1
        self.stats.entries += sum(len(ids) for ids in acks.values())
        self.stats.trades_written += written
        self.stats.trades_revised += revised
        self.stats.last_commit_ns = time.time_ns()
        # Each stream's entries come oldest first: its last one is its newest.
        self.stats.newest_committed_ms = max(
            int(ids[-1].partition(b"-")[0]) for ids in acks.values()
        )
        # A stream that filled its share of the read may hold more.
        self.stats.caught_up = all(len(ids) < self.batch_size for ids in acks.values())


def _decode(fields: dict[bytes, bytes]) -> AnyEvent | None:
    try:
        return decode_event(fields[EVENT_FIELD])
    except (KeyError, msgspec.DecodeError, msgspec.ValidationError):
        return None


def _positive_decimals(*texts: str) -> bool:
    """Whether the trades table can take these as a price and a size."""
    try:
        for text in texts:
            checked_decimal(text)
    except ValueError:
        return False
    return True


def _is_valid_trade(event: Trade) -> bool:
    return _positive_decimals(event.price, event.size) and event.side in (None, "buy", "sell")


def _is_valid_correction(event: TradeCorrection) -> bool:
    return _positive_decimals(event.corrected_price, event.corrected_size)


def _is_valid_bar(event: Bar) -> bool:
    try:
        opening, high, low, closing = (
            float(checked_decimal(v)) for v in (event.open, event.high, event.low, event.close)
        )
        checked_decimal(event.volume, allow_zero=True)
        if event.vwap is not None:
            checked_decimal(event.vwap)
    except ValueError:
        return False
    return low <= min(opening, closing) <= max(opening, closing) <= high and event.trade_count >= 0


def _trade_row(event: Trade) -> _TradeRow:
    return (
        event.instrument,
        event.trade_id,
        event.exchange_ts_ns,
        event.receive_ts_ns,
        event.price,
        event.size,
        event.side,
    )


async def _insert_trades(conn: asyncpg.Connection, rows: list[_TradeRow]) -> int:
    if not rows:
        return 0
    # COPY into a scratch table, then one INSERT: far faster than row-by-row, and still
    # idempotent thanks to the primary key.
    await conn.execute(
        "CREATE TEMP TABLE IF NOT EXISTS incoming_trades (LIKE trades INCLUDING DEFAULTS) "
        "ON COMMIT DELETE ROWS"
    )
    await conn.copy_records_to_table(
        "incoming_trades",
        records=rows,
        columns=[
            "instrument_id",
            "trade_id",
            "exchange_ts_ns",
            "receive_ts_ns",
            "price",
            "size",
            "side",
        ],
    )
    result = await conn.execute(
        "INSERT INTO trades SELECT * FROM incoming_trades ON CONFLICT DO NOTHING"
    )
    return int(result.rsplit(" ", 1)[-1])


async def _insert_venue_bars(conn: asyncpg.Connection, bars: list[Bar]) -> int:
    if not bars:
        return 0
    columns = list(
        zip(
            *(
                (
                    b.instrument,
                    b.interval,
                    b.start_ts_ns,
                    b.open,
                    b.high,
                    b.low,
                    b.close,
                    b.volume,
                    b.trade_count,
                    b.vwap,
                )
                for b in bars
            ),
            strict=True,
        )
    )
    result = await conn.execute(_INSERT_VENUE_BARS, *(list(column) for column in columns))
    return int(result.rsplit(" ", 1)[-1])


async def _revise_trade(
    conn: asyncpg.Connection, event: TradeCorrection | TradeCancel
) -> list[int]:
    """Apply a correction or cancel; the exchange times of the stored trades it changed."""
    if isinstance(event, TradeCorrection):
        rows = await conn.fetch(
            _CORRECT_TRADE,
            event.instrument,
            event.original_trade_id,
            event.corrected_trade_id,
            event.corrected_price,
            event.corrected_size,
        )
    else:
        rows = await conn.fetch(_CANCEL_TRADE, event.instrument, event.trade_id)
    return [row["exchange_ts_ns"] for row in rows]


async def _recompute_bars(conn: asyncpg.Connection, trades: list[tuple[str, int]]) -> None:
    """Bars of every bucket holding one of these (instrument, exchange time), from stored trades."""
    for interval, width in BAR_INTERVALS.items():
        touched = sorted({(instrument, ts - ts % width) for instrument, ts in trades})
        if touched:
            instruments, buckets = zip(*touched, strict=True)
            await conn.execute(_UPSERT_BARS, list(instruments), list(buckets), interval, width)


def _stream_lag_s(stats: RecorderStats) -> float:
    if stats.caught_up or stats.newest_committed_ms is None:
        return 0.0
    return time.time() - stats.newest_committed_ms / 1000


class RecorderReport(msgspec.Struct, frozen=True, kw_only=True):
    """What the recorder has done since it started; ``last_commit_ns`` is None before the first."""

    running: bool
    streams: int
    batches: int
    entries: int
    trades_written: int
    trades_revised: int
    bars_written: int
    skipped: int
    errors: int
    last_commit_ns: int | None


@ray.remote(max_restarts=-1, num_cpus=0.1)
class Recorder:
    """The recorder as a long-lived Ray actor; restarted by Ray if its process dies."""

    def __init__(self, redis_url: str, database_url: str, consumer: str = "recorder-1") -> None:
        self._core = RecorderCore(redis_url, database_url, consumer=consumer)
        self._stop = asyncio.Event()
        tags_keys = ("consumer",)
        self._tags = {"consumer": consumer}
        self._trades_metric = Counter(
            "finone_recorder_trades", "Trades written to Postgres", tags_keys
        )
        self._batches_metric = Counter("finone_recorder_batches", "Batches committed", tags_keys)
        self._lag_metric = Gauge(
            "finone_recorder_commit_age_seconds", "Seconds since the last commit", tags_keys
        )
        self._stream_lag_metric = Gauge(
            "finone_recorder_stream_lag_seconds",
            "Seconds from the Redis time (stream id) of the newest entry committed to now while "
            "the recorder is behind; 0 once a read took every entry there was",
            tags_keys,
        )
        loop = asyncio.get_running_loop()
        self._task = loop.create_task(self._core.run(self._stop), name="recorder")
        self._metrics_task = loop.create_task(self._export_metrics(), name="recorder metrics")

    async def _export_metrics(self) -> None:
        reported = RecorderStats()
        while True:
            stats = self._core.stats
            if stats.trades_written > reported.trades_written:
                self._trades_metric.inc(
                    stats.trades_written - reported.trades_written, tags=self._tags
                )
            if stats.batches > reported.batches:
                self._batches_metric.inc(stats.batches - reported.batches, tags=self._tags)
            reported = RecorderStats(trades_written=stats.trades_written, batches=stats.batches)
            if stats.last_commit_ns is not None:
                self._lag_metric.set((time.time_ns() - stats.last_commit_ns) / 1e9, tags=self._tags)
            self._stream_lag_metric.set(_stream_lag_s(stats), tags=self._tags)
            await asyncio.sleep(1.0)

    async def status(self) -> RecorderReport:
        s = self._core.stats
        return RecorderReport(
            running=not self._task.done(),
            streams=s.streams,
            batches=s.batches,
            entries=s.entries,
            trades_written=s.trades_written,
            trades_revised=s.trades_revised,
            bars_written=s.bars_written,
            skipped=s.skipped,
            errors=s.errors,
            last_commit_ns=s.last_commit_ns,
        )

    async def pid(self) -> int:
        return os.getpid()

    async def shutdown(self) -> None:
        self._stop.set()
        await asyncio.wait([self._task], timeout=10)
        await self._core.close()
