"""The feed actor: one long-lived Ray actor per venue connection.

It runs the venue adapter over its connection (``ConnectionRunner``, or ``ReplayRunner`` for
the replay venue, whose connection is a capture file), publishes every event to
Redis (``RedisPublisher``), counts what went wrong per kind, and answers status, restart and
recording requests. Ray restarts it if its process dies (``max_restarts=-1``); the constructor
starts its loops again, and the fresh connection's gaps tell readers what they may have missed.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import time
from collections import deque
from pathlib import Path

import httpx
import msgspec
import ray
from ray.util.metrics import Counter, Gauge, Histogram

from actors.capture import CaptureWriter
from actors.connection import Backoff, ConnectionRunner
from actors.publisher import RedisPublisher
from actors.replay import ReplayRunner
from actors.venues import adapter_for
from actors.venues.base import ConfigError, ConnectionSpec, Output, VenueConfig
from core.events import FeedStatus, Gap, feed_status_now

__all__ = ["FeedActor", "FeedReport"]

log = logging.getLogger(__name__)

RATE_WINDOW_S = 10.0
# Seconds: batches leave within milliseconds (5 ms batching); seconds mean Redis is struggling.
PUBLISH_BUCKETS_S = [
    0.0005,
    0.001,
    0.002,
    0.005,
    0.01,
    0.02,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
]


# Allocations (net) between young-generation collections in a feed process; Python's is 700.
GC_YOUNG_THRESHOLD = 10_000


class FeedReport(msgspec.Struct, frozen=True, kw_only=True):
    """One feed connection as its actor reports it. ``state`` is the runner's (connecting, live,
    reconnecting, ...), ``failed`` when the adapter could not start, ``unreachable`` when a
    reader got no answer; the counters are absent then."""

    venue: str
    connection: str
    state: str
    detail: str = ""
    symbols: list[str] = []
    connected_since_ns: int | None = None
    last_message_age_s: float | None = None
    messages: int | None = None
    events: int | None = None
    messages_per_s: float | None = None
    events_per_s: float | None = None
    gaps: int | None = None
    reconnects: int | None = None
    rotations: int | None = None
    problems: dict[str, int] = {}
    recording: bool | None = None
    # Events written to Redis, and those queued for it (grows while Redis is unreachable).
    published: int | None = None
    unpublished: int | None = None
    redis_ok: bool | None = None


def _tune_garbage_collection() -> None:
    """The feed's process lives for this actor alone. Between two Redis writes the publisher holds
    thousands of fresh events, so at Python's default threshold the collector runs hundreds of
    times a second, promotes them, and its older generations rescan the whole Ray worker heap:
    about 8% of the feed's CPU, measured. What the worker loaded before the feed started is frozen
    out of collection, and young collections wait for more allocations."""
    gc.freeze()
    gc.set_threshold(GC_YOUNG_THRESHOLD, *gc.get_threshold()[1:])


class _FeedMetrics:
    """Prometheus metrics of one feed connection, exported through Ray's metrics agent."""

    def __init__(self, venue: str, connection: str) -> None:
        keys = ("venue", "connection")
        self.tags = {"venue": venue, "connection": connection}
        self.messages = Counter("finone_feed_messages", "Frames received from venues", keys)
        self.events = Counter("finone_feed_events", "Market events published by feeds", keys)
        self.problems = Counter(
            "finone_feed_problems", "Bad input and continuity problems, per kind", (*keys, "kind")
        )
        self.gaps = Counter("finone_feed_gaps", "Gap events published", keys)
        self.reconnects = Counter("finone_feed_reconnects", "Connection re-establishments", keys)
        self.rotations = Counter(
            "finone_feed_rotations", "Connections replaced at their age limit without a gap", keys
        )
        self.live = Gauge("finone_feed_live", "1 while the connection is live", keys)
        self.last_message_age = Gauge(
            "finone_feed_last_message_age_seconds", "Seconds since the last frame", keys
        )
        self.publish_seconds = Histogram(
            "finone_feed_publish_seconds",
            "Seconds from receiving a batch's oldest event to its Redis write returning",
            PUBLISH_BUCKETS_S,
            keys,
        )

    def observe_publish(self, seconds: float) -> None:
        self.publish_seconds.observe(seconds, tags=self.tags)


class _FeedSink:
    """Where a feed's runner hands every adapter output: its events go to the publisher and are
    counted, its problems to the metrics. A plain object rather than a method of the actor: Ray
    wraps every method of an actor class for tracing, a cost the per-frame path would pay."""

    def __init__(self, publisher: RedisPublisher, metrics: _FeedMetrics) -> None:
        self._publisher = publisher
        self._metrics = metrics
        # Counted here and handed to the metric once a second (by the actor): a metric update
        # per frame costs the feed as much as the order book does.
        self.market_events = 0
        self.gaps = 0

    def __call__(self, out: Output) -> None:
        if out.events:
            self._publisher.publish(out.events)
            for event in out.events:
                kind = event.__class__
                if kind is FeedStatus:
                    continue
                self.market_events += 1
                if kind is Gap:
                    self.gaps += 1
                    self._metrics.gaps.inc(tags=self._metrics.tags)
        for problem in out.problems:
            self._metrics.problems.inc(tags={**self._metrics.tags, "kind": problem.kind})


@ray.remote(max_restarts=-1, num_cpus=0.1)
class FeedActor:
    def __init__(
        self,
        config: VenueConfig,
        connection: str,
        redis_url: str,
        *,
        stream_maxlen: int,
        capture_dir: str | None = None,
        record: bool = False,
    ) -> None:
        _tune_garbage_collection()
        self.config = config
        self.connection = connection
        self._metrics = _FeedMetrics(config.venue, connection)
        # Replayed events carry the capture's receive times, so their age says nothing.
        self._publisher = RedisPublisher(
            redis_url,
            maxlen=stream_maxlen,
            on_batch_written=(
                None if config.replay_file is not None else self._metrics.observe_publish
            ),
        )
        self._publisher.start()
        self._capture_dir = Path(capture_dir) if capture_dir else None
        self._stop = asyncio.Event()
        self._http = httpx.AsyncClient()
        self._runner: ConnectionRunner | ReplayRunner | None = None
        self._error = ""
        self._sink = _FeedSink(self._publisher, self._metrics)
        self._samples: deque[tuple[float, int, int]] = deque()
        try:
            adapter = adapter_for(config.venue)(config)
            spec = self._find_spec(adapter.connections(), connection)
        except (ConfigError, KeyError) as error:
            # A configuration that can never work is reported, not retried forever.
            self._error = str(error.args[0]) if error.args else str(error)
            log.error("feed %s cannot start: %s", connection, self._error)
            self._publish_status("failed", self._error)
            return
        if config.replay_file is not None:
            self._runner = ReplayRunner(
                type(adapter),
                spec,
                self._sink,
                ws_file=Path(config.replay_file),
                rest_files=tuple(Path(path) for path in config.replay_rest_files),
                pace_s=config.replay_pace_s,
                loop=config.replay_loop,
            )
        else:
            self._runner = ConnectionRunner(
                adapter, spec, self._sink, http=self._http, backoff=Backoff()
            )
        if record and isinstance(self._runner, ConnectionRunner):
            self._start_recording()
        loop = asyncio.get_running_loop()
        self._tasks = [
            loop.create_task(self._runner.run(self._stop), name=f"feed {connection}"),
            loop.create_task(self._sample_rates(), name=f"rates {connection}"),
        ]

    @staticmethod
    def _find_spec(specs: list[ConnectionSpec], name: str) -> ConnectionSpec:
        for spec in specs:
            if spec.name == name:
                return spec
        raise ConfigError(f"the venue no longer plans a connection named {name!r}")

    def _publish_status(self, state: str, detail: str) -> None:
        self._publisher.publish(
            [feed_status_now(self.config.venue, self.connection, state, detail)]
        )

    async def _sample_rates(self) -> None:
        """Keep a window of (time, messages, events) so status can report per-second rates."""
        assert self._runner is not None
        m = self._metrics
        reported_messages = reported_reconnects = reported_rotations = reported_events = 0
        while True:
            stats = self._runner.stats
            now = time.monotonic()
            self._samples.append((now, stats.messages, stats.events))
            while self._samples and now - self._samples[0][0] > RATE_WINDOW_S:
                self._samples.popleft()
            if stats.messages > reported_messages:
                m.messages.inc(stats.messages - reported_messages, tags=m.tags)
            if stats.reconnects > reported_reconnects:
                m.reconnects.inc(stats.reconnects - reported_reconnects, tags=m.tags)
            if self._sink.market_events > reported_events:
                m.events.inc(self._sink.market_events - reported_events, tags=m.tags)
            if stats.rotations > reported_rotations:
                m.rotations.inc(stats.rotations - reported_rotations, tags=m.tags)
            reported_messages, reported_reconnects = stats.messages, stats.reconnects
            reported_rotations = stats.rotations
            reported_events = self._sink.market_events
            m.live.set(1.0 if stats.state == "live" else 0.0, tags=m.tags)
            if stats.last_message_ns is not None:
                m.last_message_age.set((time.time_ns() - stats.last_message_ns) / 1e9, tags=m.tags)
            await asyncio.sleep(1.0)

    def _rates(self) -> tuple[float, float]:
        if len(self._samples) < 2:
            return 0.0, 0.0
        (t0, m0, e0), (t1, m1, e1) = self._samples[0], self._samples[-1]
        elapsed = max(t1 - t0, 1e-9)
        return (m1 - m0) / elapsed, (e1 - e0) / elapsed

    async def status(self) -> FeedReport:
        """What an operator needs to judge this connection."""
        if self._runner is None:
            return FeedReport(
                venue=self.config.venue,
                connection=self.connection,
                state="failed",
                detail=self._error,
            )
        stats = self._runner.stats
        now = time.time_ns()
        messages_per_s, events_per_s = self._rates()
        return FeedReport(
            venue=self.config.venue,
            connection=self.connection,
            state=stats.state,
            detail=stats.detail,
            symbols=list(self._runner.spec.symbols),
            connected_since_ns=stats.connected_since_ns,
            last_message_age_s=(
                None if stats.last_message_ns is None else (now - stats.last_message_ns) / 1e9
            ),
            messages=stats.messages,
            events=stats.events,
            messages_per_s=round(messages_per_s, 1),
            events_per_s=round(events_per_s, 1),
            gaps=self._sink.gaps,
            reconnects=stats.reconnects,
            rotations=stats.rotations,
            problems=dict(stats.problems),
            recording=self._runner.capture is not None,
            published=self._publisher.stats.published,
            unpublished=self._publisher.backlog(),
            redis_ok=self._publisher.stats.redis_ok,
        )

    async def pid(self) -> int:
        """The actor's process (operators and tests kill it, benchmarks read its memory)."""
        return os.getpid()

    async def restart(self) -> None:
        """Drop the connection now; it reconnects (with a gap) straight away."""
        if self._runner is not None:
            self._runner.close_now()

    async def set_recording(self, on: bool) -> str | None:
        """Switch raw-frame recording; returns the capture file being written, if any."""
        if self._runner is None:
            return None
        if on and self._runner.capture is None and isinstance(self._runner, ConnectionRunner):
            self._start_recording()
        elif not on and self._runner.capture is not None:
            self._runner.capture.close()
            self._runner.capture = None
        return str(self._runner.capture.path) if self._runner.capture else None

    def _start_recording(self) -> None:
        assert self._runner is not None
        if self._capture_dir is None:
            raise ConfigError("no capture directory configured for recording")
        stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime())
        path = self._capture_dir / f"{self.connection}.{stamp}.ws"
        self._runner.capture = CaptureWriter(path)

    async def shutdown(self) -> None:
        """Close the connection and flush what is queued; the actor can then be killed."""
        self._stop.set()
        if self._runner is not None:
            await asyncio.wait(self._tasks[:1], timeout=10)
            if self._runner.capture is not None:
                self._runner.capture.close()
        await self._publisher.close()
        await self._http.aclose()
