from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import AsyncIterator
from decimal import Decimal

import asyncpg
import msgspec
import pytest
import redis.asyncio as aioredis

from actors.publisher import RedisPublisher
from actors.recorder import CONSUMER_GROUP, Recorder, RecorderCore
from core.events import Bar, Gap, Trade, TradeCancel, TradeCorrection
from core.redis_keys import stream_key
from tests.polling import wait_until

SECOND_NS = 1_000_000_000
MINUTE_NS = 60 * SECOND_NS
BASE_NS = 1_700_000_040 * 1_000_000_000  # a minute boundary


def trades(instrument: str, count: int, start_ns: int = BASE_NS) -> list[Trade]:
    """Trades every 50 ms with prices cycling through 100.00 .. 100.99."""
    return [
        Trade(
            instrument=instrument,
            exchange_ts_ns=start_ns + n * 50_000_000,
            receive_ts_ns=start_ns + n * 50_000_000 + 1_000,
            trade_id=str(n),
            price=f"100.{n % 100:02d}",
            size="0.5" if n % 2 else "1.5",
            side="buy" if n % 3 else "sell",
        )
        for n in range(count)
    ]


@pytest.fixture
async def clean_redis(redis_url: str) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.from_url(redis_url)
    await client.flushdb()
    yield client
    await client.aclose()


async def publish(redis_url: str, events: list[object]) -> None:
    publisher = RedisPublisher(redis_url, max_batch=5_000)
    publisher.start()
    publisher.publish(events)  # type: ignore[arg-type]
    await publisher.drain(60)
    await publisher.close()


async def count_trades(database_url: str) -> int:
    conn = await asyncpg.connect(database_url)
    try:
        return int(await conn.fetchval("SELECT count(*) FROM trades"))
    finally:
        await conn.close()


async def run_core_until(core: RecorderCore, done: object, timeout_s: float = 60) -> None:
    stop = asyncio.Event()
    task = asyncio.create_task(core.run(stop))
    try:
        await wait_until(done, timeout_s, "the recorder to catch up")
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)


async def test_recorder_with_published_trades_writes_trades_and_exact_bars(
    redis_url: str, database_url: str, clean_redis: aioredis.Redis
) -> None:
    published = trades("binance:BTC-USDT", 2_400)  # two minutes of trades
    gap = Gap(instrument="binance:BTC-USDT", exchange_ts_ns=1, receive_ts_ns=1, reason="reconnect")
    await publish(redis_url, [*published[:1_000], gap, *published[1_000:]])

    core = RecorderCore(redis_url, database_url, batch_size=500)
    await run_core_until(core, lambda: _equals(count_trades(database_url), 2_400))
    await core.close()

    conn = await asyncpg.connect(database_url)
    try:
        stored = await conn.fetch(
            "SELECT trade_id, price, size FROM trades ORDER BY exchange_ts_ns"
        )
        minute_bars = await conn.fetch(
            "SELECT * FROM bars WHERE interval = '1m' ORDER BY start_ts_ns"
        )
        second_bars = await conn.fetchval("SELECT sum(trade_count) FROM bars WHERE interval = '1s'")
    finally:
        await conn.close()
    assert [r["trade_id"] for r in stored] == [t.trade_id for t in published]
    assert [str(r["price"]) for r in stored] == [t.price for t in published]
    assert second_bars == 2_400
    assert [b["start_ts_ns"] for b in minute_bars] == [BASE_NS, BASE_NS + MINUTE_NS]
    first_minute = published[:1_200]
    bar = minute_bars[0]
    assert bar["trade_count"] == 1_200
    assert bar["open"] == Decimal(first_minute[0].price)
    assert bar["close"] == Decimal(first_minute[-1].price)
    assert bar["high"] == max(Decimal(t.price) for t in first_minute)
    assert bar["low"] == min(Decimal(t.price) for t in first_minute)
    volume = sum(Decimal(t.size) for t in first_minute)
    assert bar["volume"] == volume
    notional = sum(Decimal(t.price) * Decimal(t.size) for t in first_minute)
    assert abs(bar["vwap"] - notional / volume) < Decimal("1e-12")
    assert core.stats.skipped == 2  # the gap, from the trades and the bars stream


async def test_recorder_with_venue_bars_stores_them_but_trade_bars_take_precedence(
    redis_url: str, database_url: str, clean_redis: aioredis.Redis
) -> None:
    def bar(instrument: str, interval: str, start_ns: int, close: str) -> Bar:
        return Bar(
            instrument=instrument,
            exchange_ts_ns=start_ns,
            receive_ts_ns=start_ns,
            interval=interval,
            start_ts_ns=start_ns,
            open="100.00",
            high="101.50",
            low="99.00",
            close=close,
            volume="1200",
            trade_count=0,
        )

    daily = [bar("alpaca:AAPL", "1d", BASE_NS + n * 86_400_000_000_000, "100.50") for n in range(3)]
    published = trades("alpaca:AAPL", 10)
    # The venue's own minute bar for a minute we also have trades for: ours must win.
    await publish(redis_url, [*published, *daily, bar("alpaca:AAPL", "1m", BASE_NS, "99.50")])
    core = RecorderCore(redis_url, database_url)
    await run_core_until(core, lambda: _entries_seen(core, 14))
    await core.close()

    conn = await asyncpg.connect(database_url)
    try:
        stored = await conn.fetch("SELECT interval, close FROM bars ORDER BY interval, start_ts_ns")
    finally:
        await conn.close()
    assert [(r["interval"], str(r["close"])) for r in stored if r["interval"] == "1d"] == [
        ("1d", "100.50")
    ] * 3
    [minute] = [r for r in stored if r["interval"] == "1m"]
    assert minute["close"] == Decimal(published[-1].price)


async def test_recorder_with_impossible_entries_skips_them_and_records_the_rest(
    redis_url: str, database_url: str, clean_redis: aioredis.Redis
) -> None:
    good = trades("okx:BTC-USDT", 20)
    negative = msgspec.structs.replace(good[0], trade_id="bad-1", price="-5")
    crossed = Bar(
        instrument="okx:BTC-USDT",
        exchange_ts_ns=1,
        receive_ts_ns=1,
        interval="1d",
        start_ts_ns=0,
        open="10",
        high="9",
        low="8",
        close="10",
        volume="1",
        trade_count=1,
    )
    await publish(redis_url, [*good[:10], negative, crossed, *good[10:]])
    core = RecorderCore(redis_url, database_url)
    await run_core_until(core, lambda: _equals(count_trades(database_url), 20))
    await core.close()
    assert core.stats.skipped == 2 and core.stats.errors == 0


async def _equals(value: object, expected: int) -> bool:
    return await value == expected  # type: ignore[misc]


async def test_recorder_with_every_entry_delivered_twice_stores_each_trade_once(
    redis_url: str, database_url: str, clean_redis: aioredis.Redis
) -> None:
    published = trades("okx:ETH-USDT", 500)
    await publish(redis_url, published)
    first = RecorderCore(redis_url, database_url)
    await run_core_until(first, lambda: _equals(count_trades(database_url), 500))
    await first.close()

    # Rewind the group: every entry is delivered again, as after a crash before XACK.
    await clean_redis.xgroup_setid(stream_key("trades", "okx:ETH-USDT"), CONSUMER_GROUP, "0")
    second = RecorderCore(redis_url, database_url)
    await run_core_until(second, lambda: _entries_seen(second, 500))
    await second.close()
    assert await count_trades(database_url) == 500
    assert second.stats.trades_written == 0


async def _entries_seen(core: RecorderCore, count: int) -> bool:
    return core.stats.entries >= count


async def test_recorder_killed_mid_batch_loses_nothing_and_duplicates_nothing(
    ray_cluster: None, redis_url: str, database_url: str, clean_redis: aioredis.Redis
) -> None:
    import ray

    total = 40_000
    published = [
        *trades("kraken:BTC-USD", total // 2),
        *trades("kraken:ETH-USD", total // 2),
    ]
    await publish(redis_url, published)
    recorder = Recorder.remote(redis_url, database_url)  # type: ignore[attr-defined]
    pid = await recorder.pid.remote()

    await wait_until(lambda: _above(count_trades(database_url), 0), 60, "the first commit")
    written_before_kill = await count_trades(database_url)
    assert written_before_kill < total, "the kill must land while work remains"
    os.kill(pid, signal.SIGKILL)

    await wait_until(lambda: _equals(count_trades(database_url), total), 180, "all trades")
    assert await recorder.pid.remote() != pid

    conn = await asyncpg.connect(database_url)
    try:
        per_instrument = dict(
            await conn.fetch(
                "SELECT instrument_id, count(DISTINCT trade_id) FROM trades GROUP BY 1"
            )
        )
        bar_trades = await conn.fetchval("SELECT sum(trade_count) FROM bars WHERE interval = '1m'")
    finally:
        await conn.close()
    assert per_instrument == {"kraken:BTC-USD": total // 2, "kraken:ETH-USD": total // 2}
    assert bar_trades == total
    for instrument in ("kraken:BTC-USD", "kraken:ETH-USD"):
        pending = await clean_redis.xpending(stream_key("trades", instrument), CONSUMER_GROUP)
        assert pending["pending"] == 0
    await recorder.shutdown.remote()
    ray.kill(recorder, no_restart=True)


async def _above(value: object, threshold: int) -> bool:
    return await value > threshold  # type: ignore[operator]


def alpaca_trade(trade_id: str, offset_ns: int, price: str, size: str) -> Trade:
    return Trade(
        instrument="alpaca:AAPL",
        exchange_ts_ns=BASE_NS + offset_ns,
        receive_ts_ns=BASE_NS + offset_ns + 1_000,
        trade_id=trade_id,
        price=price,
        size=size,
    )


def corrected(original: Trade, trade_id: str, price: str, size: str) -> TradeCorrection:
    # Stamped well after the trade, in another second: the trade's own buckets must change.
    return TradeCorrection(
        instrument=original.instrument,
        exchange_ts_ns=BASE_NS + 30 * SECOND_NS,
        receive_ts_ns=BASE_NS + 30 * SECOND_NS,
        original_trade_id=original.trade_id,
        original_price=original.price,
        original_size=original.size,
        corrected_trade_id=trade_id,
        corrected_price=price,
        corrected_size=size,
    )


def canceled(original: Trade, reason: str = "cancel") -> TradeCancel:
    return TradeCancel(
        instrument=original.instrument,
        exchange_ts_ns=BASE_NS + 40 * SECOND_NS,
        receive_ts_ns=BASE_NS + 40 * SECOND_NS,
        trade_id=original.trade_id,
        price=original.price,
        size=original.size,
        reason=reason,  # type: ignore[arg-type]
    )


async def stored_market_data(database_url: str) -> tuple[list[tuple[object, ...]], ...]:
    conn = await asyncpg.connect(database_url)
    try:
        trade_rows = await conn.fetch(
            "SELECT trade_id, exchange_ts_ns, price, size FROM trades ORDER BY exchange_ts_ns"
        )
        bar_rows = await conn.fetch(
            "SELECT interval, start_ts_ns, open, high, low, close, volume, trade_count, vwap "
            "FROM bars ORDER BY interval, start_ts_ns"
        )
    finally:
        await conn.close()
    return [tuple(r) for r in trade_rows], [tuple(r) for r in bar_rows]


async def record(redis_url: str, database_url: str, events: list[object]) -> RecorderCore:
    """Publish ``events`` and run a recorder until it has taken them all."""
    await publish(redis_url, events)
    core = RecorderCore(redis_url, database_url)
    await run_core_until(core, lambda: _entries_seen(core, len(events)))
    await core.close()
    return core


async def test_recorder_with_corrections_and_cancels_rewrites_trades_and_bars_idempotently(
    redis_url: str, database_url: str, clean_redis: aioredis.Redis
) -> None:
    first = alpaca_trade("V-1", 100_000_000, "100.00", "10")
    second = alpaca_trade("V-2", 200_000_000, "101.00", "5")
    alone = alpaca_trade("V-3", 1_500_000_000, "102.00", "1")
    next_minute = alpaca_trade("V-4", MINUTE_NS + SECOND_NS, "98.00", "3")
    never_recorded = alpaca_trade("V-99", 0, "1", "1")
    traded = [first, second, alone, next_minute]
    await record(redis_url, database_url, traded)
    _, bars_before = await stored_market_data(database_url)
    assert ("1s", BASE_NS + SECOND_NS) in [b[:2] for b in bars_before]

    revisions = [
        corrected(first, "V-10", "100.50", "20"),
        # Alpaca may keep the id when it corrects a trade.
        corrected(next_minute, "V-4", "99.00", "2"),
        canceled(alone),
        canceled(never_recorded, "error"),
        corrected(never_recorded, "V-100", "1", "1"),
        corrected(second, "V-20", "-1", "5"),  # the table would refuse it: skipped
    ]
    core = await record(redis_url, database_url, revisions)

    trades_after, bars_after = await stored_market_data(database_url)
    assert trades_after == [
        ("V-10", first.exchange_ts_ns, Decimal("100.50"), Decimal("20")),
        ("V-2", second.exchange_ts_ns, Decimal("101.00"), Decimal("5")),
        ("V-4", next_minute.exchange_ts_ns, Decimal("99.00"), Decimal("2")),
    ]
    vwap = (Decimal("100.50") * 20 + Decimal("101.00") * 5) / 25
    first_bucket = ("100.50", "101.00", "100.50", "101.00", "25", 2)
    next_bucket = ("99.00", "99.00", "99.00", "99.00", "2", 1)
    # The canceled trade's second has no bar left; the corrections show in their own buckets.
    assert [(b[0], b[1], *map(str, b[2:7]), b[7]) for b in bars_after] == [
        ("1m", BASE_NS, *first_bucket),
        ("1m", BASE_NS + MINUTE_NS, *next_bucket),
        ("1s", BASE_NS, *first_bucket),
        ("1s", BASE_NS + MINUTE_NS + SECOND_NS, *next_bucket),
    ]
    assert abs(bars_after[0][8] - vwap) < Decimal("1e-12")
    assert core.stats.skipped == 1 and core.stats.errors == 0

    # Every entry again, as after a crash before XACK: the trades come back before the
    # revisions that remove them, and the end is the same. Five at a time, a trade and its
    # correction share a batch, and a trade and its cancel do not.
    await clean_redis.xgroup_setid(stream_key("trades", "alpaca:AAPL"), CONSUMER_GROUP, "0")
    replay = RecorderCore(redis_url, database_url, batch_size=5)
    await run_core_until(replay, lambda: _entries_seen(replay, len(traded + revisions)))
    await replay.close()
    assert await stored_market_data(database_url) == (trades_after, bars_after)
