"""The connection runner under a flood of frames: the rest of the feed's event loop still runs."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import httpx
import pytest
from websockets.asyncio.server import ServerConnection, serve

from actors.connection import FRAMES_BETWEEN_YIELDS, ConnectionRunner
from actors.venues.base import ConnectionSpec, Output, VenueAdapter, VenueConfig

FRAMES = 20_000


def text_frames(count: int) -> bytes:
    """``count`` small unmasked text frames, as a server writes them on the wire."""
    payloads = (f'{{"n":{n}}}'.encode() for n in range(count))
    return b"".join(bytes((0x81, len(payload))) + payload for payload in payloads)


class CountingAdapter(VenueAdapter):
    """Counts frames and stops the runner at the last one."""

    venue = "flood"
    default_ws_url = "ws://127.0.0.1"

    def __init__(self, url: str, stop: asyncio.Event) -> None:
        super().__init__(VenueConfig(venue="flood", symbols=["X"]))
        self.url = url
        self.stop = stop
        self.frames = 0

    def connections(self) -> list[ConnectionSpec]:
        return [ConnectionSpec(name="flood-0", url=self.url, symbols=("X",))]

    def on_open(self, conn: ConnectionSpec, now_ns: int) -> Output:
        return Output()

    def on_message(self, conn: ConnectionSpec, frame: str | bytes, receive_ts_ns: int) -> Output:
        self.frames += 1
        if self.frames == FRAMES:
            self.stop.set()
        return Output()

    def on_close(self, conn: ConnectionSpec, reason: str, now_ns: int) -> Output:
        return Output()


@pytest.fixture
async def flooding_server() -> AsyncIterator[str]:
    wire = text_frames(FRAMES)

    async def flood(connection: ServerConnection) -> None:
        connection.transport.write(wire)
        await connection.wait_closed()

    async with serve(flood, "127.0.0.1", 0, compression=None) as server:
        yield f"ws://127.0.0.1:{server.sockets[0].getsockname()[1]}"


async def test_runner_reading_a_flood_of_frames_gives_other_tasks_their_turns(
    flooding_server: str,
) -> None:
    stop = asyncio.Event()
    adapter = CountingAdapter(flooding_server, stop)
    turns = 0

    async def other_task() -> None:  # the publisher, status calls
        nonlocal turns
        while not stop.is_set():
            turns += 1
            await asyncio.sleep(0)

    def emit(out: Output) -> None:
        pass

    async with httpx.AsyncClient() as http:
        runner = ConnectionRunner(adapter, adapter.connections()[0], emit, http=http)
        await asyncio.wait_for(asyncio.gather(runner.run(stop), other_task()), 60)

    assert adapter.frames >= FRAMES
    # A socket read brings thousands of these frames; without turns between them the other task
    # would run a few times per read.
    assert turns >= FRAMES // (2 * FRAMES_BETWEEN_YIELDS)
