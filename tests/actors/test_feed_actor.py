"""A feed actor on the session's Ray cluster, streaming from a local OKX server into real Redis."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import ray
import redis.asyncio as aioredis
from redis.exceptions import RedisError

from actors.demo import DEMO_REPLAY_FROM, demo_config
from actors.feed import FeedActor
from actors.simulated.okx import OkxMarket, OkxServer
from actors.venues.base import VenueConfig
from cluster.embedded_redis import EmbeddedRedis
from cluster.ports import free_port
from core.events import Bar, BookSnapshot, FeedStatus, Gap, Trade, decode_event
from core.redis_keys import EVENT_FIELD, QUOTES_HASH, status_stream_key, stream_key
from tests.polling import wait_until

FINONE = str(Path(sys.executable).parent / "finone")
INSTRUMENTS = ("BTC-USDT", "ETH-USDT")


async def stream(client: aioredis.Redis, key: str) -> list[object]:
    return [decode_event(fields[EVENT_FIELD]) for _, fields in await client.xrange(key)]


@pytest.fixture
async def okx() -> AsyncIterator[OkxServer]:
    async with OkxServer(OkxMarket(INSTRUMENTS), auto_interval_s=0.02) as server:
        yield server


StartFeed = Callable[..., Any]


@pytest.fixture
def start_feed(ray_cluster: None) -> Iterator[StartFeed]:
    """Starts feed actors and kills them after the test, passed or failed: one left streaming
    into the shared Redis would feed every later test's recorder."""
    started: list[Any] = []

    def start(*args: object, **kwargs: object) -> Any:
        actor = FeedActor.remote(*args, **kwargs)  # type: ignore[attr-defined]
        started.append(actor)
        return actor

    yield start
    for actor in started:
        ray.kill(actor, no_restart=True)


@pytest.fixture
async def redis_client(redis_url: str) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.from_url(redis_url)
    await client.flushdb()
    yield client
    await client.aclose()


async def test_feed_actor_streams_to_redis_survives_drops_and_records_replayable_captures(
    start_feed: StartFeed,
    okx: OkxServer,
    redis_url: str,
    redis_client: aioredis.Redis,
    tmp_path: Path,
) -> None:
    config = VenueConfig(venue="okx", symbols=list(INSTRUMENTS), ws_url=okx.url)
    actor = start_feed(
        config, "okx-0", redis_url, stream_maxlen=10_000, capture_dir=str(tmp_path), record=True
    )

    async def trades_published() -> bool:
        return await redis_client.xlen(stream_key("trades", "okx:BTC-USDT")) > 3

    await wait_until(trades_published, 30, "trades in Redis")
    status = await actor.status.remote()
    assert status.state == "live" and status.symbols == list(INSTRUMENTS)
    assert status.messages > 0 and status.events > 0 and not status.problems
    book = await stream(redis_client, stream_key("book", "okx:BTC-USDT"))
    assert isinstance(book[0], BookSnapshot)
    assert await redis_client.hget(QUOTES_HASH, "okx:ETH-USDT") is not None
    states = [
        e.state
        for e in await stream(redis_client, status_stream_key("okx"))
        if isinstance(e, FeedStatus)
    ]
    assert "live" in states

    okx.drop()
    await wait_until(lambda: _reconnected(actor), 30, "a reconnect")
    for instrument in INSTRUMENTS:
        events = await stream(redis_client, stream_key("trades", f"okx:{instrument}"))
        assert any(isinstance(e, Gap) for e in events), instrument

    capture = await actor.set_recording.remote(False)
    assert capture is None
    await actor.shutdown.remote()

    [recording] = list(tmp_path.glob("okx-0.*.ws"))
    replay = subprocess.run(
        [FINONE, "replay", "--venue", "okx", "--no-publish", str(recording)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert replay.returncode == 0, replay.stderr
    summary = json.loads(replay.stdout)
    assert summary["frames"] > 10
    assert summary["checksum_failures"] == 0 and summary["parse_errors"] == 0
    assert summary["checksums_verified"] > 0
    assert summary["events"]["trade"] > 0


async def _reconnected(actor: object) -> bool:
    status = await actor.status.remote()  # type: ignore[attr-defined]
    return status.reconnects >= 1 and status.state == "live" and status.gaps >= 2


async def test_feed_actor_killed_is_restarted_by_ray_and_streams_again(
    start_feed: StartFeed, okx: OkxServer, redis_url: str, redis_client: aioredis.Redis
) -> None:
    config = VenueConfig(venue="okx", symbols=["BTC-USDT"], ws_url=okx.url)
    actor = start_feed(config, "okx-0", redis_url, stream_maxlen=10_000)
    key = stream_key("trades", "okx:BTC-USDT")

    async def has_trades() -> bool:
        return any(isinstance(e, Trade) for e in await stream(redis_client, key))

    await wait_until(has_trades, 30, "trades")
    pid = await actor.__ray_call__.remote(lambda self: os.getpid())
    os.kill(pid, signal.SIGKILL)
    before = await redis_client.xlen(key)

    async def streams_again() -> bool:
        try:
            status = await actor.status.remote()
        except ray.exceptions.RayActorError:
            return False
        return status.state == "live" and await redis_client.xlen(key) > before + 3

    await wait_until(streams_again, 60, "the restarted actor to stream")
    await actor.shutdown.remote()


async def test_feed_actor_with_unknown_venue_reports_failure_and_stays_up(
    start_feed: StartFeed, redis_url: str
) -> None:
    config = VenueConfig(venue="nowhere", symbols=["BTC-USDT"])
    actor = start_feed(config, "nowhere-0", redis_url, stream_maxlen=10_000)
    status = await actor.status.remote()
    assert status.state == "failed" and "unknown venue 'nowhere'" in status.detail


async def test_feed_actor_replaying_demo_history_streams_daily_bars_and_restarts_with_a_gap(
    start_feed: StartFeed, redis_url: str, redis_client: aioredis.Redis, tmp_path: Path
) -> None:
    config = demo_config(tmp_path, pace_s=0.005)
    actor = start_feed(config, "alpaca-iex", redis_url, stream_maxlen=10_000)
    key = stream_key("bars", "alpaca:AAPL")

    async def bars_streamed() -> bool:
        return await redis_client.xlen(key) >= 20

    await wait_until(bars_streamed, 30, "demo bars")
    first = (await stream(redis_client, key))[0]
    assert isinstance(first, Bar) and first.interval == "1d"
    # The replay carries on where the loaded history ends: 2011-01-03, split- and
    # dividend-adjusted (the raw 325.64 and 329.57).
    assert first.start_ts_ns == DEMO_REPLAY_FROM.value + 2 * 86_400 * 10**9
    assert (first.open, first.close) == ("41.8493", "42.3543")
    status = await actor.status.remote()
    assert status.state == "live" and status.messages > 20 and not status.problems

    await actor.restart.remote()

    async def started_over() -> bool:
        events = await stream(redis_client, key)
        gaps = [i for i, e in enumerate(events) if isinstance(e, Gap)]
        return bool(gaps) and any(
            isinstance(e, Bar) and e.start_ts_ns == first.start_ts_ns for e in events[gaps[0] :]
        )

    await wait_until(started_over, 30, "the replay to start over after a gap")
    await actor.shutdown.remote()


async def test_feed_actor_with_redis_restarted_underneath_resumes_publishing(
    start_feed: StartFeed, okx: OkxServer, tmp_path: Path
) -> None:
    server = EmbeddedRedis(tmp_path, "127.0.0.1", free_port(), os.environ)
    server.process.start()
    client = aioredis.from_url(server.url)
    key = stream_key("trades", "okx:BTC-USDT")
    config = VenueConfig(venue="okx", symbols=["BTC-USDT"], ws_url=okx.url)
    actor = start_feed(config, "okx-0", server.url, stream_maxlen=10_000)
    try:

        async def publishing() -> bool:
            try:
                return await client.xlen(key) > 3
            except (OSError, RedisError):
                return False

        await wait_until(publishing, 30, "trades in Redis")
        server.process.stop()
        await asyncio.sleep(1.0)
        down = await actor.status.remote()
        assert down.redis_ok is False

        async def holding() -> bool:
            return (await actor.status.remote()).unpublished > 0

        await wait_until(holding, 30, "events held while Redis is down")
        server.process.start()
        count_after_restart = 0

        async def resumed() -> bool:
            nonlocal count_after_restart
            try:
                count_after_restart = await client.xlen(key)
            except (OSError, RedisError):
                return False
            status = await actor.status.remote()
            return status.redis_ok and status.state == "live" and count_after_restart > 10

        await wait_until(resumed, 60, "publishing to resume")

        async def caught_up() -> bool:
            status = await actor.status.remote()
            return status.published > down.published and status.unpublished < 100

        await wait_until(caught_up, 30, "the held events to reach Redis")
    finally:
        await actor.shutdown.remote()
        await client.aclose()
        server.process.stop()
