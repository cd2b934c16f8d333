"""The demo's simulated crypto exchange: a market that moves, checked by the OKX adapter as OKX
is, and a SimulatedVenue actor a feed actor streams from into Redis."""

from __future__ import annotations

import json
import math
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import ray
import redis.asyncio as aioredis
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from actors.demo import simulated_config
from actors.feed import FeedActor
from actors.replay import replay_files
from actors.simulated.market import LISTINGS, STEP_S, SimulatedMarket, first_trade_id_at
from actors.simulated.market_capture import write_market_capture
from actors.simulated.venue import SimulatedVenue, SimulatedVenueReport
from actors.venues.base import ConfigError, VenueConfig
from actors.venues.simulated import SimulatedAdapter
from cluster.ports import free_port
from core.events import (
    AnyEvent,
    BookDelta,
    BookSnapshot,
    FeedStatus,
    MarketEvent,
    Quote,
    Trade,
    decode_event,
)
from core.redis_keys import EVENT_FIELD, QUOTES_HASH, status_stream_key, stream_key
from tests.polling import wait_until

SYMBOLS = [listing.inst_id for listing in LISTINGS]
ONE_MINUTE = round(60 / STEP_S)  # in steps


def run(market: SimulatedMarket, steps: int) -> list[tuple[str, str, str]]:
    return [frame for step in range(1, steps + 1) for frame in market.stream_frames(step)]


def without_times(frames: list[tuple[str, str, str]]) -> list[object]:
    def strip(value: object) -> object:
        if isinstance(value, dict):
            return {k: strip(v) for k, v in value.items() if k != "ts"}
        if isinstance(value, list):
            return [strip(v) for v in value]
        return value

    return [(channel, inst, strip(json.loads(text))) for channel, inst, text in frames]


def test_market_opens_at_realistic_prices_with_fifty_levels_a_side() -> None:
    market = SimulatedMarket()

    opening = {inst: float(market.best_bid(inst)) for inst in SYMBOLS}

    assert opening == pytest.approx({"BTC-USDT": 97_000, "ETH-USDT": 3_600, "SOL-USDT": 240}, 1e-3)
    for inst in SYMBOLS:
        assert len(market.bids(inst)) == len(market.asks(inst)) == 50
        assert float(market.best_bid(inst)) < float(market.best_ask(inst))


def test_mid_random_walks_with_volatility_that_clusters() -> None:
    market = SimulatedMarket(LISTINGS[:1], seed=3)
    book = market.books["BTC-USDT"]
    mids = [book.mid]
    for step in range(10 * ONE_MINUTE):
        market.stream_frames(step)
        mids.append(book.mid)

    moves = [abs(math.log(b / a)) for a, b in zip(mids, mids[1:], strict=False)]
    assert len(set(mids)) > 1_000
    # Busy steps follow busy steps: |returns| are correlated, which an i.i.d. walk's are not.
    mean = sum(moves) / len(moves)
    dev = [m - mean for m in moves]
    lag1 = sum(a * b for a, b in zip(dev, dev[1:], strict=False)) / sum(d * d for d in dev)
    assert lag1 > 0.1
    # As volatile as BTC's 50% a year, within a factor of two.
    per_step = math.sqrt(sum(math.log(b / a) ** 2 for a, b in zip(mids, mids[1:], strict=False)))
    annualized = per_step / math.sqrt(len(moves) * STEP_S / (365 * 86_400))
    assert 0.25 < annualized < 1.0


def test_frames_verify_with_the_adapter_and_sequence_ids_continue() -> None:
    market = SimulatedMarket()
    adapter = SimulatedAdapter(VenueConfig(venue="simulated", symbols=SYMBOLS, ws_url="ws://x"))
    conn = adapter.connections()[0]
    out = adapter.on_open(conn, 0)
    for inst in SYMBOLS:
        out.extend(adapter.on_message(conn, market.snapshot_frame(inst), 0))
    frames = run(market, ONE_MINUTE)
    for _, _, text in frames:
        out.extend(adapter.on_message(conn, text, 0))

    assert not out.problems
    books = [json.loads(text)["data"][0] for channel, _, text in frames if channel == "books"]
    assert adapter.checksums_verified == len(books) + len(SYMBOLS)
    last: dict[str, int] = {}
    for channel, inst, text in frames:
        if channel == "books":
            data = json.loads(text)["data"][0]
            if inst in last:
                assert data["prevSeqId"] == last[inst]
            assert data["seqId"] > data["prevSeqId"]
            last[inst] = data["seqId"]
    for inst in SYMBOLS:
        book = adapter.books[f"simulated:{inst}"]
        assert book.best_bid() == tuple(market.bids(inst)[0][:2])
        assert book.best_ask() == tuple(market.asks(inst)[0][:2])
        assert book.depth() == (50, 50)
    trades = [e for e in out.events if isinstance(e, Trade)]
    quotes = [e for e in out.events if isinstance(e, Quote)]
    assert {e.instrument for e in trades} == {f"simulated:{inst}" for inst in SYMBOLS}
    # A few trades a second per instrument, at the touch.
    assert 1 * 60 * len(SYMBOLS) < len(trades) < 10 * 60 * len(SYMBOLS)
    assert len(quotes) > 60 * len(SYMBOLS)
    assert sum(isinstance(e, BookDelta) for e in out.events) == len(books)


def test_market_repeats_for_a_seed_and_differs_between_seeds() -> None:
    first, second, other = (SimulatedMarket(seed=seed) for seed in (7, 7, 8))

    assert without_times(run(first, 300)) == without_times(run(second, 300))
    assert without_times(run(other, 300)) != without_times(run(SimulatedMarket(seed=7), 300))
    assert first.prices() == second.prices() != other.prices()


def test_market_capture_replays_through_the_adapter_stamped_by_its_virtual_clock(
    tmp_path: Path,
) -> None:
    start_ns = 1_700_000_040 * 1_000_000_000
    capture, again = tmp_path / "simulated.ws", tmp_path / "again.ws"
    for path in (capture, again):
        write_market_capture(path, duration_s=60, start_ns=start_ns, seed=7)
    events: list[AnyEvent] = []

    adapter, summary = replay_files(SimulatedAdapter, capture, sink=events.extend)

    assert again.read_bytes() == capture.read_bytes()
    assert not summary.problems and not summary.unanswered_requests
    deltas = sum(isinstance(e, BookDelta) for e in events)
    assert adapter.checksums_verified == deltas + len(SYMBOLS)
    # The market as it streams, a minute of it, each step's frames at that step's time.
    market = SimulatedMarket(seed=7, first_trade_id=first_trade_id_at(start_ns))
    streamed = [
        json.loads(text)["data"][0]
        for channel, _, text in run(market, ONE_MINUTE)
        if channel == "trades"
    ]
    trades = [e for e in events if isinstance(e, Trade)]
    assert [(t.trade_id, t.price, t.size) for t in trades] == [
        (d["tradeId"], d["px"], d["sz"]) for d in streamed
    ]
    step_ns = round(STEP_S * 1e9)
    stamps = {e.exchange_ts_ns for e in events if isinstance(e, MarketEvent)}
    assert stamps <= set(range(start_ns, start_ns + 60 * 1_000_000_000 + 1, step_ns))
    assert max(stamps) == start_ns + 60 * 1_000_000_000


def test_adapter_without_a_url_says_the_venue_belongs_to_the_demo() -> None:
    with pytest.raises(ConfigError, match="finone up --demo"):
        SimulatedAdapter(simulated_config(None))


@pytest.fixture
async def redis_client(redis_url: str) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.from_url(redis_url)
    await client.flushdb()
    yield client
    await client.aclose()


async def test_feed_actor_streams_the_simulated_venue_actor_into_redis(
    ray_cluster: None, redis_url: str, redis_client: aioredis.Redis
) -> None:
    venue = SimulatedVenue.remote(free_port(), 1)  # type: ignore[attr-defined]
    feed = None
    try:
        report: SimulatedVenueReport = await venue.status.remote()
        assert report.url.startswith("ws://127.0.0.1:") and report.clients == 0
        feed = FeedActor.options(  # type: ignore[attr-defined]
            scheduling_strategy=NodeAffinitySchedulingStrategy(report.node_id, soft=False)
        ).remote(simulated_config(report.url), "simulated-0", redis_url, stream_maxlen=10_000)

        async def streamed() -> bool:
            return all(
                [
                    await redis_client.xlen(stream_key("trades", f"simulated:{inst}")) >= 3
                    for inst in SYMBOLS
                ]
            )

        await wait_until(streamed, 30, "simulated trades in Redis")
        status = await feed.status.remote()
        assert status.state == "live" and status.venue == "simulated" and not status.problems
        for inst in SYMBOLS:
            assert await redis_client.hget(QUOTES_HASH, f"simulated:{inst}") is not None
            entries = await redis_client.xrange(stream_key("book", f"simulated:{inst}"))
            events = [decode_event(fields[EVENT_FIELD]) for _, fields in entries]
            assert isinstance(events[0], BookSnapshot) and len(events[0].bids) == 50
            assert any(isinstance(e, BookDelta) for e in events)
        statuses = await redis_client.xrange(status_stream_key("simulated"))
        states = [decode_event(fields[EVENT_FIELD]) for _, fields in statuses]
        assert any(isinstance(e, FeedStatus) and e.state == "live" for e in states)
        assert (await venue.status.remote()).clients == 1

        await venue.shutdown.remote()

        async def lost_the_venue() -> bool:
            return (await feed.status.remote()).state != "live"

        await wait_until(lost_the_venue, 30, "the feed to see the venue go")
    finally:
        if feed is not None:
            await feed.shutdown.remote()
            ray.kill(feed, no_restart=True)
        ray.kill(venue, no_restart=True)
