"""One reader of Redis streams per gateway replica, fanning events out to subscribed clients.

A single XREAD (blocking briefly) covers every stream any client of the replica wants, so the cost
in Redis does not grow with the number of clients. Each event is decoded and rendered to JSON once,
whatever the number of clients it goes to. Books are kept here as well, so that a client that
fell behind can be sent the current book instead of every delta it missed.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from typing import Protocol

import msgspec
import redis.asyncio as aioredis
from ray.util import metrics
from redis.typing import KeyT, StreamIdT

from actors.book import OrderBook
from core.events import (
    MODEL_CHANNELS,
    AnyEvent,
    BookDelta,
    BookSnapshot,
    Gap,
    MarketEvent,
    decode_event,
    event_to_json,
)
from core.redis_keys import EVENT_FIELD, PREDICTION_INTEREST
from core.redis_replies import StreamEntries, stream_entries, stream_reads
from core.stream_ids import parse_id, read_lag_s
from serve.auth.revocation import Revocations, RevocationWatch
from serve.background import keep_running
from serve.connection_leases import ConnectionLeases, Lease
from serve.heartbeats import Heartbeats

__all__ = [
    "Item",
    "Subscriber",
    "StreamHub",
    "LiveMetrics",
    "item_of",
    "decode_entry",
    "INTEREST_FRESH_S",
]

log = logging.getLogger(__name__)
_BLOCK_MS = 100
_READ_COUNT = 1_000
_RETRY_S = 1.0
# Forecasts and insights are made for the instruments some replica's clients want: each replica
# says which streams of the model channels in Redis this often, and inference forgets a stream
# nobody has wanted for INTEREST_FRESH_S.
_INTEREST_REFRESH_S = 5.0
INTEREST_FRESH_S = 3 * _INTEREST_REFRESH_S
_BOOKS = "book:"
# How far back a new book reader looks for the latest snapshot (a venue resends one only on a
# resync), and in pages of how many entries.
_BOOK_SEARCH_LIMIT = 20_000
_BOOK_PAGE = 1_000


@dataclass(frozen=True, slots=True)
class Item:
    """One event on its way to clients, already rendered as a JSON fragment."""

    stream: str
    entry_id: str
    position: tuple[int, int]
    kind: str
    instrument: str
    fragment: bytes


_encode = msgspec.json.Encoder().encode


def item_of(stream: str, entry_id: str, event: MarketEvent) -> Item:
    fragment = b"".join(
        (
            b'{"stream":',
            _encode(stream),
            b',"id":"',
            entry_id.encode(),
            b'","event":',
            event_to_json(event),
            b"}",
        )
    )
    kind = type(event).__struct_config__.tag
    return Item(stream, entry_id, parse_id(entry_id), str(kind), event.instrument, fragment)


@dataclass(slots=True)
class _TrackedBook:
    book: OrderBook
    exchange_ts_ns: int = 0
    receive_ts_ns: int = 0
    # The stream entry the book stands at.
    entry_id: str = "0-0"


class Subscriber(Protocol):
    def offer(self, item: Item) -> None: ...


class LiveMetrics:
    """The live feed's Prometheus metrics: one set per replica, made with its hub."""

    def __init__(self) -> None:
        self.clients = metrics.Gauge(
            "finone_live_clients", "Live-feed clients connected to this replica"
        )
        self.stream_lag = metrics.Gauge(
            "finone_live_stream_lag_seconds",
            "Seconds from the Redis time (stream id) of the newest entry the hub read to its "
            "reading it; 0 when a read found nothing new",
        )
        self.events_sent = metrics.Counter("finone_live_events_sent", "Events sent to clients")
        self.frames_sent = metrics.Counter("finone_live_frames_sent", "Data frames sent to clients")
        self.disconnects = metrics.Counter(
            "finone_live_disconnects", "Live-feed connections ended, per reason", ("reason",)
        )


class StreamHub:
    def __init__(self, redis_url: str, revocations: Revocations, heartbeat_s: float) -> None:
        # Its own connection: a blocking XREAD must not hold up anybody else's commands.
        self._redis = aioredis.from_url(redis_url, socket_timeout=5 + _BLOCK_MS / 1000)
        # Ends the replica's connections whose tokens are revoked while they are open.
        self.revocation_watch = RevocationWatch(revocations)
        self.heartbeats = Heartbeats(heartbeat_s)
        # Everything is indexed by Redis key: one stream *name* ("alerts") stands for a
        # different key for every user.
        self._subscribers: dict[str, set[Subscriber]] = {}
        self._names: dict[str, str] = {}
        # Typed as XREAD takes it: redis-py asks for a Dict of any key and id spelling.
        self._positions: dict[KeyT, StreamIdT] = {}
        self._books: dict[str, _TrackedBook] = {}
        self._changed = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.leases = ConnectionLeases(self._redis)
        self._clients = 0
        self._interest_said_at = 0.0
        self.metrics = LiveMetrics()

    async def admit(self, user_id: str, limit: int) -> Lease | None:
        """A lease for a new connection of ``user_id``, or None when the user already holds
        ``limit`` on the gateway replicas together. Raises RedisError when Redis cannot say."""
        lease = await self.leases.take(user_id, limit)
        if lease is None:
            self.metrics.disconnects.inc(tags={"reason": "too_many_connections"})
            return None
        self._clients += 1
        self.metrics.clients.set(self._clients)
        return lease

    async def release(self, lease: Lease) -> None:
        self._clients -= 1
        self.metrics.clients.set(self._clients)
        await self.leases.give_back(lease)

    @property
    def redis(self) -> aioredis.Redis:
        return self._redis

    async def subscribe(self, subscriber: Subscriber, streams: dict[str, str]) -> None:
        """From now on ``subscriber`` is offered every new event of these streams (name -> key)."""
        # Positions are read first: nothing below awaits, so concurrent subscriptions to the same
        # new stream cannot interleave half-registered.
        starts = {
            key: await self._last_id(key) for key in streams.values() if key not in self._names
        }
        books = {
            key: await self._book_at(key, starts[key])
            for name, key in streams.items()
            if key in starts and name.startswith(_BOOKS)
        }
        for name, key in streams.items():
            if key not in self._names:
                self._names[key] = name
                self._positions[key] = starts[key]
                self._subscribers[key] = set()
                if (book := books.get(key)) is not None:
                    self._books[key] = book
            self._subscribers[key].add(subscriber)
        self._changed.set()
        if any(_made_by_models(name) for name in streams):
            await self._say_interest()
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="stream-hub")

    def unsubscribe(self, subscriber: Subscriber, keys: list[str]) -> None:
        for key in keys:
            subscribers = self._subscribers.get(key)
            if subscribers is None:
                continue
            subscribers.discard(subscriber)
            if not subscribers:
                del self._subscribers[key], self._names[key], self._positions[key]
                self._books.pop(key, None)

    async def _book_at(self, key: str, entry_id: str) -> _TrackedBook | None:
        """The book a stream stood at ``entry_id``: its latest snapshot before it, and the deltas
        since. Venues send a snapshot only on (re)subscribing, so without this a new reader would
        see only the levels that happen to change. None when no snapshot is within reach or a gap
        came after it."""
        since: list[tuple[str, AnyEvent]] = []
        end = entry_id
        while len(since) < _BOOK_SEARCH_LIMIT:
            page = stream_entries(await self._redis.xrevrange(key, max=end, count=_BOOK_PAGE))
            if not page:
                return None
            for raw_id, fields in page:
                event = decode_entry(fields)
                if event is None:
                    continue
                since.append((raw_id.decode(), event))
                if isinstance(event, Gap):
                    return None
                if isinstance(event, BookSnapshot):
                    book = _TrackedBook(OrderBook(event.instrument))
                    for found_id, found in reversed(since):
                        _apply_to_book(book, found_id, found)
                    return book
            end = "(" + page[-1][0].decode()
        return None

    def book_snapshot(self, key: str, stream: str, entry_id: str | None = None) -> Item | None:
        """The book a book stream stands at now, as one snapshot item of ``stream`` standing for
        everything up to ``entry_id`` (by default the entry the book was last moved by); None
        when the book is unknown."""
        tracked = self._books.get(key)
        if tracked is None or not tracked.book:
            return None
        snapshot = BookSnapshot(
            instrument=tracked.book.instrument,
            exchange_ts_ns=tracked.exchange_ts_ns,
            receive_ts_ns=tracked.receive_ts_ns,
            bids=tracked.book.bids(),
            asks=tracked.book.asks(),
        )
        return item_of(stream, entry_id or tracked.entry_id, snapshot)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            self._task = None
        await self.revocation_watch.close()
        await self.heartbeats.close()
        await self.leases.close()
        await self._redis.aclose()

    async def _last_id(self, key: str) -> str:
        newest = stream_entries(await self._redis.xrevrange(key, count=1))
        return newest[0][0].decode() if newest else "0-0"

    async def _run(self) -> None:
        # A failure must not silently end the live feed of the whole replica.
        await keep_running(self._read_batch, "live feed hub", log, _RETRY_S)

    async def _read_batch(self) -> None:
        if not self._subscribers:
            self._changed.clear()
            await self._changed.wait()
            return
        if time.monotonic() - self._interest_said_at >= _INTEREST_REFRESH_S:
            await self._say_interest()
        replies = stream_reads(
            await self._redis.xread(dict(self._positions), count=_READ_COUNT, block=_BLOCK_MS)
        )
        self.metrics.stream_lag.set(read_lag_s(replies))
        for key, entries in replies:
            self._deliver(key.decode(), entries)

    async def _say_interest(self) -> None:
        """Tell inference which forecasts and insights this replica's clients want."""
        self._interest_said_at = time.monotonic()
        now = time.time()
        wanted = {name: now for name in self._names.values() if _made_by_models(name)}
        if wanted:
            await self._redis.zadd(PREDICTION_INTEREST, wanted)

    def _deliver(self, key: str, entries: StreamEntries) -> None:
        subscribers = self._subscribers.get(key)
        if subscribers is None:
            return  # unsubscribed while the read was in flight
        name = self._names[key]
        for raw_id, fields in entries:
            entry_id = raw_id.decode()
            self._positions[key] = entry_id
            event = decode_entry(fields)
            if not isinstance(event, MarketEvent):
                continue
            self._track_book(key, entry_id, event)
            item = item_of(name, entry_id, event)
            for subscriber in tuple(subscribers):
                subscriber.offer(item)

    def _track_book(self, key: str, entry_id: str, event: AnyEvent) -> None:
        if isinstance(event, BookSnapshot):
            tracked = self._books.setdefault(key, _TrackedBook(OrderBook(event.instrument)))
        elif isinstance(event, BookDelta) and key in self._books:
            tracked = self._books[key]
        else:
            if isinstance(event, Gap):
                self._books.pop(key, None)
            return
        _apply_to_book(tracked, entry_id, event)


def _apply_to_book(tracked: _TrackedBook, entry_id: str, event: AnyEvent) -> None:
    if isinstance(event, BookSnapshot):
        tracked.book.replace(event.bids, event.asks)
    elif isinstance(event, BookDelta):
        tracked.book.apply(event.bids, event.asks)
    else:
        return
    tracked.exchange_ts_ns, tracked.receive_ts_ns = event.exchange_ts_ns, event.receive_ts_ns
    tracked.entry_id = entry_id


def _made_by_models(stream: str) -> bool:
    return stream.partition(":")[0] in MODEL_CHANNELS


def decode_entry(fields: dict[bytes, bytes]) -> AnyEvent | None:
    """The event a stream entry holds; None for an entry that holds none."""
    payload = fields.get(EVENT_FIELD)
    if payload is None:
        return None
    try:
        return decode_event(payload)
    except (msgspec.ValidationError, msgspec.DecodeError):
        return None
