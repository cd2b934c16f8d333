"""``finone replay``: capture files through a venue adapter, optionally published to Redis."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from actors.capture import read_capture
from actors.publisher import RedisPublisher
from actors.replay import replay_files
from actors.venues import adapter_for
from cluster.service_urls import redis_url_for
from core.errors import PlatformError
from core.events import AnyEvent
from core.settings import Settings

__all__ = ["run_replay"]


def _split_files(files: list[Path]) -> tuple[Path, list[Path]]:
    """The WebSocket recording (it has a ``URL <-> time`` line) and the REST reply files."""
    ws_files: list[Path] = []
    rest_files: list[Path] = []
    for path in files:
        try:
            kinds = {line.kind for line in read_capture(path)}
        except ValueError as error:
            raise PlatformError(str(error)) from None
        (ws_files if "opened" in kinds else rest_files).append(path)
    if len(ws_files) != 1:
        raise PlatformError(
            f"give exactly one WebSocket capture (got {len(ws_files)}) plus any REST reply files"
        )
    return ws_files[0], rest_files


def run_replay(venue: str, files: list[Path], *, publish: bool, realtime: bool) -> dict[str, Any]:
    try:
        adapter_type = adapter_for(venue)
    except KeyError as error:
        raise PlatformError(str(error.args[0])) from None
    ws_file, rest_files = _split_files(files)
    if not publish:
        adapter, summary = replay_files(adapter_type, ws_file, rest_files, realtime=realtime)
        return summary.as_dict(adapter)
    return asyncio.run(
        _replay_publishing(adapter_type, ws_file, rest_files, realtime, redis_url_for(Settings()))
    )


async def _replay_publishing(
    adapter_type: Any, ws_file: Path, rest_files: list[Path], realtime: bool, redis_url: str
) -> dict[str, Any]:
    publisher = RedisPublisher(redis_url)
    publisher.start()
    loop = asyncio.get_running_loop()

    def sink(events: list[AnyEvent]) -> None:
        # Called from the replay thread; the publisher belongs to the event loop's thread.
        loop.call_soon_threadsafe(publisher.publish, events)

    try:
        adapter, summary = await asyncio.to_thread(
            replay_files, adapter_type, ws_file, rest_files, sink=sink, realtime=realtime
        )
        await asyncio.sleep(0)  # let the last handed-over batch reach the publisher
        await publisher.drain(60)
    finally:
        await publisher.close()
    result = summary.as_dict(adapter)
    result["published"] = publisher.stats.published
    return result
