"""Replay capture files through a venue adapter, as a live connection would deliver them.

REST replies recorded beside the WebSocket file (depth snapshots) answer the adapter's requests
by endpoint and symbol, not by URL, and no earlier than they were recorded: a snapshot fetched
two seconds into the recorded session reaches the adapter two seconds in, with the deltas that
arrived meanwhile buffered, exactly as live.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter, defaultdict, deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from actors.capture import CaptureLine, CaptureWriter, read_capture
from actors.connection import FRAMES_BETWEEN_YIELDS, ConnectionStats, Emit
from actors.venues.base import (
    ConnectionSpec,
    Output,
    RestRequest,
    VenueAdapter,
)
from core.events import AnyEvent, MarketEvent, feed_status_now

__all__ = [
    "Replay",
    "ReplayRunner",
    "ReplaySummary",
    "read_capture_files",
    "replay_files",
    "replay_lines",
]

EventSink = Callable[[list[AnyEvent]], None]


@dataclass
class ReplaySummary:
    frames: int = 0
    events: Counter[str] = field(default_factory=Counter)
    instruments: dict[str, Counter[str]] = field(default_factory=lambda: defaultdict(Counter))
    problems: Counter[str] = field(default_factory=Counter)
    unanswered_requests: list[str] = field(default_factory=list)

    def record(self, out: Output) -> None:
        for event in out.events:
            kind = str(type(event).__struct_config__.tag)
            self.events[kind] += 1
            if isinstance(event, MarketEvent):
                self.instruments[event.instrument][kind] += 1
        for problem in out.problems:
            self.problems[problem.kind] += 1

    def as_dict(self, adapter: VenueAdapter) -> dict[str, Any]:
        instruments: dict[str, Any] = {}
        for instrument in sorted(set(self.instruments) | set(adapter.books)):
            book = adapter.books.get(instrument)
            bid = book.best_bid() if book else None
            ask = book.best_ask() if book else None
            instruments[instrument] = {
                "events": dict(sorted(self.instruments[instrument].items())),
                "best_bid": bid[0] if bid else None,
                "best_ask": ask[0] if ask else None,
            }
        return {
            "frames": self.frames,
            "events": dict(sorted(self.events.items())),
            "instruments": instruments,
            "gaps": self.events["gap"],
            "checksums_verified": adapter.checksums_verified,
            "checksum_failures": self.problems["checksum_failure"],
            "sequence_errors": self.problems["sequence_error"],
            "parse_errors": self.problems["parse_error"],
            "unknown_messages": self.problems["unknown_message"],
            "other_problems": {
                kind: count
                for kind, count in sorted(self.problems.items())
                if kind
                not in {"checksum_failure", "sequence_error", "parse_error", "unknown_message"}
            },
            "unanswered_requests": self.unanswered_requests,
        }


class _RecordedReplies:
    """REST replies from capture files, handed out in recorded order per (endpoint, symbol)."""

    def __init__(self, adapter: VenueAdapter, lines: Iterable[CaptureLine]) -> None:
        self._replies: dict[tuple[str, str], deque[CaptureLine]] = defaultdict(deque)
        for line in lines:
            key = adapter.rest_key(line.url)
            if key is not None:
                self._replies[key].append(line)

    def next_for(self, request: RestRequest) -> CaptureLine | None:
        queue = self._replies.get((request.endpoint, request.symbol))
        return queue.popleft() if queue else None


class Replay:
    """One recorded connection replayed through a fresh adapter.

    Drivers hand it the capture's lines in order (``step``), pacing them as they like, then call
    ``finish``; both return what the adapter said, and ``summary`` counts it all. The same steps
    run behind ``finone replay`` (``replay_lines``) and behind the replay venue (``ReplayRunner``).
    """

    def __init__(
        self,
        adapter_type: type[VenueAdapter],
        lines: list[CaptureLine],
        rest_lines: Iterable[CaptureLine] = (),
        *,
        summarize: bool = True,
    ) -> None:
        opened = next((line for line in lines if line.kind == "opened"), None)
        if opened is None:
            raise ValueError("the capture records no connection opening (a `URL <-> time` line)")
        sent = [line.text for line in lines if line.kind == "sent"]
        self.lines = lines
        self.adapter = adapter_type(adapter_type.config_from_capture(opened.url, sent))
        self.summary = ReplaySummary()
        # A feed replaying for ever keeps its own counts; the summary is for `finone replay`.
        self._summarize = summarize
        self._opened = opened
        self._conn = ConnectionSpec(
            name=f"{self.adapter.venue}-replay",
            url=opened.url,
            symbols=tuple(self.adapter.config.symbols),
        )
        self._replies = _RecordedReplies(self.adapter, rest_lines)
        self._pending: list[tuple[RestRequest, CaptureLine | None]] = []

    def step(self, line: CaptureLine) -> list[Output]:
        """The adapter's outputs for one line, after the REST replies recorded before it."""
        outputs = self._answer_due(line.timestamp_ns)
        if line.kind == "opened":
            if line is not self._opened:
                closed = self.adapter.on_close(self._conn, "reconnected", line.timestamp_ns)
                outputs.append(self._noted(closed))
            outputs.append(self._noted(self.adapter.on_open(self._conn, line.timestamp_ns)))
        elif line.kind == "received":
            self.summary.frames += 1
            out = self.adapter.on_message(self._conn, line.text, line.timestamp_ns)
            outputs.append(self._noted(out))
        return outputs

    def finish(self) -> list[Output]:
        """Answer the requests still waiting; those the files hold no reply for are listed."""
        outputs = self._answer_due(None)
        self.summary.unanswered_requests = [
            f"{request.endpoint} {request.symbol}"
            for request, reply in self._pending
            if reply is None
        ]
        return outputs

    def _noted(self, out: Output) -> Output:
        if self._summarize:
            self.summary.record(out)
        for request in out.rest:
            self._pending.append((request, self._replies.next_for(request)))
        return out

    def _answer_due(self, now_ns: int | None) -> list[Output]:
        if not self._pending:
            return []
        due = [
            (request, reply)
            for request, reply in self._pending
            if reply is not None and (now_ns is None or reply.timestamp_ns <= now_ns)
        ]
        outputs = []
        for item in due:
            self._pending.remove(item)
            request, reply = item
            assert reply is not None
            out = self.adapter.on_rest_reply(request, 200, reply.text.encode(), reply.timestamp_ns)
            outputs.append(self._noted(out))
        return outputs


def replay_files(
    adapter_type: type[VenueAdapter],
    ws_file: Path,
    rest_files: Iterable[Path] = (),
    *,
    sink: EventSink | None = None,
    realtime: bool = False,
) -> tuple[VenueAdapter, ReplaySummary]:
    """Replay one recorded connection, as fast as possible unless ``realtime`` (the recorded
    pacing between frames); ``sink`` is given each output's events."""
    lines, rest_lines = read_capture_files(ws_file, rest_files)
    return replay_lines(adapter_type, lines, rest_lines, sink=sink, realtime=realtime)


def read_capture_files(
    ws_file: Path, rest_files: Iterable[Path] = ()
) -> tuple[list[CaptureLine], list[CaptureLine]]:
    """One connection's capture lines, refused when it records no opening, and its REST replies."""
    lines = list(read_capture(ws_file))
    if not any(line.kind == "opened" for line in lines):
        raise ValueError(f"{ws_file} records no connection opening (a `URL <-> time` line)")
    return lines, [line for path in rest_files for line in read_capture(path)]


def replay_lines(
    adapter_type: type[VenueAdapter],
    lines: list[CaptureLine],
    rest_lines: Iterable[CaptureLine] = (),
    *,
    sink: EventSink | None = None,
    realtime: bool = False,
) -> tuple[VenueAdapter, ReplaySummary]:
    """``replay_files`` over capture lines already read (one connection, then its REST replies)."""
    replay = Replay(adapter_type, lines, rest_lines)
    started_wall = time.monotonic()
    first_ns = lines[0].timestamp_ns if lines else 0
    for line in lines:
        if realtime:
            delay = (line.timestamp_ns - first_ns) / 1e9 - (time.monotonic() - started_wall)
            if delay > 0:
                time.sleep(delay)
        for out in replay.step(line):
            if sink is not None and out.events:
                sink(out.events)
    for out in replay.finish():
        if sink is not None and out.events:
            sink(out.events)
    return replay.adapter, replay.summary


class ReplayRunner:
    """A feed whose connection is a capture file: the replay venue.

    It looks like ``ConnectionRunner`` to the feed actor (``run``, ``stats``, ``spec``) and
    replays the file through the adapter on the actor's event loop, a frame every ``pace_s``
    seconds or as fast as possible, from the start again when ``loop`` is set, with a gap
    between rounds. Without ``loop`` it stops at the end of the file, until a restart.
    """

    def __init__(
        self,
        adapter_type: type[VenueAdapter],
        spec: ConnectionSpec,
        emit: Emit,
        *,
        ws_file: Path,
        rest_files: tuple[Path, ...] = (),
        pace_s: float | None = None,
        loop: bool = False,
    ) -> None:
        self.adapter_type = adapter_type
        self.spec = spec
        self.emit = emit
        self.ws_file = ws_file
        self.rest_files = rest_files
        self.pace_s = pace_s
        self.loop = loop
        self.stats = ConnectionStats()
        # Recording a replay would only copy the file; the feed actor's switch leaves it None.
        self.capture: CaptureWriter | None = None
        self._restart = False
        self._restarted = asyncio.Event()

    async def run(self, stop: asyncio.Event) -> None:
        lines, rest_lines = await asyncio.to_thread(
            read_capture_files, self.ws_file, self.rest_files
        )
        while not stop.is_set():
            self._restart = False
            self._restarted.clear()
            self.stats.state, self.stats.detail = "live", ""
            self.stats.connected_since_ns = time.time_ns()
            live = feed_status_now(
                self.adapter_type.venue, self.spec.name, "live", f"replaying {self.ws_file.name}"
            )
            self.emit(Output(events=[live]))
            replay = Replay(self.adapter_type, lines, rest_lines, summarize=False)
            await self._play(replay, stop)
            starts_over = self.loop or self._restart
            reason = "replay restarted" if starts_over else "replay ended"
            self._emit_all([replay.adapter.on_close(self.spec, reason, time.time_ns())])
            if not (starts_over or stop.is_set()):
                await self._wait_at_the_end(stop)
            if not stop.is_set():
                self.stats.reconnects += 1
        self.stats.state = "stopped"
        stopped = feed_status_now(self.adapter_type.venue, self.spec.name, "stopped")
        self.emit(Output(events=[stopped]))

    async def _wait_at_the_end(self, stop: asyncio.Event) -> None:
        """A replay played to its end is stopped, saying so, until an operator restarts it."""
        ended = f"replayed {self.ws_file.name} to its end; a restart plays it again"
        self.stats.state, self.stats.detail = "stopped", ended
        self.emit(
            Output(
                events=[feed_status_now(self.adapter_type.venue, self.spec.name, "stopped", ended)]
            )
        )
        waits = [asyncio.ensure_future(stop.wait()), asyncio.ensure_future(self._restarted.wait())]
        try:
            await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for wait in waits:
                wait.cancel()

    async def _play(self, replay: Replay, stop: asyncio.Event) -> None:
        stats = self.stats
        unyielded = 0
        for line in replay.lines:
            if stop.is_set() or self._restart:
                return
            if line.kind == "received":
                if self.pace_s is not None:
                    await asyncio.sleep(self.pace_s)
                else:
                    unyielded += 1
                    if unyielded >= FRAMES_BETWEEN_YIELDS:
                        # As fast as possible, but the publisher and status calls share the loop.
                        unyielded = 0
                        await asyncio.sleep(0)
                stats.messages += 1
                stats.last_message_ns = time.time_ns()
            self._emit_all(replay.step(line))
        self._emit_all(replay.finish())

    def _emit_all(self, outputs: list[Output]) -> None:
        for out in outputs:
            # Counted in the status and, through the feed actor, in its metrics, as live.
            for problem in out.problems:
                self.stats.count(self.spec.name, problem)
            self.stats.events += len(out.events)
            if out.events or out.problems:
                self.emit(out)

    def close_now(self) -> None:
        """Start the replay over from the beginning (the operator's restart)."""
        self._restart = True
        self._restarted.set()
