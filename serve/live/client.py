"""One live-feed connection: its subscriptions, its bounded queue and the one task that writes.

The hub offers events without waiting; each client has its own queue and sender, so a slow
client never delays the others. The sender keeps at most a window of data frames unacknowledged
(see ``serve.live.protocol``); a client that falls behind first has its quotes and books
conflated to the latest state; if its queue still grows past the limit it is disconnected with
close code 4008. Everything the server says goes through the sender task, in order.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import deque

import redis.exceptions
from fastapi import WebSocket
from starlette.websockets import WebSocketDisconnect, WebSocketState

from cluster.events import MarketEvent
from cluster.redis_keys import alert_stream_key, stream_key
from cluster.stream_ids import parse_id
from serve import watchlists
from serve.auth.access_tokens import Principal, TokenError
from serve.auth.roles import Scope
from serve.auth.websocket import CLOSE_UNAUTHENTICATED
from serve.dependencies import verify_bearer
from serve.live.hub import Item, StreamHub, decode_entry, item_of
from serve.live.protocol import (
    ALERTS_STREAM,
    CLOSE_TOO_SLOW,
    Ack,
    Auth,
    Ping,
    Subscribe,
    Unsubscribe,
    decode_client_message,
    server_message,
    split_stream,
    stream_name,
)
from serve.resources import Resources

__all__ = ["LiveClient", "MAX_MESSAGE_BYTES", "MAX_BATCH", "MAX_RESUME"]

MAX_MESSAGE_BYTES = 16_384
MAX_BATCH = 500
MAX_RESUME = 20_000
_MESSAGES_PER_S = 20
# Kinds where the latest one stands for every earlier one of its stream.
_LATEST_WINS = {"quote", "forecast"}
_CONFLATABLE = _LATEST_WINS | {"book_snapshot", "book_delta"}
_RESUME_PAGE = 1_000
# The server's reasons for closing, as finone_live_disconnects labels them; a connection that
# ends otherwise was closed or dropped by the client ("client").
_DISCONNECT_REASONS = {CLOSE_TOO_SLOW: "too_slow", CLOSE_UNAUTHENTICATED: "unauthenticated"}


class LiveClient:
    def __init__(
        self, websocket: WebSocket, principal: Principal, resources: Resources, hub: StreamHub
    ) -> None:
        self._ws = websocket
        self._principal = principal
        self._resources = resources
        self._settings = resources.settings
        self._hub = hub
        self._streams: dict[str, str] = {}  # name -> Redis key
        self._queue: deque[Item] = deque()
        self._control: deque[str] = deque()
        self._last_sent: dict[str, tuple[int, int]] = {}
        self._sent_seq = 0
        self._acked_seq = 0
        self._lagging = False
        self._wakeup = asyncio.Event()
        self._paused = False
        self._closing: tuple[int, str] | None = None
        self._allowance = float(_MESSAGES_PER_S)
        self._allowance_at = time.monotonic()

    async def run(self) -> None:
        # The user's alerts reach every connection of theirs, unasked.
        alerts = {ALERTS_STREAM: self._key(ALERTS_STREAM)}
        await self._hub.subscribe(self, alerts)
        self._streams.update(alerts)
        tasks = [
            asyncio.create_task(self._receive_loop()),
            asyncio.create_task(self._send_loop()),
            asyncio.create_task(self._heartbeat_loop()),
        ]
        try:
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            self._hub.unsubscribe(self, list(self._streams.values()))
            reason = "client" if self._closing is None else _DISCONNECT_REASONS[self._closing[0]]
            self._hub.metrics.disconnects.inc(tags={"reason": reason})

    # -- what the hub calls ---------------------------------------------------------------

    def offer(self, item: Item) -> None:
        self._queue.append(item)
        queued = len(self._queue)
        # A burst while the client keeps up is sent as it is; conflation is for one that lags.
        if self._window_full():
            self._lagging = True
            if queued > self._settings.live_conflate_at:
                self._conflate()
                queued = len(self._queue)
        if queued > self._settings.live_max_queue:
            self._close(CLOSE_TOO_SLOW, "too slow: the client did not keep up with its feed")
        self._wakeup.set()

    def _window_full(self) -> bool:
        return self._sent_seq - self._acked_seq >= self._settings.live_window_frames

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
            if len(data) > MAX_MESSAGE_BYTES:
                self._error(
                    "message_too_large", f"messages are limited to {MAX_MESSAGE_BYTES} bytes"
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
            if not self._take_allowance():
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

    def _take_allowance(self) -> bool:
        now = time.monotonic()
        self._allowance = min(
            float(_MESSAGES_PER_S), self._allowance + (now - self._allowance_at) * _MESSAGES_PER_S
        )
        self._allowance_at = now
        if self._allowance < 1.0:
            return False
        self._allowance -= 1.0
        return True

    async def _instruments(self, message: Subscribe | Unsubscribe) -> list[str] | None:
        instruments = list(message.instruments)
        if message.watchlist is not None:
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

    async def _subscribe(self, message: Subscribe) -> None:
        instruments = await self._instruments(message)
        if instruments is None:
            return
        streams = [stream_name(c, i) for i in instruments for c in dict.fromkeys(message.channels)]
        unknown_resume = set(message.resume_from) - set(streams) - {ALERTS_STREAM}
        if unknown_resume:
            names = ", ".join(sorted(unknown_resume))
            self._error("invalid_message", f"resume_from names streams not subscribed: {names}")
            return
        new = [s for s in streams if s not in self._streams]
        limit = self._settings.live_max_subscriptions
        if len(self._streams) + len(new) > limit:
            self._error("too_many_subscriptions", f"at most {limit} streams per connection")
            return
        # Nothing is sent while missed events are fetched: they must go out before live ones.
        self._paused = True
        try:
            keys = {s: self._key(s) for s in new}
            await self._hub.subscribe(self, keys)
            self._streams.update(keys)
            for stream, last_seen in message.resume_from.items():
                await self._catch_up(stream, last_seen)
            for stream in new:
                if stream.startswith("predictions:") and stream not in message.resume_from:
                    await self._current_forecast(stream)
        except (redis.exceptions.RedisError, OSError):
            self._error("unavailable", "the live feed cannot reach its store; retry shortly")
        finally:
            self._paused = False
        self._say(server_message("subscribed", streams=streams))

    def _key(self, stream: str) -> str:
        if stream == ALERTS_STREAM:
            return alert_stream_key(self._principal.user_id)
        channel_instrument = split_stream(stream)
        assert channel_instrument is not None
        return stream_key(*channel_instrument)

    async def _catch_up(self, stream: str, last_seen: str) -> None:
        """Queue, ahead of live events, every event of ``stream`` after ``last_seen``."""
        key = self._key(stream)
        redis = self._hub.redis
        oldest = await redis.xrange(key, count=1)
        # "0-0" asks for everything retained. Otherwise a resume point older than the oldest
        # entry may have lost events to trimming (Redis 6.2 cannot tell whether any existed).
        if oldest and last_seen != "0-0" and parse_id(oldest[0][0].decode()) > parse_id(last_seen):
            self._say(
                server_message(
                    "gap", stream=stream, reason="events after the resume point were trimmed"
                )
            )
        missed: list[Item] = []
        start = f"({last_seen}"
        while len(missed) < MAX_RESUME:
            page = await redis.xrange(key, min=start, max="+", count=_RESUME_PAGE)
            for raw_id, fields in page:
                event = decode_entry(fields)
                if isinstance(event, MarketEvent):
                    missed.append(item_of(stream, raw_id.decode(), event))
            if len(page) < _RESUME_PAGE:
                break
            start = f"({page[-1][0].decode()}"
        else:
            self._say(server_message("gap", stream=stream, reason="too far behind to replay all"))
        self._queue.extendleft(reversed(missed))

    async def _current_forecast(self, stream: str) -> None:
        """Forecasts change once a bar or a model does: a new subscriber gets the latest at once
        rather than after the next publishing round."""
        latest = await self._hub.redis.xrevrange(self._key(stream), count=1)
        if latest:
            raw_id, fields = latest[0]
            event = decode_entry(fields)
            if isinstance(event, MarketEvent):
                self._queue.append(item_of(stream, raw_id.decode(), event))

    async def _unsubscribe(self, message: Unsubscribe) -> None:
        instruments = await self._instruments(message)
        if instruments is None:
            return
        streams = [stream_name(c, i) for i in instruments for c in dict.fromkeys(message.channels)]
        gone = [s for s in streams if s in self._streams]
        self._hub.unsubscribe(self, [self._streams.pop(s) for s in gone])
        dropped = set(gone)
        self._queue = deque(item for item in self._queue if item.stream not in dropped)
        self._say(server_message("unsubscribed", streams=gone))

    async def _reauthenticate(self, token: str) -> None:
        try:
            principal = await verify_bearer(self._resources, token)
        except TokenError as error:
            self._error("invalid_token", str(error))
            return
        if (
            principal.user_id != self._principal.user_id
            or Scope.stream_read not in principal.scopes
        ):
            self._error("invalid_token", "the token must be the same user's, with stream:read")
            return
        self._principal = principal
        self._say(server_message("authenticated", expires_at=principal.expires_at))

    # -- sending --------------------------------------------------------------------------

    def _say(self, text: str) -> None:
        self._control.append(text)
        self._wakeup.set()

    def _error(self, code: str, message: str) -> None:
        self._say(server_message("error", code=code, message=message))

    def _close(self, code: int, reason: str) -> None:
        if self._closing is None:
            self._closing = (code, reason)
        self._wakeup.set()

    async def _send_loop(self) -> None:
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            while self._control:
                await self._ws.send_text(self._control.popleft())
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

    def _next_frame(self) -> tuple[str, int]:
        """Everything queued (up to a batch) in one frame, and how many events it carries; the
        proxy costs per frame."""
        fragments: list[bytes] = []
        queue, last_sent = self._queue, self._last_sent
        while queue and len(fragments) < MAX_BATCH:
            item = queue.popleft()
            # Resumed and live events overlap; each event goes out once, in order.
            if item.position <= last_sent.get(item.stream, (-1, -1)):
                continue
            last_sent[item.stream] = item.position
            fragments.append(item.fragment)
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
            elif (snapshot := self._hub.book_snapshot(self._streams[stream], last)) is not None:
                replacement[stream] = snapshot
        kept: deque[Item] = deque()
        for index, item in enumerate(self._queue):
            if item.stream in replacement and item.kind in _CONFLATABLE:
                if index == last_index[item.stream]:
                    kept.append(replacement[item.stream])
                continue
            kept.append(item)
        self._queue = kept

    async def _heartbeat_loop(self) -> None:
        while True:
            await asyncio.sleep(self._settings.live_heartbeat_s)
            if time.time() >= self._principal.expires_at:
                # The sender closes the connection, which ends this client.
                self._close(
                    CLOSE_UNAUTHENTICATED, "the token has expired; reconnect with a new one"
                )
                continue
            self._say(server_message("heartbeat", ts_ns=time.time_ns()))
