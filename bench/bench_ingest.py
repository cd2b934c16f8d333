"""Ingest throughput of one feed: real captured frames through the adapter and into Redis.

For each capture in ../shared/captures (looped, a fresh adapter per pass), and for a long
synthetic OKX stream in steady state (one snapshot, then small deltas with real checksums and
sequence ids, and trades, from the OKX test market), it measures, side by side in one run:
  decode   the frames through a plain JSON decode (the floor any handler pays),
  adapter  the venue adapter in this process: parse, validate, book, sequence and checksum checks,
  actor    a real feed actor on a local Ray cluster replaying the capture as fast as possible,
           looped (the replay venue), into a real Redis: events/s and frames/s written to Redis,
           read from the actor's status over a window (the gap and status events each pass ends
           with count too: under 2% of them),
  socket   the adapter in this process reading those frames from a local WebSocket server in
           another process, through each client library side by side: `websockets` (the live
           path's client before issue 19, pure Python frame parsing) and `picows` (compiled,
           the live path's client now),
  live     the same feed actor on its live path: the capture's frames, looped, from a local
           WebSocket server in another process, through the connection runner (OKX streams;
           Binance's needs REST snapshots the stand-in does not serve).
Then the peak RSS of a feed actor holding 100 OKX books of 400 levels a side, beside the same
actor holding none, and the heap the books themselves take.
Target on these 2-core machines: >= 50,000 book/trade events/s into Redis per feed actor.
Run with `make bench` or `.venv/bin/python bench/bench_ingest.py [--frames N] [--window S]`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import multiprocessing
import statistics
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path
from typing import Any

import msgspec
import picows.websockets
import ray
import websockets
from websockets.asyncio.server import ServerConnection, serve
from websockets.protocol import State

sys.path.insert(0, str(Path(__file__).parent))

from local_services import local_services  # noqa: E402

from actors.book import okx_checksum  # noqa: E402
from actors.capture import CaptureWriter  # noqa: E402
from actors.feed import FeedActor  # noqa: E402
from actors.replay import read_capture_files, replay_lines  # noqa: E402
from actors.simulated.okx import OkxMarket  # noqa: E402
from actors.venues.base import VenueAdapter, VenueConfig  # noqa: E402
from actors.venues.binance import BinanceAdapter  # noqa: E402
from actors.venues.okx import OkxAdapter  # noqa: E402
from core.events import AnyEvent, BookDelta, BookSnapshot  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
CAPTURES = ROOT.parent / "shared" / "captures"
OKX_URL = "wss://ws.okx.com:8443/ws/v5/public"
# Seconds a feed actor replays before its windows start (worker start, first passes).
WARMUP_S = 5.0


class Recording:
    """One capture, read once, so that timing covers the adapter and not file parsing."""

    def __init__(self, adapter_type: type[VenueAdapter], ws: Path, rest: tuple[Path, ...]) -> None:
        self.adapter_type = adapter_type
        self.ws = ws
        self.rest = rest
        self.lines, self.replies = read_capture_files(ws, rest)
        self.frames = [line for line in self.lines if line.kind == "received"]

    def levels(self) -> int:
        """Book levels carried by one pass's events (the work behind a book event)."""
        events: list[AnyEvent] = []
        self.run(events.extend)
        return sum(
            len(e.bids) + len(e.asks) for e in events if isinstance(e, BookDelta | BookSnapshot)
        )

    def replay_config(self) -> VenueConfig:
        """The replay venue's configuration for this capture, looped as fast as possible."""
        opened = next(line for line in self.lines if line.kind == "opened")
        sent = [line.text for line in self.lines if line.kind == "sent"]
        config = self.adapter_type.config_from_capture(opened.url, sent)
        return msgspec.structs.replace(
            config,
            replay_file=str(self.ws),
            replay_rest_files=[str(path) for path in self.rest],
            replay_loop=True,
        )

    def run(self, sink: Callable[[list[AnyEvent]], None] | None) -> int:
        """One pass through a fresh adapter, as a connection would; returns the events made."""
        _, summary = replay_lines(self.adapter_type, self.lines, self.replies, sink=sink)
        return sum(summary.events.values())


def synthetic_okx_capture(path: Path, frames: int) -> Path:
    """A steady OKX stream: two instruments, deltas of 1-4 levels, a trade every third frame."""
    instruments = ("BTC-USDT", "ETH-USDT")
    market = OkxMarket(instruments, seed=7, depth=400)
    writer = CaptureWriter(path)
    writer.opened(OKX_URL, 0)
    args = [{"channel": c, "instId": i} for c in ("books", "trades") for i in instruments]
    writer.sent(OKX_URL, json.dumps({"op": "subscribe", "args": args}), 0)
    for instrument in instruments:
        writer.received(market.snapshot_frame(instrument), 0)
    for n in range(frames):
        instrument = instruments[n % 2]
        frame = market.trade_frame(instrument) if n % 3 == 2 else market.update_frame(instrument)
        writer.received(frame, n)
    writer.close()
    return path


def decode_frames(decoder: msgspec.json.Decoder, texts: list[str], passes: int) -> None:
    for _ in range(passes):
        for text in texts:
            decoder.decode(text)


def run_passes(recording: Recording, passes: int) -> None:
    for _ in range(passes):
        recording.run(None)


def timed(fn: object, repeats: int) -> list[float]:
    results = []
    for _ in range(repeats):
        gc.collect()
        started = time.perf_counter()
        fn()  # type: ignore[operator]
        results.append(time.perf_counter() - started)
    return results


def websocket_frames(texts: list[str]) -> bytes:
    """The frames as a server sends them on the wire (unmasked text frames)."""
    wire = bytearray()
    for text in texts:
        payload = text.encode()
        if len(payload) < 126:
            wire += bytes((0x81, len(payload)))
        elif len(payload) < 1 << 16:
            wire += bytes((0x81, 126)) + len(payload).to_bytes(2, "big")
        else:
            wire += bytes((0x81, 127)) + len(payload).to_bytes(8, "big")
        wire += payload
    return bytes(wire)


def serve_frames_for_ever(texts: list[str], ports: multiprocessing.Queue) -> None:
    """A venue stand-in (its own process): every client gets ``texts`` again and again, as fast
    as its socket takes them; what the client sends (subscriptions) is ignored."""
    wire = websocket_frames(texts)

    async def blast(connection: ServerConnection) -> None:
        transport = connection.transport
        while connection.state is State.OPEN:
            transport.write(wire)
            while transport.get_write_buffer_size() > len(wire):
                await asyncio.sleep(0.001)

    async def run() -> None:
        async with serve(blast, "127.0.0.1", 0, compression=None) as server:
            ports.put(server.sockets[0].getsockname()[1])
            await asyncio.Future()

    asyncio.run(run())


CLIENTS: dict[str, Callable[..., Any]] = {
    "websockets": websockets.connect,
    "picows": picows.websockets.connect,
}


@contextlib.contextmanager
def frame_server(texts: list[str]) -> Iterator[str]:
    """The URL of a stand-in venue (another process) sending ``texts`` looped to every client."""
    ports: multiprocessing.Queue = multiprocessing.get_context("spawn").Queue()
    server = multiprocessing.get_context("spawn").Process(
        target=serve_frames_for_ever, args=(texts, ports), daemon=True
    )
    server.start()
    try:
        yield f"ws://127.0.0.1:{ports.get(timeout=60)}"
    finally:
        server.terminate()
        server.join()


async def socket_rate(
    recording: Recording, url: str, client: str, window_s: float
) -> tuple[float, float]:
    """(frames/s, events/s) of the adapter in this process reading ``url`` through ``client``
    for ``window_s`` (as the connection runner does: receive, hand to the adapter)."""
    adapter = recording.adapter_type(recording.replay_config())
    spec = adapter.connections()[0]
    connect = CLIENTS[client]
    ws = await connect(url, max_size=adapter.config.max_frame_bytes * 4)
    frames = events = 0
    try:
        started = time.perf_counter()
        while time.perf_counter() - started < window_s:
            for _ in range(256):
                out = adapter.on_message(spec, await ws.recv(), time.time_ns())
                events += len(out.events)
            frames += 256
        elapsed = time.perf_counter() - started
    finally:
        await ws.close()
    return frames / elapsed, events / elapsed


async def live_feed_actor_rates(
    recording: Recording, redis_url: str, windows: int, window_s: float
) -> list[tuple[float, float]]:
    """``feed_actor_rates`` for the live path: the capture's frames over a real local WebSocket,
    through the connection runner, instead of the replay venue."""
    with frame_server([f.text for f in recording.frames]) as url:
        config = msgspec.structs.replace(recording.replay_config(), replay_file=None, ws_url=url)
        return await feed_actor_rates(recording, redis_url, windows, window_s, config)


async def feed_actor_rates(
    recording: Recording,
    redis_url: str,
    windows: int,
    window_s: float,
    config: VenueConfig | None = None,
) -> list[tuple[float, float]]:
    """(frames/s, events/s) written to Redis by a feed actor replaying ``recording`` looped (or
    streaming ``config``), for each of ``windows`` consecutive windows after a warm-up."""
    config = config or recording.replay_config()
    connection = recording.adapter_type(config).connections()[0].name
    actor = FeedActor.remote(config, connection, redis_url, stream_maxlen=100_000)
    try:
        await asyncio.sleep(WARMUP_S)
        rates = []
        last, last_at = await actor.status.remote(), time.monotonic()
        for _ in range(windows):
            await asyncio.sleep(window_s)
            now, now_at = await actor.status.remote(), time.monotonic()
            elapsed = now_at - last_at
            rates.append(
                (
                    (now.messages - last.messages) / elapsed,
                    (now.published - last.published) / elapsed,
                )
            )
            last, last_at = now, now_at
        return rates
    finally:
        await actor.shutdown.remote()
        ray.kill(actor)


BOOKS = 100
BOOK_LEVELS = 400  # a side: OKX's full depth


def book_symbols() -> list[str]:
    return [f"COIN{n}-USDT" for n in range(BOOKS)]


def book_snapshot_frames() -> list[str]:
    """An OKX snapshot of 400 levels a side, with its real checksum, for each of 100 symbols."""
    frames = []
    for n, symbol in enumerate(book_symbols()):
        mid = 1_000 + n
        bids = [[f"{mid - 0.01 * (i + 1):.2f}", f"{1 + i % 7}.125", "0", "1"] for i in range(400)]
        asks = [[f"{mid + 0.01 * (i + 1):.2f}", f"{1 + i % 5}.25", "0", "1"] for i in range(400)]
        checksum = okx_checksum([(p, q) for p, q, _, _ in bids], [(p, q) for p, q, _, _ in asks])
        data = {"asks": asks, "bids": bids, "ts": "1700000000000", "checksum": checksum}
        frames.append(
            json.dumps(
                {
                    "arg": {"channel": "books", "instId": symbol},
                    "action": "snapshot",
                    "data": [data],
                }
            )
        )
    return frames


def books_capture(path: Path, with_books: bool) -> Path:
    """A capture subscribing to 100 OKX books, with their snapshots or (as a baseline) without."""
    writer = CaptureWriter(path)
    writer.opened(OKX_URL, 0)
    args = [{"channel": "books", "instId": symbol} for symbol in book_symbols()]
    writer.sent(OKX_URL, json.dumps({"op": "subscribe", "args": args}), 0)
    for frame in book_snapshot_frames() if with_books else []:
        writer.received(frame, 0)
    writer.close()
    return path


def books_heap_mib() -> float:
    """Python heap an OKX adapter holds for 100 books of 400 levels a side (tracemalloc)."""
    frames = book_snapshot_frames()
    tracemalloc.start()
    adapter = OkxAdapter(VenueConfig(venue="okx", symbols=book_symbols(), channels=["book"]))
    conn = adapter.connections()[0]
    adapter.on_open(conn, 0)
    for frame in frames:
        adapter.on_message(conn, frame, 0)
    held, _ = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    levels = sum(sum(book.depth()) for book in adapter.books.values())
    assert levels == BOOKS * 2 * BOOK_LEVELS, f"books were not all accepted ({levels} levels)"
    return held / 2**20


async def feed_actor_peak_rss_mib(capture: Path, redis_url: str) -> float:
    """Peak RSS (VmHWM) of a feed actor that replayed ``capture`` once and published it all."""
    recording = Recording(OkxAdapter, capture, ())
    config = msgspec.structs.replace(recording.replay_config(), replay_loop=False)
    connection = OkxAdapter(config).connections()[0].name
    actor = FeedActor.remote(config, connection, redis_url, stream_maxlen=100_000)
    try:
        while True:
            status = await actor.status.remote()
            if status.state == "stopped" and status.unpublished == 0:
                break
            await asyncio.sleep(0.2)
        pid = await actor.pid.remote()
        status_lines = Path(f"/proc/{pid}/status").read_text().splitlines()
        peak_kib = next(int(line.split()[1]) for line in status_lines if line.startswith("VmHWM:"))
        return peak_kib / 1024
    finally:
        await actor.shutdown.remote()
        ray.kill(actor)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--frames", type=int, default=100_000, help="frames per measurement")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--window", type=float, default=5.0, help="seconds per actor window")
    args = parser.parse_args()
    if not CAPTURES.exists():
        raise SystemExit(f"no captures at {CAPTURES}; nothing to replay")
    recordings = {
        "binance": Recording(
            BinanceAdapter, CAPTURES / "BINANCE.ws.1.0", (CAPTURES / "BINANCE.http.0.0",)
        ),
        "okx": Recording(OkxAdapter, CAPTURES / "OKX.ws.1.0", ()),
    }
    decoder = msgspec.json.Decoder()
    rows: dict[str, list[str]] = {venue: [] for venue in [*recordings, "okx-steady"]}
    with tempfile.TemporaryDirectory(prefix="finone-bench-") as tmp:
        synthetic = synthetic_okx_capture(Path(tmp) / "okx-steady.ws", args.frames)
        recordings["okx-steady"] = Recording(OkxAdapter, synthetic, ())
        # The in-process stages run before Ray starts, whose own processes would share the cores.
        for venue, recording in recordings.items():
            passes = max(1, args.frames // len(recording.frames))
            frames = passes * len(recording.frames)
            texts = [f.text for f in recording.frames]
            events = recording.run(None) * passes
            levels = recording.levels() * passes
            decode_s = statistics.median(
                timed(partial(decode_frames, decoder, texts, passes), args.repeats)
            )
            adapter_only = partial(run_passes, recording, passes)
            adapter_s = statistics.median(timed(adapter_only, args.repeats))
            rows[venue].append(f"{venue:10} {'decode':10} {frames / decode_s:>11,.0f}")
            rows[venue].append(
                f"{venue:10} {'adapter':10} {frames / adapter_s:>11,.0f} "
                f"{events / adapter_s:>11,.0f} {levels / adapter_s:>11,.0f}"
            )
        for venue, recording in recordings.items():
            if recording.replies:
                continue  # the stand-in venue serves frames only, no REST snapshots
            socket: dict[str, list[tuple[float, float]]] = {client: [] for client in CLIENTS}
            with frame_server([f.text for f in recording.frames]) as url:
                # Interleaved windows: the machine's drift falls on both clients alike.
                for _ in range(args.repeats):
                    for client, rates in socket.items():
                        rates.append(await socket_rate(recording, url, client, args.window))
            for client, rates in socket.items():
                rows[venue].append(
                    f"{venue:10} {client:10} {statistics.median(f for f, _ in rates):>11,.0f} "
                    f"{statistics.median(e for _, e in rates):>11,.0f}"
                )
        async with local_services(Path(tmp)) as services:
            ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
            for venue, recording in recordings.items():
                rates = await feed_actor_rates(
                    recording, services.redis_url, args.repeats, args.window
                )
                frame_rate = statistics.median(f for f, _ in rates)
                event_rate = statistics.median(e for _, e in rates)
                levels_per_event = recording.levels() / recording.run(None)
                rows[venue].append(
                    f"{venue:10} {'actor':10} {frame_rate:>11,.0f} {event_rate:>11,.0f} "
                    f"{event_rate * levels_per_event:>11,.0f}"
                )
                if recording.replies:
                    continue  # the stand-in venue serves frames only, no REST snapshots
                rates = await live_feed_actor_rates(
                    recording, services.redis_url, args.repeats, args.window
                )
                frame_rate = statistics.median(f for f, _ in rates)
                event_rate = statistics.median(e for _, e in rates)
                rows[venue].append(
                    f"{venue:10} {'live':10} {frame_rate:>11,.0f} {event_rate:>11,.0f} "
                    f"{event_rate * levels_per_event:>11,.0f}"
                )
            with_books = await feed_actor_peak_rss_mib(
                books_capture(Path(tmp) / "books.ws", True), services.redis_url
            )
            without = await feed_actor_peak_rss_mib(
                books_capture(Path(tmp) / "no-books.ws", False), services.redis_url
            )
            ray.shutdown()
    print(
        f"{'venue':10} {'stage':10} {'frames/s':>11} {'events/s':>11} {'levels/s':>11}"
        f"   (median of {args.repeats})"
    )
    for venue_rows in rows.values():
        print("\n".join(venue_rows))
    print(
        f"feed actor holding {BOOKS} OKX books x {2 * BOOK_LEVELS} levels: peak RSS "
        f"{with_books:.0f} MiB ({with_books - without:.0f} MiB over the same actor with none); "
        f"the books' Python heap: {books_heap_mib():.1f} MiB"
    )


if __name__ == "__main__":
    asyncio.run(main())
