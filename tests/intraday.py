"""Intraday bars recorded for real: a capture of the simulated market replayed through the
``simulated`` venue's adapter (OKX's) into Redis by the publisher, and recorded into Postgres
by the recorder, which builds its 1 s and 1 min bars from the trades as live.

``record_intraday`` leaves enough 1 s bars for a retraining with ``tests.retraining.small_plan``
(see ``tests/actors/test_intraday_bars.py``, which checks it); ``capture_trades`` reads the
trades back out of the capture, independently of the adapter, for checking what was recorded.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path

import asyncpg

from actors.capture import read_capture
from actors.publisher import RedisPublisher
from actors.recorder import RecorderCore
from actors.replay import ReplayRunner
from actors.simulated.market import LISTINGS, Listing
from actors.simulated.market_capture import write_market_capture
from actors.venues.base import ConnectionSpec, Output
from actors.venues.simulated import SimulatedAdapter
from core.events import instrument_id
from core.intervals import INTERVAL_NS
from tests.actors.test_recorder import run_core_until
from tests.polling import wait_until

__all__ = ["INTRADAY_SECONDS", "INTRADAY_STEP_S", "capture_trades", "record_intraday"]

# Twenty minutes: about a thousand 1 s bars of each default listing, even of SOL-USDT, the
# quietest (two trades a second: no trade in one second of seven, and six such seconds in a
# row, a gap that cuts the bars, hardly ever); near twice the 555 examples small_plan's
# walk-forward needs of each. And twenty 1 min bars.
INTRADAY_SECONDS = 1_200.0
# Coarser than the venue's 100 ms so that twenty minutes are written in a few seconds; each
# 1 s bar still has trades of two moments.
INTRADAY_STEP_S = 0.5


async def record_intraday(
    database_url: str,
    redis_url: str,
    capture: Path,
    *,
    duration_s: float = INTRADAY_SECONDS,
    start_ns: int | None = None,
    listings: Sequence[Listing] = LISTINGS,
    seed: int = 1,
    timeout_s: float = 120.0,
) -> list[str]:
    """Write ``capture`` (``duration_s`` of the simulated market from ``start_ns``; by default
    from a minute boundary, ending within the last minute), replay it into Redis and record
    it into ``database_url``; returns the instrument ids (``simulated:BTC-USDT``, ...) once
    every trade of the capture is stored with its bars. The capture holds the trades channel
    alone: the bars come from trades, and books would only slow the replay down. Replaying
    and recording may take ``timeout_s`` each.

    The recorder here reads as the platform's recorder does, every trade and bar stream of
    ``redis_url`` in its consumer group: a recorder already running on it shares the entries
    with this one, so it must record into the same database, and entries no recorder has read
    yet, of any instrument, are recorded too."""
    minute = INTERVAL_NS["1m"]
    if start_ns is None:
        start_ns = (time.time_ns() - round(duration_s * 1e9)) // minute * minute
    await asyncio.to_thread(
        write_market_capture,
        capture,
        duration_s=duration_s,
        start_ns=start_ns,
        listings=listings,
        seed=seed,
        channels=("trades",),
        step_s=INTRADAY_STEP_S,
    )
    expected = sum(len(trades) for trades in capture_trades(capture).values())
    instruments = [instrument_id(SimulatedAdapter.venue, listing.inst_id) for listing in listings]
    await _replay(capture, redis_url, timeout_s)
    end_ns = start_ns + round(duration_s * 1e9)
    stored = _trades_stored(database_url, instruments, (start_ns, end_ns), expected)
    await _record(database_url, redis_url, stored, timeout_s)
    return instruments


async def _replay(capture: Path, redis_url: str, timeout_s: float) -> None:
    """Replay ``capture`` as the replay venue's feed does, into Redis."""
    publisher = RedisPublisher(redis_url)
    publisher.start()

    def emit(out: Output) -> None:
        publisher.publish(out.events)

    spec = ConnectionSpec(name="simulated-replay", url="", symbols=())
    replay = ReplayRunner(SimulatedAdapter, spec, emit, ws_file=capture)
    stop = asyncio.Event()
    replaying = asyncio.create_task(replay.run(stop))
    try:
        await wait_until(_played(replay), timeout_s, f"the replay of {capture.name} to end")
        await publisher.drain(timeout_s)
    finally:
        stop.set()
        await asyncio.wait_for(replaying, 10)
        await publisher.close()


async def _record(
    database_url: str, redis_url: str, done: Callable[[], Awaitable[bool]], timeout_s: float
) -> None:
    # Started once the streams exist: a recorder looks for new ones only every few seconds.
    recorder = RecorderCore(redis_url, database_url)
    try:
        await run_core_until(recorder, done, timeout_s)
    finally:
        await recorder.close()


def capture_trades(capture: Path) -> dict[str, list[dict[str, str]]]:
    """The trades of an OKX capture per instId, in the order received, as OKX wrote them
    (``instId``, ``tradeId``, ``px``, ``sz``, ``side``, ``ts`` in milliseconds)."""
    trades: dict[str, list[dict[str, str]]] = {}
    for line in read_capture(capture):
        if line.kind != "received" or not line.text.startswith("{"):
            continue
        frame = json.loads(line.text)
        if frame.get("arg", {}).get("channel") == "trades" and "data" in frame:
            for trade in frame["data"]:
                trades.setdefault(trade["instId"], []).append(trade)
    return trades


def _played(replay: ReplayRunner) -> Callable[[], Awaitable[bool]]:
    async def played() -> bool:
        # A replay at the end of its file stops, saying so.
        return replay.stats.state == "stopped" and bool(replay.stats.detail)

    return played


def _trades_stored(
    database_url: str, instruments: list[str], span_ns: tuple[int, int], expected: int
) -> Callable[[], Awaitable[bool]]:
    """Whether the instruments have ``expected`` trades stamped within ``span_ns``: the
    capture's, whatever else the database holds."""
    # Trades are stamped in whole milliseconds.
    start_ns, end_ns = span_ns[0] // 1_000_000 * 1_000_000, span_ns[1]

    async def stored() -> bool:
        conn = await asyncpg.connect(database_url)
        try:
            count = await conn.fetchval(
                "SELECT count(*) FROM trades WHERE instrument_id = ANY($1) "
                "AND exchange_ts_ns BETWEEN $2 AND $3",
                instruments,
                start_ns,
                end_ns,
            )
        finally:
            await conn.close()
        return bool(count == expected)

    return stored
