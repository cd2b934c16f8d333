from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator
from pathlib import Path

import msgspec
import pytest
import redis.asyncio as aioredis

from actors.publisher import RedisPublisher
from cluster.embedded_redis import EmbeddedRedis
from cluster.ports import free_port
from core.events import FeedStatus, Gap, Quote, Trade, decode_event
from core.health import check_redis, passes
from core.redis_keys import EVENT_FIELD, QUOTES_HASH, status_stream_key, stream_key


def trade(instrument: str, n: int) -> Trade:
    return Trade(
        instrument=instrument,
        exchange_ts_ns=n,
        receive_ts_ns=n + 1,
        trade_id=str(n),
        price="100.5",
        size="0.25",
        side="buy",
    )


def quote(instrument: str, bid: str) -> Quote:
    return Quote(
        instrument=instrument,
        exchange_ts_ns=1,
        receive_ts_ns=2,
        bid_price=bid,
        bid_size="1",
        ask_price="200",
        ask_size="2",
    )


async def stream_events(client: aioredis.Redis, key: str) -> list[object]:
    return [decode_event(fields[EVENT_FIELD]) for _, fields in await client.xrange(key)]


@pytest.fixture
async def redis_client(redis_url: str) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.from_url(redis_url)
    await client.flushdb()
    yield client
    await client.aclose()


async def test_publisher_with_mixed_events_writes_each_to_its_streams(
    redis_url: str, redis_client: aioredis.Redis
) -> None:
    publisher = RedisPublisher(redis_url)
    publisher.start()
    gap = Gap(instrument="okx:BTC-USDT", exchange_ts_ns=5, receive_ts_ns=5, reason="reconnect")
    status = FeedStatus(
        venue="okx", connection="okx-0", state="live", exchange_ts_ns=1, receive_ts_ns=1
    )
    publisher.publish([trade("okx:BTC-USDT", 1), quote("okx:BTC-USDT", "99"), gap, status])
    publisher.publish([quote("okx:BTC-USDT", "99.5")])
    await publisher.drain()
    await publisher.close()

    assert await stream_events(redis_client, stream_key("trades", "okx:BTC-USDT")) == [
        trade("okx:BTC-USDT", 1),
        gap,
    ]
    quotes = await stream_events(redis_client, stream_key("quotes", "okx:BTC-USDT"))
    assert [q.bid_price for q in quotes if isinstance(q, Quote)] == ["99", "99.5"]
    for channel in ("book", "bars"):
        assert await stream_events(redis_client, stream_key(channel, "okx:BTC-USDT")) == [gap]
    latest = decode_event(await redis_client.hget(QUOTES_HASH, "okx:BTC-USDT"))
    assert isinstance(latest, Quote) and latest.bid_price == "99.5"
    assert await stream_events(redis_client, status_stream_key("okx")) == [status]
    assert publisher.stats.published == 5


async def test_publisher_with_small_maxlen_trims_streams_approximately(
    redis_url: str, redis_client: aioredis.Redis
) -> None:
    publisher = RedisPublisher(redis_url, maxlen=100, max_batch=250)
    publisher.start()
    publisher.publish(trade("binance:BTC-USDT", n) for n in range(3_000))
    await publisher.drain()
    await publisher.close()
    length = await redis_client.xlen(stream_key("trades", "binance:BTC-USDT"))
    assert 100 <= length < 1_000
    newest = await redis_client.xrevrange(stream_key("trades", "binance:BTC-USDT"), count=1)
    assert decode_event(newest[0][1][EVENT_FIELD]) == trade("binance:BTC-USDT", 2_999)


async def test_publisher_under_a_steady_flow_writes_a_batch_per_delay_not_per_turn(
    redis_url: str, redis_client: aioredis.Redis
) -> None:
    ages: list[float] = []
    publisher = RedisPublisher(redis_url, max_delay_s=0.05, on_batch_written=ages.append)
    publisher.start()
    published, started = 0, time.monotonic()
    while time.monotonic() - started < 0.3:
        # As a feed does: a few events a frame, the loop turning in between.
        for _ in range(8):
            event = trade("okx:ETH-USDT", published)
            publisher.publish([msgspec.structs.replace(event, receive_ts_ns=time.time_ns())])
            published += 1
        await asyncio.sleep(0.0005)
    await publisher.drain()
    await publisher.close()

    assert await redis_client.xlen(stream_key("trades", "okx:ETH-USDT")) == published
    # 0.3 s of events in 50 ms batches: writing whatever had come whenever the loop had a turn
    # took a Redis call per round trip (23 here), the feed's core paying for each.
    assert publisher.stats.batches <= 10
    assert max(ages) < 0.05 + 0.5


@pytest.fixture
async def own_redis(tmp_path: Path) -> AsyncIterator[EmbeddedRedis]:
    server = EmbeddedRedis(tmp_path, "127.0.0.1", free_port(), os.environ)
    server.process.start()
    await wait_for_redis(server)
    yield server
    server.process.stop()


async def wait_for_redis(server: EmbeddedRedis) -> None:
    await server.process.wait_until_ready(lambda: passes(check_redis(server.url, 1.0)), 10)


async def test_publisher_with_redis_restarted_resumes_without_losing_events(
    own_redis: EmbeddedRedis,
) -> None:
    publisher = RedisPublisher(own_redis.url, retry_delay_s=0.05)
    publisher.start()
    publisher.publish(trade("kraken:BTC-USD", n) for n in range(100))
    await publisher.drain()

    own_redis.process.stop()
    publisher.publish(trade("kraken:BTC-USD", n) for n in range(100, 200))
    await asyncio.sleep(0.5)
    assert not publisher.stats.redis_ok and publisher.stats.errors > 0

    own_redis.process.start()
    await wait_for_redis(own_redis)
    await publisher.drain(30)
    await publisher.close()

    client = aioredis.from_url(own_redis.url)
    events = await stream_events(client, stream_key("trades", "kraken:BTC-USD"))
    await client.aclose()
    assert [e.trade_id for e in events if isinstance(e, Trade)] == [str(n) for n in range(200)]
    assert publisher.stats.redis_ok and publisher.stats.dropped == 0


async def test_publisher_with_overflowing_buffer_drops_oldest_and_publishes_gap(
    own_redis: EmbeddedRedis,
) -> None:
    publisher = RedisPublisher(own_redis.url, max_buffer=50, retry_delay_s=0.05)
    publisher.start()
    own_redis.process.stop()
    publisher.publish(trade("coinbase:BTC-USD", n) for n in range(80))
    await asyncio.sleep(0.2)
    own_redis.process.start()
    await wait_for_redis(own_redis)
    await publisher.drain(30)
    await publisher.close()

    client = aioredis.from_url(own_redis.url)
    events = await stream_events(client, stream_key("trades", "coinbase:BTC-USD"))
    await client.aclose()
    assert isinstance(events[0], Gap) and events[0].reason == "publisher buffer overflow"
    assert [e.trade_id for e in events[1:] if isinstance(e, Trade)] == [
        str(n) for n in range(30, 80)
    ]
    assert publisher.stats.dropped == 30


async def test_publisher_with_an_event_it_cannot_encode_drops_it_and_publishes_the_rest(
    redis_url: str, redis_client: aioredis.Redis
) -> None:
    publisher = RedisPublisher(redis_url)
    publisher.start()
    broken = msgspec.structs.replace(trade("okx:BTC-USDT", 2), price=object())  # type: ignore[arg-type]

    publisher.publish([trade("okx:BTC-USDT", 1), broken, trade("okx:BTC-USDT", 3)])
    await publisher.drain(10)
    await publisher.close()

    published = await stream_events(redis_client, stream_key("trades", "okx:BTC-USDT"))
    assert [event.trade_id for event in published] == ["1", "3"]  # type: ignore[attr-defined]
    assert publisher.stats.dropped == 1
