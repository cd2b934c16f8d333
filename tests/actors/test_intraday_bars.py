"""Intraday bars from a replayed stream, recorded for real: twenty minutes of the simulated
market written as a capture, replayed through the adapter into Redis, recorded into Postgres;
the bars must be the trades' own OHLCV, and enough for an intraday retraining."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import asyncpg
import redis.asyncio as aioredis

from actors.simulated.market import LISTINGS
from core.events import instrument_id
from core.intervals import INTERVAL_NS
from tests.intraday import capture_trades, record_intraday
from tests.retraining import small_plan
from training.datasets import load_dataset
from training.splits import walk_forward

# (start, open, high, low, close, volume, trade count) of one bar.
_Bar = tuple[int, Decimal, Decimal, Decimal, Decimal, Decimal, int]


async def test_recorder_with_a_replayed_simulated_market_builds_exact_bars_to_train_on(
    redis_url: str, database_url: str, tmp_path: Path
) -> None:
    client = aioredis.from_url(redis_url)
    await client.flushdb()
    await client.aclose()
    capture = tmp_path / "simulated.ws"

    instruments = await record_intraday(database_url, redis_url, capture)

    assert instruments == [instrument_id("simulated", listing.inst_id) for listing in LISTINGS]
    sent = capture_trades(capture)
    conn = await asyncpg.connect(database_url)
    try:
        for instrument, listing in zip(instruments, LISTINGS, strict=True):
            trades = sent[listing.inst_id]
            stored = await conn.fetch(
                "SELECT trade_id, price, size, exchange_ts_ns FROM trades "
                "WHERE instrument_id = $1 ORDER BY exchange_ts_ns, trade_id",
                instrument,
            )
            # Every trade, none lost, none added, exactly as the exchange wrote it.
            assert [tuple(row) for row in stored] == [
                (t["tradeId"], Decimal(t["px"]), Decimal(t["sz"]), int(t["ts"]) * 1_000_000)
                for t in trades
            ]
            for interval in ("1s", "1m"):
                bars = await conn.fetch(
                    "SELECT start_ts_ns, open, high, low, close, volume, trade_count FROM bars "
                    "WHERE instrument_id = $1 AND interval = $2 ORDER BY start_ts_ns",
                    instrument,
                    interval,
                )
                assert [tuple(bar) for bar in bars] == _ohlcv(trades, INTERVAL_NS[interval])
    finally:
        await conn.close()

    # What a retraining of small_plan on these 1 s bars needs: its walk-forward's training
    # examples and test window of each instrument, from unbroken runs of bars.
    table = await load_dataset(database_url, instruments, "1s")
    plan = small_plan(tmp_path, tuple(instruments)).walk_forward
    assert sorted(set(table["instrument"])) == sorted(instruments)
    for _, rows in table.groupby("instrument"):
        splits = walk_forward(len(rows), plan.folds, plan.test_size, plan.embargo, plan.min_train)
        assert len(splits) == plan.folds


def _ohlcv(trades: list[dict[str, str]], interval_ns: int) -> list[_Bar]:
    """The bars of ``trades`` (in the order the exchange sent them), computed here from the
    capture alone: each bucket of exchange time with a trade, its first and last price."""
    buckets: dict[int, list[dict[str, str]]] = {}
    for trade in trades:
        ts_ns = int(trade["ts"]) * 1_000_000
        buckets.setdefault(ts_ns - ts_ns % interval_ns, []).append(trade)
    bars = []
    for start, bucket in sorted(buckets.items()):
        prices = [Decimal(t["px"]) for t in bucket]
        volume = sum((Decimal(t["sz"]) for t in bucket), Decimal(0))
        bars.append((start, prices[0], max(prices), min(prices), prices[-1], volume, len(bucket)))
    return bars
