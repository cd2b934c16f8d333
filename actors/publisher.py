"""Publishing events to Redis: the platform's one write path.

Events are buffered and written with ``XADD`` (approximate ``MAXLEN`` retention) to one stream per
instrument and channel, and quotes also land in the latest-quote hash. A batch goes out when it
is full or a few milliseconds after its first event, whichever comes first, as one Lua script
call whose payload is the whole batch in two length-prefixed blobs (Redis's Lua reads them with
its built-in ``struct``). Packing commands argument by argument is where redis-py spends its
time, so this is several times the throughput of pipelined ``XADD``. The script writes keys it is not
given as KEYS, so the platform expects a single-shard Redis (not Redis Cluster).

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
from itertools import islice

import msgspec
import redis.asyncio as aioredis
from redis.exceptions import RedisError

from cluster.events import AnyEvent, FeedStatus, Gap, MarketEvent, Quote, encode_event
from cluster.redis_keys import (
    EVENT_FIELD,
    QUOTES_HASH,
    channels_of,
    status_stream_key,
    stream_key,
)

__all__ = ["RedisPublisher", "PublisherStats"]

log = logging.getLogger(__name__)

STATUS_STREAM_MAXLEN = 1_000
_RECORD_HEADER = struct.Struct(">HII")
# One queued event, encoded: (its stream entries, its latest-quote record or b"", its instrument
# if it has one, its receive time).
_Packed = tuple[bytes, bytes, str | None, int]
# ARGV[1]: the event field name. ARGV[2]: stream entries, ARGV[3]: latest quotes, each a run of
# records: >HII (name length, maxlen, payload length), name, payload. KEYS[1]: the quotes hash.
_PUBLISH_BATCH = """
local field = ARGV[1]
local function each(data, apply)
  local pos = 1
  while pos <= #data do
    local name_len, maxlen, payload_len, start = struct.unpack('>HII', data, pos)
    local name = string.sub(data, start, start + name_len - 1)
    local payload = string.sub(data, start + name_len, start + name_len + payload_len - 1)
    apply(name, maxlen, payload)
    pos = start + name_len + payload_len
  end
end
local written = 0
each(ARGV[2], function(stream, maxlen, payload)
  redis.call('XADD', stream, 'MAXLEN', '~', maxlen, '*', field, payload)
  written = written + 1
end)
each(ARGV[3], function(instrument, _, payload)
  redis.call('HSET', KEYS[1], instrument, payload)
end)
return written
"""


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
        self._buffer: deque[_Packed] = deque()
        # Encoded stream names per (event type, instrument): the same few, event after event.
        self._streams: dict[tuple[type, str], tuple[bytes, ...]] = {}
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
        for event in events:
            try:
                buffer.append(self._packed(event))
            except (TypeError, msgspec.EncodeError) as error:
                # A field msgpack cannot carry is an adapter's bug: the event is dropped, loudly,
                # and the feed goes on.
                self.stats.dropped += 1
                log.error("dropped an event that cannot be encoded (%s): %r", error, event)
        overflow = len(buffer) - self.max_buffer
        for _ in range(max(0, overflow)):
            _, _, instrument, _ = buffer.popleft()
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
            if len(self._buffer) < self.max_batch:
                # Let a batch fill for a few milliseconds: one round trip carries many events.
                await asyncio.sleep(self.max_delay_s)
            while self._buffer or self._lost:
                if not await self._write_batch():
                    await asyncio.sleep(self.retry_delay_s)
            self._idle.set()

    async def _write_batch(self) -> bool:
        """Write up to ``max_batch`` buffered events; False (events kept) if Redis failed."""
        batch = list(islice(self._buffer, self.max_batch))
        gaps = self._gaps_for_lost()
        records = [*map(self._packed, gaps), *batch]
        entries = b"".join([record[0] for record in records])
        quotes = b"".join([record[1] for record in records])
        try:
            await self._publish_batch(keys=[QUOTES_HASH], args=[EVENT_FIELD, entries, quotes])
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
            Gap(instrument=i, exchange_ts_ns=now, receive_ts_ns=now, reason="publisher buffer overflow")
            for i in sorted(self._lost)
        ]

    def _packed(self, event: AnyEvent) -> _Packed:
        """One event as the script reads it: its stream entries, its latest-quote record."""
        payload = encode_event(event)
        size = len(payload)
        header = _RECORD_HEADER.pack
        instrument: str | None = None
        if isinstance(event, FeedStatus):
            names: tuple[bytes, ...] = (status_stream_key(event.venue).encode(),)
            maxlen = STATUS_STREAM_MAXLEN
        else:
            assert isinstance(event, MarketEvent)
            instrument = event.instrument
            kind = (event.__class__, instrument)
            cached = self._streams.get(kind)
            if cached is None:
                cached = self._streams[kind] = self._stream_names(event)
            names = cached
            maxlen = self.maxlen
        entries = b"".join(
            [part for name in names for part in (header(len(name), maxlen, size), name, payload)]
        )
        quote = b""
        if isinstance(event, Quote):
            name = event.instrument.encode()
            quote = b"".join((header(len(name), 0, size), name, payload))
        return entries, quote, instrument, event.receive_ts_ns

    @staticmethod
    def _stream_names(event: MarketEvent) -> tuple[bytes, ...]:
        return tuple(stream_key(c, event.instrument).encode() for c in channels_of(event))
