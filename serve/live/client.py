"""One live-feed connection: its subscriptions, its bounded queue and the one task that writes.

The hub offers events without waiting; each client has its own queue and sender, so a slow
client never delays the others. The sender keeps at most a window of data frames unacknowledged
(see ``serve.live.protocol``); a client that falls behind first has its quotes and books
conflated to the latest state; if its queue still grows past the limit it is disconnected with
close code 4008. Everything the server says goes through the sender task, in order.

Catch-up after a reconnect (``resume_from``) is read by the sender a page at a time, only when
everything queued has gone out and the client has room in its window: it is paced by the
client's acknowledgements and counts against the same queue bound as live events, which wait
for it (held back per stream) so that each stream's events still go out once and in order.

Only the client's own streams are reachable: ``predictions`` and ``insights`` need
``predictions:read``; the user's alerts and watchlists need ``account`` (people, never machine
clients). A revoked token closes the connection (4001, see ``serve.auth.revocation``).
"""

from __future__ import annotations

import asyncio
import math
import time
import uuid
from dataclasses import dataclass

import redis.exceptions
from fastapi import WebSocket
from starlette.websockets import WebSocketDisconnect, WebSocketState

from core.events import CHANNELS, MODEL_CHANNELS, Channel, MarketEvent
from core.intervals import Interval
from core.redis_keys import alert_stream_key, stream_key
from core.redis_replies import stream_entries
from core.stream_ids import parse_id
from serve import watchlists
from serve.auth.access_tokens import Principal, TokenError
from serve.auth.roles import Scope
from serve.dependencies import verify_bearer
from serve.live.handshake import CLOSE_UNAUTHENTICATED
from serve.live.protocol import (
    ALERTS_STREAM,
    CLOSE_POLICY_VIOLATION,
    CLOSE_REVOKED,
    CLOSE_TOO_SLOW,
    Ack,
    Auth,
    Ping,
    Subscribe,
    Unsubscribe,
    decode_client_message,
    server_message,
    stream_named,
    streams_of,
)
from serve.resources import Resources
from serve.stream_hub import Item, StreamHub, decode_entry, item_of

__all__ = [
    "LiveClient",
    "MAX_MESSAGE_BYTES",
    "MAX_BATCH",
    "MAX_REFUSALS",
    "MAX_UNSTREAMED_INSTRUMENTS",
]

MAX_MESSAGE_BYTES = 16_384
MAX_BATCH = 500
_MESSAGES_PER_S = 20
# Refused messages (each answered by an error frame) a client may send in a burst, then one a
# second; past that it is closed (1008) instead of being answered without end. An oversized
# message costs one per MAX_MESSAGE_BYTES it carries, so a huge frame ends the connection at once.
MAX_REFUSALS = 32
_REFUSALS_PER_S = 1
# Instruments without any stream in Redis one connection may subscribe to: each costs the
# replica's hub a key in every read, and inference a forecast attempt every round.
MAX_UNSTREAMED_INSTRUMENTS = 10
# Kinds where the latest one stands for every earlier one of its stream.
_LATEST_WINS = {"quote", "forecast", "insight"}
_CONFLATABLE = _LATEST_WINS | {"book_snapshot", "book_delta"}
# What a client needs for what: streams of a channel, its alerts and watchlists.
_CHANNEL_SCOPES: dict[str, Scope] = dict.fromkeys(MODEL_CHANNELS, Scope.predictions_read)
_FEED_SCOPES = frozenset({Scope.stream_read, Scope.predictions_read, Scope.account})
# The server's reasons for closing, as finone_live_disconnects labels them; a connection that
# ends otherwise was closed or dropped by the client ("client").
_DISCONNECT_REASONS = {
    CLOSE_TOO_SLOW: "too_slow",
    CLOSE_UNAUTHENTICATED: "unauthenticated",
    CLOSE_REVOKED: "revoked",
    CLOSE_POLICY_VIOLATION: "misbehaving",
}


class _Allowance:
    """A token bucket: ``burst`` at once, refilled at ``per_s``."""

    __slots__ = ("_burst", "_per_s", "_tokens", "_at")

    def __init__(self, burst: float, per_s: float) -> None:
        self._burst = burst
        self._per_s = per_s
        self._tokens = burst
        self._at = time.monotonic()

    def take(self, cost: float = 1.0) -> bool:
        now = time.monotonic()
        self._tokens = min(self._burst, self._tokens + (now - self._at) * self._per_s)
        self._at = now
        if self._tokens < cost:
            return False
        self._tokens -= cost
        return True


class _Wakeup:
    """asyncio.Event's set and wait for the one task that waits, in a tenth of its memory: an
    Event keeps a dict and a deque of waiters, 1 KiB of every idle connection."""

    __slots__ = ("_set", "_waiter")

    def __init__(self) -> None:
        self._set = False
        self._waiter: asyncio.Future[None] | None = None

    def set(self) -> None:
        self._set = True
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    async def wait_and_clear(self) -> None:
        if not self._set:
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        self._set = False


@dataclass(slots=True)
class _Resume:
    """A stream still being caught up, from after the entry id in ``after`` (XRANGE syntax)."""

    stream: str
    after: str


class LiveClient:
    # Thousands of these live in one replica, most of them idle: no per-instance dict, and
    # lists rather than deques (760 bytes each even when empty): the queue is taken from the
    # front a frame's worth at a time, control messages and catch-ups are few.
    __slots__ = (
        "_ws",
        "_principal",
        "_resources",
        "_settings",
        "_hub",
        "_streams",
        "_queue",
        "_control",
        "_last_sent",
        "_sent_seq",
        "_acked_seq",
        "_lagging",
        "_wakeup",
        "_paused",
        "_closing",
        "_allowance",
        "_refusals",
        "_resuming",
        "_held",
        "_held_count",
        "_alerts_resumed",
        "_unstreamed",
        "_receiving",
    )

    def __init__(
        self, websocket: WebSocket, principal: Principal, resources: Resources, hub: StreamHub
    ) -> None:
        self._ws = websocket
        self._principal = principal
        self._resources = resources
        self._settings = resources.settings
        self._hub = hub
        self._streams: dict[str, str] = {}  # name -> Redis key
        self._queue: list[Item] = []
        self._control: list[str] = []
        self._last_sent: dict[str, tuple[int, int]] = {}
        self._sent_seq = 0
        self._acked_seq = 0
        self._lagging = False
        self._wakeup = _Wakeup()
        self._paused = False
        self._closing: tuple[int, str] | None = None
        self._allowance = _Allowance(_MESSAGES_PER_S, _MESSAGES_PER_S)
        self._refusals = _Allowance(MAX_REFUSALS, _REFUSALS_PER_S)
        # Streams being caught up, in order, and their live events waiting until they are.
        self._resuming: list[_Resume] = []
        self._held: dict[str, list[Item]] = {}
        self._held_count = 0
        self._alerts_resumed = False
        self._unstreamed: frozenset[str] = frozenset()
        self._receiving = False

    @property
    def principal(self) -> Principal:
        return self._principal

    async def run(self) -> None:
        if Scope.account in self._principal.scopes:
            # The user's alerts reach every connection of theirs, unasked.
            alerts = {ALERTS_STREAM: self._key(ALERTS_STREAM)}
            await self._hub.subscribe(self, alerts)
            self._streams.update(alerts)
        self._hub.revocation_watch.add(self)
        self._hub.heartbeats.add(self)
        # Receiving runs in this task, sending in one of its own; when the sender ends (it
        # closed the connection) it ends the receiving too. One task fewer per connection than
        # a task for each side.
        receiving = asyncio.current_task()
        assert receiving is not None

        def sender_ended(_: asyncio.Task[None]) -> None:
            if self._receiving:
                self._receiving = False
                receiving.cancel()

        sender = asyncio.create_task(self._send_loop())
        sender.add_done_callback(sender_ended)
        self._receiving = True
        try:
            await self._receive_loop()
        except asyncio.CancelledError:
            if self._receiving:
                raise  # cancelled from outside: the replica is stopping
            receiving.uncancel()
        finally:
            self._receiving = False
            sender.cancel()
            await asyncio.gather(sender, return_exceptions=True)
            self._hub.revocation_watch.discard(self)
            self._hub.heartbeats.discard(self)
            self._hub.unsubscribe(self, list(self._streams.values()))
            reason = "client" if self._closing is None else _DISCONNECT_REASONS[self._closing[0]]
            self._hub.metrics.disconnects.inc(tags={"reason": reason})

    # -- what the hub calls ---------------------------------------------------------------

    def offer(self, item: Item) -> None:
        held = self._held.get(item.stream)
        if held is not None:
            held.append(item)
            self._held_count += 1
        else:
            self._queue.append(item)
            # A burst while the client keeps up is sent as it is; conflation is for one that lags.
            if self._window_full():
                self._lagging = True
                if len(self._queue) > self._settings.live_conflate_at:
                    self._conflate()
        self._check_backlog()
        self._wakeup.set()

    def revoke(self, reason: str) -> None:
        self._close(CLOSE_REVOKED, reason)

    def beat(self, now_ns: int) -> None:
        if now_ns >= self._principal.expires_at * 1_000_000_000:
            # The sender closes the connection, which ends this client.
            self._close(CLOSE_UNAUTHENTICATED, "the token has expired; reconnect with a new one")
        else:
            self._say(server_message("heartbeat", ts_ns=now_ns))

    def _window_full(self) -> bool:
        return self._sent_seq - self._acked_seq >= self._settings.live_window_frames

    def _check_backlog(self) -> None:
        """Everything waiting for the client, caught up or live, counts against one bound."""
        if len(self._queue) + self._held_count > self._settings.live_max_queue:
            self._close(CLOSE_TOO_SLOW, "too slow: the client did not keep up with its feed")

    # -- receiving ------------------------------------------------------------------------

    async def _receive_loop(self) -> None:
        while True:
            try:
                message = await self._ws.receive()
            except (WebSocketDisconnect, RuntimeError):
                return
            if message["type"] == "websocket.disconnect":
                return
            data = message.get("text") or message.get("bytes") or ""
            size = _size_of(data)
            if size > MAX_MESSAGE_BYTES:
                # Counted against the rate like any message, and refused by its weight.
                self._allowance.take()
                self._error(
                    "message_too_large",
                    f"messages are limited to {MAX_MESSAGE_BYTES} bytes",
                    cost=math.ceil(size / MAX_MESSAGE_BYTES),
                )
                continue
            problem = ""
            try:
                parsed = decode_client_message(data)
            except ValueError as error:
                parsed = None
                problem = str(error)
            # Acks are flow control, due every few frames: only other messages are rate-limited.
            if isinstance(parsed, Ack):
                if self._acked_seq < parsed.seq <= self._sent_seq:
                    self._acked_seq = parsed.seq
                    self._wakeup.set()
                continue
            if not self._allowance.take():
                self._error("rate_limited", f"at most {_MESSAGES_PER_S} messages per second")
            elif parsed is None:
                self._error("invalid_message", problem)
            elif isinstance(parsed, Ping):
                self._say(server_message("pong"))
            elif isinstance(parsed, Subscribe):
                await self._subscribe(parsed)
            elif isinstance(parsed, Unsubscribe):
                await self._unsubscribe(parsed)
            elif isinstance(parsed, Auth):
                await self._reauthenticate(parsed.token)

    async def _instruments(self, message: Subscribe | Unsubscribe) -> list[str] | None:
        instruments = list(message.instruments)
        if message.watchlist is not None:
            if not self._allowed(Scope.account, "watchlists"):
                return None
            try:
                watchlist_id = str(uuid.UUID(message.watchlist))
            except ValueError:
                watchlist_id = None
            found = None
            if watchlist_id is not None:
                pool = await self._resources.pool()
                found = await watchlists.get(pool, self._principal.user_id, watchlist_id)
            if found is None:
                self._error("watchlist_not_found", "you have no watchlist with this id")
                return None
            instruments += found.instruments
        if not instruments:
            self._error("invalid_message", "name instruments or a watchlist")
            return None
        return list(dict.fromkeys(instruments))

    def _allowed(self, scope: Scope, what: str) -> bool:
        if scope in self._principal.scopes:
            return True
        self._error("insufficient_scope", f"{what} need the {scope.value!r} scope")
        return False

    async def _subscribe(self, message: Subscribe) -> None:
        channels = list(dict.fromkeys(message.channels))
        for channel in channels:
            scope = _CHANNEL_SCOPES.get(channel)
            if scope is not None and not self._allowed(scope, f"{channel} streams"):
                return
        if not self._intervals_served(channels, message.intervals):
            return
        instruments = await self._instruments(message)
        if instruments is None:
            return
        streams = [s.name for s in streams_of(instruments, channels, message.intervals)]
        new = [s for s in streams if s not in self._streams]
        # Each stream is caught up once: resubscribing must not replay (and queue) it again.
        resumable = set(new)
        if ALERTS_STREAM in self._streams and not self._alerts_resumed:
            resumable.add(ALERTS_STREAM)
        refused = set(message.resume_from) - resumable
        if refused:
            names = ", ".join(sorted(refused))
            self._error(
                "invalid_message", f"resume_from names streams not newly subscribed: {names}"
            )
            return
        limit = self._settings.live_max_subscriptions
        if len(self._streams) + len(new) > limit:
            self._error("too_many_subscriptions", f"at most {limit} streams per connection")
            return
        # Nothing is sent meanwhile: the client hears "subscribed" before any of the new events.
        self._paused = True
        try:
            if not await self._within_unstreamed_limit(new):
                return
            await self._add_streams(new, message.resume_from)
        except (redis.exceptions.RedisError, OSError):
            self._say(_UNAVAILABLE)
        finally:
            self._paused = False
        self._say(server_message("subscribed", streams=streams))

    def _intervals_served(self, channels: list[Channel], intervals: list[Interval]) -> bool:
        """Whether inference makes the forecasts of ``intervals`` that model ``channels`` want."""
        served = self._settings.retrain_intervals
        unserved = [i for i in dict.fromkeys(intervals) if i not in served]
        if not unserved or not any(c in MODEL_CHANNELS for c in channels):
            return True
        self._error(
            "interval_not_served",
            f"no forecasts of {', '.join(unserved)} bars are made here; "
            f"those of {', '.join(served)} are",
        )
        return False

    async def _within_unstreamed_limit(self, streams: list[str]) -> bool:
        """Whether the instruments of ``streams`` that nobody streams stay within the limit
        (counting those this connection already has)."""
        instruments = {named.instrument for s in streams if (named := stream_named(s)) is not None}
        fresh = sorted(instruments - self._unstreamed)
        if not fresh:
            return True
        async with self._hub.redis.pipeline(transaction=False) as pipe:
            for instrument in fresh:
                pipe.exists(*(stream_key(channel, instrument) for channel in CHANNELS))
            found = await pipe.execute()
        unstreamed = {i for i, count in zip(fresh, found, strict=True) if count == 0}
        if len(self._unstreamed | unstreamed) > MAX_UNSTREAMED_INSTRUMENTS:
            names = ", ".join(sorted(unstreamed)[:5])
            self._error(
                "too_many_unstreamed",
                f"at most {MAX_UNSTREAMED_INSTRUMENTS} instruments nobody streams per "
                f"connection; not streamed: {names}",
            )
            return False
        self._unstreamed |= unstreamed
        return True

    async def _add_streams(self, new: list[str], resume_from: dict[str, str]) -> None:
        keys = {s: self._key(s) for s in new}
        # Held back from the first live event on, so none goes out ahead of what it follows.
        for stream in resume_from:
            self._held[stream] = []
        try:
            await self._hub.subscribe(self, keys)
        except (redis.exceptions.RedisError, OSError):
            for stream in resume_from:
                self._release(stream)
            raise
        self._streams.update(keys)
        for stream in new:
            # A venue sends a snapshot only on a resync: a new subscriber starts from the book
            # as it stands (before anything else can await, so no delta goes out ahead of it).
            if stream.startswith("book:") and stream not in resume_from:
                book = self._hub.book_snapshot(keys[stream], stream)
                if book is not None:
                    self._queue.append(book)
        for stream, last_seen in resume_from.items():
            self._alerts_resumed |= stream == ALERTS_STREAM
            self._resuming.append(_Resume(stream, f"({last_seen}"))
            await self._say_if_trimmed(stream, last_seen)
        for stream in new:
            channel = stream.partition(":")[0]
            if channel in MODEL_CHANNELS and stream not in resume_from:
                await self._current_model_output(stream)

    def _key(self, stream: str) -> str:
        if stream == ALERTS_STREAM:
            return alert_stream_key(self._principal.user_id)
        found = stream_named(stream)
        assert found is not None
        return found.key

    async def _say_if_trimmed(self, stream: str, last_seen: str) -> None:
        oldest = stream_entries(await self._hub.redis.xrange(self._key(stream), count=1))
        # "0-0" asks for everything retained. Otherwise a resume point older than the oldest
        # entry may have lost events to trimming (Redis 6.2 cannot tell whether any existed).
        if oldest and last_seen != "0-0" and parse_id(oldest[0][0].decode()) > parse_id(last_seen):
            self._say(
                server_message(
                    "gap", stream=stream, reason="events after the resume point were trimmed"
                )
            )

    async def _current_model_output(self, stream: str) -> None:
        """Forecasts and insights change once a bar or a model does: a new subscriber gets the
        latest at once rather than after the next publishing round."""
        latest = stream_entries(await self._hub.redis.xrevrange(self._key(stream), count=1))
        if latest:
            raw_id, fields = latest[0]
            event = decode_entry(fields)
            if isinstance(event, MarketEvent):
                self._queue.append(item_of(stream, raw_id.decode(), event))

    async def _unsubscribe(self, message: Unsubscribe) -> None:
        instruments = await self._instruments(message)
        if instruments is None:
            return
        streams = streams_of(instruments, message.channels, message.intervals)
        gone = [s.name for s in streams if s.name in self._streams]
        self._hub.unsubscribe(self, [self._streams.pop(s) for s in gone])
        dropped = set(gone)
        self._queue = [item for item in self._queue if item.stream not in dropped]
        self._resuming = [r for r in self._resuming if r.stream not in dropped]
        for stream in gone:
            self._held_count -= len(self._held.pop(stream, []))
        still = {named.instrument for s in self._streams if (named := stream_named(s)) is not None}
        self._unstreamed &= still
        self._say(server_message("unsubscribed", streams=gone))

    async def _reauthenticate(self, token: str) -> None:
        try:
            principal = await verify_bearer(self._resources, token)
        except TokenError as error:
            self._error("invalid_token", str(error))
            return
        current = self._principal
        if (
            principal.user_id != current.user_id
            or principal.client_id != current.client_id
            or not current.scopes & _FEED_SCOPES <= principal.scopes
        ):
            self._error(
                "invalid_token", "the token must be the same user's or client's, with its scopes"
            )
            return
        self._principal = principal
        self._say(server_message("authenticated", expires_at=principal.expires_at))

    # -- sending --------------------------------------------------------------------------

    def _say(self, text: str) -> None:
        self._control.append(text)
        self._wakeup.set()

    def _error(self, code: str, message: str, cost: int = 1) -> None:
        """Refuse a message, with a reason; a client that keeps being refused is closed."""
        if not self._refusals.take(cost):
            self._close(CLOSE_POLICY_VIOLATION, "too many refused messages")
            return
        self._say(server_message("error", code=code, message=message))

    def _close(self, code: int, reason: str) -> None:
        if self._closing is None:
            self._closing = (code, reason)
        self._wakeup.set()

    async def _send_loop(self) -> None:
        while True:
            await self._wakeup.wait_and_clear()
            while self._control:
                await self._ws.send_text(self._control.pop(0))
            if self._closing is not None:
                code, reason = self._closing
                if self._ws.application_state is WebSocketState.CONNECTED:
                    await self._ws.close(code=code, reason=reason)
                return
            if self._lagging and not self._window_full():
                # Back from behind: the latest quotes and books, not every one missed.
                self._conflate()
                self._lagging = False
            metrics = self._hub.metrics
            while self._queue and not self._paused and not self._window_full():
                frame, events = self._next_frame()
                if events:
                    await self._ws.send_text(frame)
                    metrics.frames_sent.inc()
                    metrics.events_sent.inc(events)
            # Catching up only once all else went out and the client has acknowledged enough.
            if self._resuming and not self._paused and not self._window_full():
                await self._catch_up(self._resuming[0])
                self._wakeup.set()

    async def _catch_up(self, resume: _Resume) -> None:
        """Queue the next page of a stream's missed events; once none are left, its live
        events follow."""
        page_size = min(MAX_BATCH, self._settings.live_max_queue // 2)
        try:
            page = stream_entries(
                await self._hub.redis.xrange(
                    self._key(resume.stream), min=resume.after, max="+", count=page_size
                )
            )
        except (redis.exceptions.RedisError, OSError):
            page = []
            self._say(server_message("gap", stream=resume.stream, reason="could not replay"))
        if not self._resuming or self._resuming[0] is not resume:
            return  # unsubscribed meanwhile
        for raw_id, fields in page:
            event = decode_entry(fields)
            if isinstance(event, MarketEvent):
                self._queue.append(item_of(resume.stream, raw_id.decode(), event))
        if len(page) < page_size:
            self._resuming.pop(0)
            self._release(resume.stream)
        else:
            resume.after = f"({page[-1][0].decode()}"
        self._check_backlog()

    def _release(self, stream: str) -> None:
        """Live events of ``stream`` go out from now on, after those held back."""
        held = self._held.pop(stream, [])
        self._held_count -= len(held)
        self._queue.extend(held)

    def _next_frame(self) -> tuple[str, int]:
        """Everything queued (up to a batch) in one frame, and how many events it carries; the
        proxy costs per frame."""
        fragments: list[bytes] = []
        queue, last_sent = self._queue, self._last_sent
        taken = 0
        for item in queue:
            if len(fragments) == MAX_BATCH:
                break
            taken += 1
            # Resumed and live events overlap; each event goes out once, in order.
            if item.position <= last_sent.get(item.stream, (-1, -1)):
                continue
            last_sent[item.stream] = item.position
            fragments.append(item.fragment)
        del queue[:taken]
        if not fragments:
            return "", 0
        self._sent_seq += 1
        head = b'{"type":"data","seq":%d,"events":[' % self._sent_seq
        return (head + b",".join(fragments) + b"]}").decode(), len(fragments)

    def _conflate(self) -> None:
        """Keep only the latest quote or forecast, and the current book, of each stream still
        queued."""
        last_index: dict[str, int] = {}
        for index, item in enumerate(self._queue):
            if item.kind in _CONFLATABLE:
                last_index[item.stream] = index
        replacement: dict[str, Item] = {}
        for stream, index in last_index.items():
            last = self._queue[index]
            if last.kind in _LATEST_WINS:
                replacement[stream] = last
            elif (
                snapshot := self._hub.book_snapshot(self._streams[stream], stream, last.entry_id)
            ) is not None:
                replacement[stream] = snapshot
        kept: list[Item] = []
        for index, item in enumerate(self._queue):
            if item.stream in replacement and item.kind in _CONFLATABLE:
                if index == last_index[item.stream]:
                    kept.append(replacement[item.stream])
                continue
            kept.append(item)
        self._queue = kept


_UNAVAILABLE = server_message(
    "error", code="unavailable", message="the live feed cannot reach its store; retry shortly"
)


def _size_of(data: str | bytes) -> int:
    """Bytes, as the limit counts them. A character is at least one byte, so text already longer
    in characters is not encoded to tell."""
    if isinstance(data, str) and len(data) <= MAX_MESSAGE_BYTES:
        return len(data.encode())
    return len(data)
