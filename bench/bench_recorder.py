"""Recorder throughput: trades/s from Redis streams into Postgres (trades + 1 s and 1 min bars).

Publishes N trades over several instruments, then times the recorder draining them.
Run with `make bench` or `.venv/bin/python bench/bench_recorder.py [--trades N]`.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from local_services import local_services  # noqa: E402

from actors.publisher import RedisPublisher  # noqa: E402
from actors.recorder import RecorderCore  # noqa: E402
from core.events import Trade  # noqa: E402

INSTRUMENTS = ("binance:BTC-USDT", "binance:ETH-USDT", "okx:BTC-USDT", "coinbase:BTC-USD")


def make_trades(count: int, offset: int) -> list[Trade]:
    start = 1_700_000_000 * 1_000_000_000
    return [
        Trade(
            instrument=INSTRUMENTS[n % len(INSTRUMENTS)],
            exchange_ts_ns=start + n * 10_000_000,
            receive_ts_ns=start + n * 10_000_000 + 500_000,
            trade_id=str(offset + n),
            price=f"{30_000 + n % 500}.{n % 100:02d}",
            size="0.0125",
            side="buy" if n % 2 else "sell",
        )
        for n in range(offset, offset + count)
    ]


async def one_run(redis_url: str, database_url: str, count: int, offset: int) -> float:
    publisher = RedisPublisher(redis_url, max_batch=5_000, maxlen=10_000_000)
    publisher.start()
    publisher.publish(make_trades(count, offset))
    await publisher.drain(300)
    await publisher.close()
    core = RecorderCore(redis_url, database_url)
    stop = asyncio.Event()
    started = time.perf_counter()
    task = asyncio.create_task(core.run(stop))
    while core.stats.trades_written < count:
        await asyncio.sleep(0.01)
    elapsed = time.perf_counter() - started
    stop.set()
    await task
    await core.close()
    return count / elapsed


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--trades", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    with tempfile.TemporaryDirectory(prefix="finone-bench-") as tmp:
        async with local_services(Path(tmp)) as services:
            rates = [
                await one_run(
                    services.redis_url, services.database_url, args.trades, run * args.trades
                )
                for run in range(args.runs)
            ]
    print(
        f"recorder: {statistics.median(rates):,.0f} trades/s median of {len(rates)} runs "
        f"({args.trades:,} trades each over {len(INSTRUMENTS)} instruments; "
        f"min {min(rates):,.0f}, max {max(rates):,.0f}); includes 1 s and 1 min bar upserts"
    )


if __name__ == "__main__":
    asyncio.run(main())
