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
from actors.connection import ConnectionStats, Emit
from actors.venues.base import (
    ConnectionSpec,
    Output,
    Problem,
    RestRequest,
    VenueAdapter,
)
from cluster.events import AnyEvent, FeedStatus, MarketEvent, feed_status_now

__all__ = ["ReplaySummary", "replay_files", "replay_lines", "ReplayRunner"]

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
            kind = type(event).__struct_config__.tag
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


def replay_files(
    adapter_type: type[VenueAdapter],
    ws_file: Path,
    rest_files: Iterable[Path] = (),
    *,
    sink: EventSink | None = None,
    realtime: bool = False,
    pace_s: float | None = None,
    should_stop: Callable[[], bool] | None = None,
    on_frame: Callable[[], None] | None = None,
    on_problems: Callable[[list[Problem]], None] | None = None,
) -> tuple[VenueAdapter, ReplaySummary]:
    """Replay one recorded connection, as fast as possible by default; ``realtime`` keeps the
    recorded pacing between frames, ``pace_s`` spaces frames evenly instead. ``on_problems`` is
    told of bad input as the adapter finds it (the summary counts it too)."""
    lines = list(read_capture(ws_file))
    if not any(line.kind == "opened" for line in lines):
        raise ValueError(f"{ws_file} records no connection opening (a `URL <-> time` line)")
    return replay_lines(
        adapter_type,
        lines,
        [line for path in rest_files for line in read_capture(path)],
        sink=sink,
        realtime=realtime,
        pace_s=pace_s,
        should_stop=should_stop,
        on_frame=on_frame,
        on_problems=on_problems,
    )


def replay_lines(
    adapter_type: type[VenueAdapter],
    lines: list[CaptureLine],
    rest_lines: Iterable[CaptureLine] = (),
    *,
    sink: EventSink | None = None,
    realtime: bool = False,
    pace_s: float | None = None,
    should_stop: Callable[[], bool] | None = None,
    on_frame: Callable[[], None] | None = None,
    on_problems: Callable[[list[Problem]], None] | None = None,
) -> tuple[VenueAdapter, ReplaySummary]:
    """``replay_files`` over capture lines already read (one connection, then its REST replies)."""
    opened = next(line for line in lines if line.kind == "opened")
    sent = [line.text for line in lines if line.kind == "sent"]
    adapter = adapter_type(adapter_type.config_from_capture(opened.url, sent))
    conn = ConnectionSpec(
        name=f"{adapter.venue}-replay", url=opened.url, symbols=tuple(adapter.config.symbols)
    )
    replies = _RecordedReplies(adapter, rest_lines)
    summary = ReplaySummary()
    pending: list[tuple[RestRequest, CaptureLine | None]] = []

    def handle(out: Output) -> None:
        summary.record(out)
        if out.problems and on_problems is not None:
            on_problems(out.problems)
        for request in out.rest:
            pending.append((request, replies.next_for(request)))
        if sink is not None:
            events = [e for e in out.events if not isinstance(e, FeedStatus)]
            if events:
                sink(events)

    def answer_due(now_ns: int | None) -> None:
        due = [(r, reply) for r, reply in pending if reply and (now_ns is None or reply.timestamp_ns <= now_ns)]
        for item in due:
            pending.remove(item)
            request, reply = item
            assert reply is not None
            handle(adapter.on_rest_reply(request, 200, reply.text.encode(), reply.timestamp_ns))

    started_wall = time.monotonic()
    first_ns: int | None = None
    for line in lines:
        if should_stop is not None and should_stop():
            break
        if pace_s is not None and line.kind == "received":
            time.sleep(pace_s)
        elif realtime:
            first_ns = line.timestamp_ns if first_ns is None else first_ns
            delay = (line.timestamp_ns - first_ns) / 1e9 - (time.monotonic() - started_wall)
            if delay > 0:
                time.sleep(delay)
        answer_due(line.timestamp_ns)
        if line.kind == "opened":
            if line is not opened:
                handle(adapter.on_close(conn, "reconnected", line.timestamp_ns))
            handle(adapter.on_open(conn, line.timestamp_ns))
        elif line.kind == "received":
            summary.frames += 1
            if on_frame is not None:
                on_frame()
            handle(adapter.on_message(conn, line.text, line.timestamp_ns))
    answer_due(None)
    summary.unanswered_requests = [f"{r.endpoint} {r.symbol}" for r, reply in pending if reply is None]
    return adapter, summary


class ReplayRunner:
    """A feed whose connection is a capture file: the replay venue.

    It looks like ``ConnectionRunner`` to the feed actor (``run``, ``stats``, ``spec``), and
    replays the file through the adapter in a worker thread at a fixed pace, from the start
    again when ``loop`` is set, with a gap between rounds.
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

    async def run(self, stop: asyncio.Event) -> None:
        event_loop = asyncio.get_running_loop()

        def deliver(events: list[AnyEvent]) -> None:
            self.stats.events += len(events)
            event_loop.call_soon_threadsafe(asyncio.ensure_future, self.emit(Output(events=events)))

        def frame_seen() -> None:
            self.stats.messages += 1
            self.stats.last_message_ns = time.time_ns()

        def problems_found(problems: list[Problem]) -> None:
            # Counted in the status and, through the feed actor, in its metrics, as live.
            for problem in problems:
                self.stats.problems[problem.kind] += 1
            out = Output(problems=problems)
            event_loop.call_soon_threadsafe(asyncio.ensure_future, self.emit(out))

        while not stop.is_set():
            self._restart = False
            self.stats.state = "live"
            self.stats.connected_since_ns = time.time_ns()
            live = feed_status_now(
                self.adapter_type.venue, self.spec.name, "live", f"replaying {self.ws_file.name}"
            )
            await self.emit(Output(events=[live]))
            adapter, _ = await asyncio.to_thread(
                replay_files,
                self.adapter_type,
                self.ws_file,
                self.rest_files,
                sink=deliver,
                pace_s=self.pace_s,
                should_stop=lambda: stop.is_set() or self._restart,
                on_frame=frame_seen,
                on_problems=problems_found,
            )
            await self.emit(adapter.on_close(self.spec, "replay restarted", time.time_ns()))
            if not (self.loop or self._restart):
                break
            self.stats.reconnects += 1
        self.stats.state = "stopped"
        await self.emit(Output(events=[feed_status_now(self.adapter_type.venue, self.spec.name, "stopped")]))

    def close_now(self) -> None:
        """Start the replay over from the beginning (the operator's restart)."""
        self._restart = True
