"""Holding one venue WebSocket connection alive: the IO half of a feed.

``ConnectionRunner`` connects, hands the adapter each frame, sends what it asks to send, makes
the REST calls it needs, and reconnects with capped exponential backoff and full jitter when the
connection drops, the venue goes silent (watchdog), the adapter asks for it, or the connection
reaches its venue-imposed age. Every time continuity is lost the adapter's ``on_close`` gaps are
emitted, so readers know.

Per frame there is only the receive and the adapter. Everything else (the watchdog, application
pings, the age limit, stopping) is one watcher task per connection, which closes the socket with
a recorded reason; the reader sees the close and reports that reason. At its age limit a
connection whose adapter declares rotation "overlap" is replaced make-before-break: the
replacement opens first, what it delivers is held back until the old connection has closed, and
then handed on after the old connection's last frame.

The socket is picows' client behind the ``websockets`` asyncio API: its frame parsing is
compiled, and was the live path's largest cost in Python (bench/bench_ingest.py, socket rows).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import random
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

import httpx
from picows.websockets import (
    ClientConnection,
    CloseCode,
    ConnectionClosed,
    WebSocketException,
    connect,
)
from picows.websockets.typing import Data

from actors.capture import CaptureWriter
from actors.venues.base import ConnectionSpec, Output, Problem, RestRequest, VenueAdapter
from core.events import feed_status_now

__all__ = ["ConnectionRunner", "ConnectionStats", "Backoff", "Emit", "FRAMES_BETWEEN_YIELDS"]

log = logging.getLogger(__name__)

# Called for every adapter output with events or problems, on the frame's path: never blocks.
Emit = Callable[[Output], None]
# A frame and when it was received (ns).
Received = tuple[Data, int]
REST_ATTEMPTS = 3
# Frames handled between turns given to the rest of the event loop (the publisher above all)
# while frames keep coming; as many as one socket read brings, roughly.
FRAMES_BETWEEN_YIELDS = 16
# A connection that stayed up this long was healthy: its loss restarts the backoff from the bottom.
STABLE_AFTER_S = 30.0
ROTATION = "rotation"
_CONNECTION_ERRORS = (OSError, TimeoutError, WebSocketException)


@dataclass(frozen=True)
class Backoff:
    """Capped exponential backoff with full jitter (a thundering herd of feeds spreads out)."""

    base_s: float = 0.5
    cap_s: float = 30.0

    def delay(self, attempt: int) -> float:
        return random.uniform(0.0, min(self.cap_s, self.base_s * 2.0**attempt))


@dataclass
class ConnectionStats:
    state: str = "connecting"
    # Why the state is what it is, where that is not plain from the state itself.
    detail: str = ""
    connected_since_ns: int | None = None
    last_message_ns: int | None = None
    messages: int = 0
    events: int = 0
    reconnects: int = 0
    # Connections replaced at their age limit without a gap (make-before-break); a rotation
    # that could not overlap is a reconnect.
    rotations: int = 0
    problems: Counter[str] = field(default_factory=Counter)

    def count(self, connection: str, problem: Problem) -> None:
        """Count a problem of ``connection``, logging the first of each kind only: a venue
        sending garbage must not flood the logs."""
        if not self.problems[problem.kind]:
            log.warning(
                "%s %s: %s (further ones are only counted)",
                connection,
                problem.kind,
                problem.detail,
            )
        self.problems[problem.kind] += 1


class _Replacement:
    """A connection opened to take over from one at its age limit. Its frames are kept aside
    until the switch, so the adapter never sees the two connections' frames interleaved."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.opened_ns = time.time_ns()
        self.backlog: list[Received] = []
        self.delivered = asyncio.Event()
        self._keeper = asyncio.create_task(self._keep())

    async def _keep(self) -> None:
        with contextlib.suppress(ConnectionClosed):
            while True:
                frame = await self.ws.recv()
                self.backlog.append((frame, time.time_ns()))
                self.delivered.set()

    async def take_over(self) -> list[Received]:
        """Stop keeping frames aside (the caller reads the socket now); those kept so far."""
        await self._stop_keeping()
        return self.backlog

    async def discard(self) -> None:
        await self._stop_keeping()
        await self.ws.close()

    async def _stop_keeping(self) -> None:
        # Cancelling recv() loses no frame: the next recv() returns it.
        self._keeper.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._keeper


class ConnectionRunner:
    def __init__(
        self,
        adapter: VenueAdapter,
        spec: ConnectionSpec,
        emit: Emit,
        *,
        http: httpx.AsyncClient,
        backoff: Backoff = Backoff(),
        capture: CaptureWriter | None = None,
    ) -> None:
        self.adapter = adapter
        self.spec = spec
        self.emit = emit
        self.http = http
        self.backoff = backoff
        self.capture = capture
        self.stats = ConnectionStats()
        self._ws: ClientConnection | None = None
        self._last_message_monotonic = 0.0
        self._fatal: str | None = None
        # Why the runner closed the current socket; its reader reports it once the close lands.
        self._closing: str | None = None
        # Whether the venue answered the current socket's closing handshake: only that proves
        # it delivered everything it had sent before.
        self._close_answered = False
        self._replacement: _Replacement | None = None

    async def run(self, stop: asyncio.Event) -> None:
        """Hold the connection until ``stop`` is set or the adapter says retrying is futile."""
        if self.spec.open_delay_s > 0:
            self._status("connecting", f"opening in {self.spec.open_delay_s:.1f} s")
            await _pause(stop, self.spec.open_delay_s)
        attempt = 0
        while not stop.is_set():
            self._status("connecting", f"attempt {attempt + 1}")
            started = time.monotonic()
            reason = await self._one_connection(stop)
            await self._handle(self.adapter.on_close(self.spec, reason, time.time_ns()), None)
            self.stats.connected_since_ns = None
            if stop.is_set():
                break
            if self._fatal is not None:
                self._status("failed", self._fatal)
                return
            self.stats.reconnects += 1
            if reason == ROTATION:
                delay = 0.0
            else:
                stable = time.monotonic() - started >= STABLE_AFTER_S
                attempt = 1 if stable else attempt + 1
                delay = self.backoff.delay(attempt)
            self._status("reconnecting", f"{reason}; retrying in {delay:.1f} s")
            await _pause(stop, delay)
        self._status("stopped", "")

    def close_now(self) -> None:
        """Drop the current connection (operator restart); ``run`` reconnects."""
        if self._ws is not None:
            asyncio.ensure_future(self._close(self._ws, "restart", "restart"))

    # -- one connection -------------------------------------------------------------------

    async def _connect(self) -> ClientConnection:
        limit = self.adapter.config.max_frame_bytes
        return await connect(
            self.spec.url,
            open_timeout=10,
            close_timeout=5,
            ping_interval=20,
            ping_timeout=20,
            # Frames above the adapter's limit are skipped and counted, not fatal; only
            # absurd ones end the connection.
            max_size=limit * 4,
        )

    async def _one_connection(self, stop: asyncio.Event) -> str:
        """A connection, and the replacements continuing it without a gap, from opening to
        loss; returns why it was lost."""
        try:
            self._ws = await self._connect()
            now = time.time_ns()
            self.stats.connected_since_ns = now
            if self.capture:
                self.capture.opened(self.spec.url, now)
            self._status("live", "")
            if await self._handle(self.adapter.on_open(self.spec, now), self._ws):
                return self._adapter_reason()
            return await self._hold(stop)
        except _CONNECTION_ERRORS as error:
            return _describe(error)
        finally:
            if self._ws is not None:
                await self._ws.close()
                self._ws = None

    async def _hold(self, stop: asyncio.Event) -> str:
        """Read the socket until it closes, going on with its replacement after a rotation
        without a gap; returns why the last one closed."""
        backlog: list[Received] = []
        try:
            while True:
                assert self._ws is not None
                reason = await self._watched(self._ws, backlog, stop)
                replacement, self._replacement = self._replacement, None
                if replacement is None:
                    return reason
                if reason != ROTATION or not self._close_answered:
                    await replacement.discard()
                    return reason
                self._ws, backlog = replacement.ws, await replacement.take_over()
                # No "opened" line in a capture: a replay would take it for a reconnect and gap.
                self.stats.connected_since_ns = replacement.opened_ns
                self.stats.rotations += 1
                self._status("live", "replaced ahead of its age limit, without a gap")
        finally:
            if self._replacement is not None:
                await self._replacement.discard()
                self._replacement = None

    async def _watched(
        self, ws: ClientConnection, backlog: list[Received], stop: asyncio.Event
    ) -> str:
        """Read ``ws`` (after ``backlog``) while a watcher closes it for anything but a frame;
        returns why it closed."""
        self._closing, self._close_answered = None, False
        self._last_message_monotonic = time.monotonic()
        watcher = asyncio.create_task(self._watch(ws, stop), name=f"watch {self.spec.name}")
        try:
            return await self._read(ws, backlog)
        finally:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher

    async def _read(self, ws: ClientConnection, backlog: list[Received]) -> str:
        try:
            for frame, received in backlog:
                if await self._act(self._adapter_output(frame, received), ws):
                    return await self._close(ws, self._adapter_reason(), "resync")
            unyielded = 0
            while True:
                # recv() returns queued frames without giving the loop a turn, and a busy venue
                # keeps the queue full: the publisher and status calls get one every few frames.
                unyielded += 1
                if unyielded >= FRAMES_BETWEEN_YIELDS:
                    unyielded = 0
                    await asyncio.sleep(0)
                frame = await ws.recv()
                out = self._adapter_output(frame, time.time_ns())
                # Nearly every frame only brings events: handled without another coroutine.
                if out.send or out.rest or out.reconnect is not None or out.fatal is not None:
                    if await self._act(out, ws):
                        return await self._close(ws, self._adapter_reason(), "resync")
        except ConnectionClosed as closed:
            self._close_answered = closed.rcvd is not None
            return self._closing or _describe(closed)

    def _adapter_output(self, frame: Data, received: int) -> Output:
        """The adapter's output for one frame, its events and problems delivered already."""
        self._last_message_monotonic = time.monotonic()
        self.stats.messages += 1
        self.stats.last_message_ns = received
        if self.capture:
            text = frame if isinstance(frame, str) else frame.decode("utf-8", "replace")
            self.capture.received(text, received)
        if len(frame) > self.adapter.config.max_frame_bytes:
            out = Output(problems=[Problem("oversized_frame", f"{len(frame)} bytes")])
        else:
            out = self.adapter.on_message(self.spec, frame, received)
        self._deliver(out)
        return out

    async def _close(self, ws: ClientConnection, reason: str, wire_reason: str) -> str:
        """Close ``ws`` for ``reason``; the first reason given is the one reported."""
        if self._closing is None:
            self._closing = reason
        await ws.close(code=CloseCode.OK.value, reason=wire_reason)
        return self._closing

    def _adapter_reason(self) -> str:
        return f"adapter: {self._fatal or 'resync'}"

    # -- the watcher ----------------------------------------------------------------------

    async def _watch(self, ws: ClientConnection, stop: asyncio.Event) -> None:
        """Close ``ws`` when it has been silent too long, reached its age or ``stop`` is set,
        and send the adapter's pings meanwhile."""
        opened = time.monotonic()
        ping_every = self.adapter.ping_interval_s
        next_ping = math.inf if ping_every is None else opened + ping_every
        max_age = self.spec.max_age_s
        retire_at = math.inf if max_age is None else opened + max_age
        silence = self.adapter.silence_timeout_s
        try:
            while not stop.is_set():
                now = time.monotonic()
                silent_for = now - self._last_message_monotonic
                if silent_for >= silence:
                    await self._close(ws, f"silent for {silent_for:.0f} s (watchdog)", "silent")
                    return
                if now >= retire_at:
                    if await self._retire(ws, stop):
                        return
                    continue
                if now >= next_ping:
                    assert ping_every is not None
                    next_ping = now + ping_every
                    if await self._handle(self.adapter.ping(self.spec, time.time_ns()), ws):
                        await self._close(ws, self._adapter_reason(), "resync")
                        return
                    continue
                wake = min(self._last_message_monotonic + silence, retire_at, next_ping)
                await _pause(stop, wake - now)
            await self._close(ws, "stopped", "stopping")
        except _CONNECTION_ERRORS:
            # The socket is gone (a send failed): its reader reports why.
            return

    async def _retire(self, ws: ClientConnection, stop: asyncio.Event) -> bool:
        """Close ``ws`` at its age limit, after opening its replacement where the adapter can
        drop what both deliver; False when ``stop`` came first (nothing closed)."""
        if self.adapter.rotation == "overlap":
            await self._open_replacement(stop)
        if stop.is_set():
            return False
        await self._close(ws, ROTATION, ROTATION)
        return True

    async def _open_replacement(self, stop: asyncio.Event) -> None:
        """Open the connection to take over; it becomes ``_replacement`` once it delivers, and
        is given up otherwise (the rotation then has a gap, as without overlap)."""
        try:
            replacement = _Replacement(await self._connect())
        except _CONNECTION_ERRORS as error:
            self._replacement_failed(_describe(error))
            return
        # What a cancellation (the old connection lost meanwhile) leaves: given up.
        failure: str | None = "cancelled"
        try:
            failure = await self._cannot_take_over(replacement, stop)
        except _CONNECTION_ERRORS as error:
            failure = _describe(error)
        finally:
            if failure is not None:
                await replacement.discard()
        if failure is None:
            self._replacement = replacement
        elif not stop.is_set():
            self._replacement_failed(failure)

    async def _cannot_take_over(self, replacement: _Replacement, stop: asyncio.Event) -> str | None:
        """Why ``replacement`` cannot take over, or None once it has delivered a frame."""
        opening = self.adapter.on_replacement_open(self.spec, replacement.opened_ns)
        if await self._handle(opening, replacement.ws):
            return "the adapter asked for a reconnect"
        if not await self._delivers(replacement, stop):
            return f"nothing from it in {self.adapter.silence_timeout_s:.0f} s"
        return None

    def _replacement_failed(self, why: str) -> None:
        log.warning("%s: no replacement (%s), rotating with a gap", self.spec.name, why)

    async def _delivers(self, replacement: _Replacement, stop: asyncio.Event) -> bool:
        """Whether the replacement delivers a frame within the watchdog's limit, before ``stop``."""
        waiters = {
            asyncio.ensure_future(replacement.delivered.wait()),
            asyncio.ensure_future(stop.wait()),
        }
        try:
            await asyncio.wait(
                waiters,
                timeout=self.adapter.silence_timeout_s,
                return_when=asyncio.FIRST_COMPLETED,
            )
        finally:
            for waiter in waiters:
                waiter.cancel()
        return replacement.delivered.is_set() and not stop.is_set()

    # -- carrying out what the adapter asked ------------------------------------------------

    async def _handle(self, out: Output, ws: ClientConnection | None) -> bool:
        """Deliver what the adapter said and carry out what it asked, sending on ``ws``; True
        when that includes a reconnect."""
        self._deliver(out)
        return await self._act(out, ws)

    def _deliver(self, out: Output) -> None:
        for problem in out.problems:
            self.stats.count(self.spec.name, problem)
        if out.events or out.problems:
            self.stats.events += len(out.events)
            self.emit(out)

    async def _act(self, out: Output, ws: ClientConnection | None) -> bool:
        """Carry out what the adapter asked (its output delivered already); True when that
        includes a reconnect."""
        if out.fatal is not None:
            self._fatal = out.fatal
        if ws is not None:
            for text in out.send:
                await ws.send(text)
                if self.capture:
                    self.capture.sent(self.spec.url, self.adapter.redact_outbound(text))
        reconnect = out.reconnect is not None or out.fatal is not None
        for request in out.rest:
            reconnect = await self._handle(await self._fetch(request), ws) or reconnect
        return reconnect

    async def _fetch(self, request: RestRequest) -> Output:
        for attempt in range(REST_ATTEMPTS):
            try:
                response = await self.http.get(request.url, timeout=10)
            except httpx.HTTPError as error:
                detail = f"{type(error).__name__}: {error}"
            else:
                if self.capture:
                    self.capture.rest(request.url, response.text)
                return self.adapter.on_rest_reply(
                    request, response.status_code, response.content, time.time_ns()
                )
            await asyncio.sleep(self.backoff.delay(attempt))
        failed = Problem("exchange_error", f"{request.endpoint} {request.symbol} failed: {detail}")
        return Output(problems=[failed], reconnect="rest request failed")

    def _status(self, state: str, detail: str) -> None:
        self.stats.state = state
        status = feed_status_now(self.adapter.venue, self.spec.name, state, detail)
        self.emit(Output(events=[status]))


async def _pause(stop: asyncio.Event, seconds: float) -> None:
    """Wait ``seconds``, or less when ``stop`` is set meanwhile."""
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(seconds):
            await stop.wait()


def _describe(error: Exception) -> str:
    return f"{type(error).__name__}: {error}".strip()
