"""Publishing events to Redis: the platform's one write path.

Events are buffered and written with ``XADD`` (approximate ``MAXLEN`` retention) to one stream per
instrument and channel, and quotes also land in the latest-quote hash. A batch goes out when it
is full or a few milliseconds after its first event, whichever comes first, as one Lua script
call. Packing commands argument by argument is where redis-py spends its time, and so is any
Python work per event: the feed pays it on its own core. So an event costs the feed one encode
and one append; a batch is three blobs built by C-level joins (where each event goes, its size,
the encoded events), which the script takes apart with Redis's built-in ``struct``. The script
writes keys it is not given as KEYS, so the platform expects a single-shard Redis (not Redis
Cluster).

When Redis is unreachable the buffer holds events (bounded); if it overflows, the oldest events
are dropped and a ``Gap`` is published for every instrument that lost some, once Redis is back.
"""

from __future__ import annotations

import asyncio
import logging
import struct
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from itertools import chain, islice
from operator import itemgetter

import msgspec
import redis.asyncio as aioredis
from redis.exceptions import RedisError

from core.events import AnyEvent, FeedStatus, Gap, MarketEvent, Quote, encode_event
from core.redis_keys import (
    EVENT_FIELD,
    QUOTES_HASH,
    channels_of,
    status_stream_key,
    stream_key,
)

__all__ = ["RedisPublisher", "PublisherStats"]

log = logging.getLogger(__name__)

STATUS_STREAM_MAXLEN = 1_000
# One queued event: (its route's id, its encoded size, the encoded event, its receive time).
_Queued = tuple[int, int, bytes, int]
_ROUTE_ID = itemgetter(0)
_ROUTE_ID_AND_SIZE = itemgetter(0, 1)
_PAYLOAD = itemgetter(2)
# ARGV[1]: the event field name. ARGV[2]: the batch's routes, each >IIB (id, maxlen, stream
# count), then per stream >H + name, then >H + latest-quote field (empty: none).
# ARGV[3]: per event >II (route id, size). ARGV[4]: the encoded events back to back.
# KEYS[1]: the quotes hash.
_PUBLISH_BATCH = """
local field, routes_blob, index, payloads = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local routes = {}
local pos = 1
while pos <= #routes_blob do
  local id, maxlen, count
  id, maxlen, count, pos = struct.unpack('>IIB', routes_blob, pos)
  local streams = {}
  for i = 1, count do
    streams[i], pos = struct.unpack('>Hc0', routes_blob, pos)
  end
  local quote
  quote, pos = struct.unpack('>Hc0', routes_blob, pos)
  routes[id] = {streams, maxlen, quote}
end
local written = 0
local at = 1
for i = 1, #index, 8 do
  local id, size = struct.unpack('>II', index, i)
  local payload = string.sub(payloads, at, at + size - 1)
  at = at + size
  local route = routes[id]
  local maxlen = route[2]
  for _, stream in ipairs(route[1]) do
    redis.call('XADD', stream, 'MAXLEN', '~', maxlen, '*', field, payload)
  end
  if route[3] ~= '' then
    redis.call('HSET', KEYS[1], route[3], payload)
  end
  written = written + 1
end
return written
"""


@dataclass(frozen=True, slots=True)
class _Route:
    """Where one kind of event about one instrument (or one venue's status) is written."""

    id: int
    # As the script reads it (ARGV[2]).
    record: bytes
    # Whose events are lost when the buffer overflows (None: feed status).
    instrument: str | None


@dataclass
class PublisherStats:
    published: int = 0
    batches: int = 0
    errors: int = 0
    dropped: int = 0
    redis_ok: bool = True


class RedisPublisher:
    def __init__(
        self,
        redis_url: str,
        *,
        maxlen: int = 100_000,
        max_batch: int = 1_000,
        max_delay_s: float = 0.005,
        max_buffer: int = 200_000,
        retry_delay_s: float = 0.5,
        on_batch_written: Callable[[float], None] | None = None,
    ) -> None:
        self._redis = aioredis.from_url(redis_url, socket_timeout=5, socket_connect_timeout=5)
        # A registered script reloads itself after a Redis restart (NOSCRIPT).
        self._publish_batch = self._redis.register_script(_PUBLISH_BATCH)
        self.maxlen = maxlen
        self.max_batch = max_batch
        self.max_delay_s = max_delay_s
        self.max_buffer = max_buffer
        self.retry_delay_s = retry_delay_s
        # Told, once per batch in Redis, the seconds since its first event was received: the
        # buffer is in arrival order, so that is the batch's oldest and costs nothing per event.
        self._on_batch_written = on_batch_written
        self.stats = PublisherStats()
        # Events are encoded as they are queued, while the adapter's objects are still in the
        # CPU's caches (encoding a batch later costs twice as much) and can be freed at once.
        self._buffer: deque[_Queued] = deque()
        # Routes per (event type, instrument), or (FeedStatus, venue): the same few, event after
        # event; by id for the batches.
        self._routes: dict[tuple[type, str], _Route] = {}
        self._routes_by_id: list[_Route] = []
        self._lost: set[str] = set()
        self._wakeup = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="publisher")

    def publish(self, events: Iterable[AnyEvent]) -> None:
        """Queue events; never blocks, never raises."""
        buffer = self._buffer
        routes = self._routes
        for event in events:
            try:
                route = routes[event.__class__, event.instrument]  # type: ignore[union-attr]
            except (KeyError, AttributeError):
                route = self._route(event)
            try:
                payload = encode_event(event)
            except (TypeError, msgspec.EncodeError) as error:
                # A field msgpack cannot carry is an adapter's bug: the event is dropped, loudly,
                # and the feed goes on.
                self.stats.dropped += 1
                log.error("dropped an event that cannot be encoded (%s): %r", error, event)
                continue
            buffer.append((route.id, len(payload), payload, event.receive_ts_ns))
        overflow = len(buffer) - self.max_buffer
        for _ in range(max(0, overflow)):
            instrument = self._routes_by_id[buffer.popleft()[0]].instrument
            self.stats.dropped += 1
            if instrument is not None:
                self._lost.add(instrument)
        if buffer:
            self._idle.clear()
            self._wakeup.set()

    def backlog(self) -> int:
        """Events queued and not yet in Redis."""
        return len(self._buffer)

    async def drain(self, timeout_s: float = 30.0) -> None:
        """Wait until everything queued so far is in Redis (or the timeout passes)."""
        await asyncio.wait_for(self._idle.wait(), timeout_s)

    async def close(self) -> None:
        if self._task is not None:
            try:
                await self.drain(5.0)
            except TimeoutError:
                log.warning("closing the publisher with %d events unpublished", len(self._buffer))
            self._task.cancel()
            self._task = None
        await self._redis.aclose()

    async def _run(self) -> None:
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            filling_since = time.monotonic()
            while self._buffer or self._lost:
                if len(self._buffer) < self.max_batch:
                    # Let a batch fill for a few milliseconds from when the last one left: one
                    # round trip carries many events. Writing whatever had come whenever the
                    # feed gave the loop a turn made many small batches, each costing the feed's
                    # core a Redis call.
                    await asyncio.sleep(
                        max(0.0, self.max_delay_s - (time.monotonic() - filling_since))
                    )
                filling_since = time.monotonic()
                if not await self._write_batch():
                    await asyncio.sleep(self.retry_delay_s)
            self._idle.set()

    async def _write_batch(self) -> bool:
        """Write up to ``max_batch`` buffered events; False (events kept) if Redis failed."""
        batch = list(islice(self._buffer, self.max_batch))
        gaps = self._gaps_for_lost()
        queued = [*map(self._queued, gaps), *batch]
        routes = b"".join([self._routes_by_id[i].record for i in set(map(_ROUTE_ID, queued))])
        flat = list(chain.from_iterable(map(_ROUTE_ID_AND_SIZE, queued)))
        index = struct.pack(f">{len(flat)}I", *flat)
        payloads = b"".join(map(_PAYLOAD, queued))
        try:
            await self._publish_batch(
                keys=[QUOTES_HASH], args=[EVENT_FIELD, routes, index, payloads]
            )
        except (RedisError, OSError) as error:
            self.stats.errors += 1
            if self.stats.redis_ok:
                log.error("publishing to Redis failed (%s); holding events and retrying", error)
            self.stats.redis_ok = False
            return False
        if not self.stats.redis_ok:
            log.info("Redis is reachable again; publishing resumed")
        self.stats.redis_ok = True
        self._lost.difference_update(g.instrument for g in gaps)
        for _ in batch:
            self._buffer.popleft()
        self.stats.published += len(batch) + len(gaps)
        self.stats.batches += 1
        if batch and self._on_batch_written is not None:
            self._on_batch_written((time.time_ns() - batch[0][3]) / 1e9)
        return True

    def _gaps_for_lost(self) -> list[Gap]:
        now = time.time_ns()
        return [
            Gap(
                instrument=i,
                exchange_ts_ns=now,
                receive_ts_ns=now,
                reason="publisher buffer overflow",
            )
            for i in sorted(self._lost)
        ]

    def _queued(self, event: AnyEvent) -> _Queued:
        payload = encode_event(event)
        return self._route(event).id, len(payload), payload, event.receive_ts_ns

    def _route(self, event: AnyEvent) -> _Route:
        """The route of an event's kind and instrument (or venue, for feed status), made the
        first time it is needed."""
        if isinstance(event, FeedStatus):
            key: tuple[type, str] = (FeedStatus, event.venue)
        else:
            assert isinstance(event, MarketEvent)
            key = (event.__class__, event.instrument)
        route = self._routes.get(key)
        if route is not None:
            return route
        if isinstance(event, FeedStatus):
            names = [status_stream_key(event.venue)]
            maxlen, quote_field, instrument = STATUS_STREAM_MAXLEN, "", None
        else:
            names = [stream_key(channel, event.instrument) for channel in channels_of(event)]
            maxlen, instrument = self.maxlen, event.instrument
            quote_field = instrument if isinstance(event, Quote) else ""
        route_id = len(self._routes_by_id)
        record = struct.pack(">IIB", route_id, maxlen, len(names)) + b"".join(
            _with_length(text) for text in [*names, quote_field]
        )
        route = _Route(route_id, record, instrument)
        self._routes[key] = route
        self._routes_by_id.append(route)
        return route


def _with_length(text: str) -> bytes:
    data = text.encode()
    return struct.pack(">H", len(data)) + data
