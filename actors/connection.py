"""Holding one venue WebSocket connection alive: the IO half of a feed.

``ConnectionRunner`` connects, hands the adapter each frame, sends what it asks to send, makes
the REST calls it needs, and reconnects with capped exponential backoff and full jitter when the
connection drops, the venue goes silent (watchdog), the adapter asks for it, or the connection
reaches its venue-imposed age. Every time continuity is lost the adapter's ``on_close`` gaps are
emitted, so readers know.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import httpx
import websockets
from websockets.asyncio.client import ClientConnection

from actors.capture import CaptureWriter
from actors.venues.base import ConnectionSpec, Output, Problem, RestRequest, VenueAdapter
from cluster.events import feed_status_now

__all__ = ["ConnectionRunner", "ConnectionStats", "Backoff", "Emit"]

log = logging.getLogger(__name__)

Emit = Callable[[Output], Awaitable[None]]
REST_ATTEMPTS = 3
# A connection that stayed up this long was healthy: its loss restarts the backoff from the bottom.
STABLE_AFTER_S = 30.0


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
    connected_since_ns: int | None = None
    last_message_ns: int | None = None
    messages: int = 0
    events: int = 0
    reconnects: int = 0
    problems: Counter[str] = field(default_factory=Counter)


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
        self._logged_kinds: set[str] = set()
        self._ws: ClientConnection | None = None
        self._last_message_monotonic: float | None = None
        self._fatal: str | None = None

    async def run(self, stop: asyncio.Event) -> None:
        """Hold the connection until ``stop`` is set or the adapter says retrying is futile."""
        attempt = 0
        while not stop.is_set():
            await self._status("connecting", f"attempt {attempt + 1}")
            started = time.monotonic()
            reason = await self._one_connection(stop)
            await self._handle(self.adapter.on_close(self.spec, reason, time.time_ns()))
            self.stats.connected_since_ns = None
            if stop.is_set():
                break
            if self._fatal is not None:
                await self._status("failed", self._fatal)
                return
            self.stats.reconnects += 1
            if reason == "rotation":
                delay = 0.0
            else:
                stable = time.monotonic() - started >= STABLE_AFTER_S
                attempt = 1 if stable else attempt + 1
                delay = self.backoff.delay(attempt)
            await self._status("reconnecting", f"{reason}; retrying in {delay:.1f} s")
            try:
                await asyncio.wait_for(stop.wait(), timeout=delay)
            except TimeoutError:
                pass
        await self._status("stopped", "")

    def close_now(self) -> None:
        """Drop the current connection (operator restart); ``run`` reconnects."""
        if self._ws is not None:
            asyncio.ensure_future(self._ws.close(code=1000, reason="restart"))

    async def _one_connection(self, stop: asyncio.Event) -> str:
        limit = self.adapter.config.max_frame_bytes
        try:
            async with websockets.connect(
                self.spec.url,
                open_timeout=10,
                close_timeout=5,
                ping_interval=20,
                ping_timeout=20,
                # Frames above the adapter's limit are skipped and counted, not fatal; only
                # absurd ones end the connection.
                max_size=limit * 4,
            ) as ws:
                self._ws = ws
                now = time.time_ns()
                self.stats.connected_since_ns = now
                if self.capture:
                    self.capture.opened(self.spec.url, now)
                await self._status("live", "")
                if await self._handle(self.adapter.on_open(self.spec, now)):
                    return "adapter"
                return await self._read(ws, stop)
        except (OSError, TimeoutError, websockets.WebSocketException) as error:
            return f"{type(error).__name__}: {error}".strip()
        finally:
            self._ws = None

    async def _read(self, ws: ClientConnection, stop: asyncio.Event) -> str:
        opened = time.monotonic()
        last_ping = opened
        ping_every = self.adapter.ping_interval_s
        stopper = asyncio.ensure_future(stop.wait())
        try:
            while True:
                now = time.monotonic()
                if self.spec.max_age_s is not None and now - opened >= self.spec.max_age_s:
                    await ws.close(code=1000, reason="rotation")
                    return "rotation"
                if ping_every is not None and now - last_ping >= ping_every:
                    last_ping = now
                    if await self._handle(self.adapter.ping(self.spec, time.time_ns())):
                        return "adapter"
                timeout = self.adapter.silence_timeout_s
                if ping_every is not None:
                    timeout = min(timeout, max(0.05, ping_every - (now - last_ping)))
                receiver = asyncio.ensure_future(ws.recv())
                done, _ = await asyncio.wait(
                    {receiver, stopper}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED
                )
                if stopper in done:
                    receiver.cancel()
                    await ws.close(code=1000, reason="stopping")
                    return "stopped"
                if receiver not in done:
                    receiver.cancel()
                    silent_for = time.monotonic() - (self._last_message_monotonic or opened)
                    if silent_for >= self.adapter.silence_timeout_s:
                        await ws.close(code=1000, reason="silent")
                        return f"silent for {silent_for:.0f} s (watchdog)"
                    continue
                frame = receiver.result()
                if await self._on_frame(frame):
                    await ws.close(code=1000, reason="resync")
                    return f"adapter: {self._fatal or 'resync'}"
        finally:
            stopper.cancel()

    async def _on_frame(self, frame: str | bytes) -> bool:
        """Hand one frame to the adapter; True when it asked for a reconnect."""
        received = time.time_ns()
        self._last_message_monotonic = time.monotonic()
        self.stats.messages += 1
        self.stats.last_message_ns = received
        if self.capture:
            text = frame if isinstance(frame, str) else frame.decode("utf-8", "replace")
            self.capture.received(text, received)
        if len(frame) > self.adapter.config.max_frame_bytes:
            await self._handle(
                Output(problems=[Problem("oversized_frame", f"{len(frame)} bytes")])
            )
            return False
        return await self._handle(self.adapter.on_message(self.spec, frame, received))

    async def _handle(self, out: Output) -> bool:
        """Carry out what the adapter asked; True when that includes a reconnect."""
        if out.fatal is not None:
            self._fatal = out.fatal
        if self._ws is not None:
            for text in out.send:
                await self._ws.send(text)
                if self.capture:
                    self.capture.sent(self.spec.url, self.adapter.redact_outbound(text))
        for problem in out.problems:
            self._count(problem)
        self.stats.events += len(out.events)
        await self.emit(out)
        reconnect = out.reconnect is not None or out.fatal is not None
        for request in out.rest:
            reconnect = await self._handle(await self._fetch(request)) or reconnect
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

    def _count(self, problem: Problem) -> None:
        self.stats.problems[problem.kind] += 1
        if problem.kind not in self._logged_kinds:
            # Logged once per kind: a venue sending garbage must not flood the logs.
            self._logged_kinds.add(problem.kind)
            log.warning("%s %s: %s (further ones are only counted)", self.spec.name, problem.kind, problem.detail)

    async def _status(self, state: str, detail: str) -> None:
        self.stats.state = state
        status = feed_status_now(self.adapter.venue, self.spec.name, state, detail)
        await self.emit(Output(events=[status]))
