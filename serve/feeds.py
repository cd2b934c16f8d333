"""The gateway's view of the feed actors: their status, and the operator's levers on them.

Feed actors are named, detached Ray actors in the platform's namespace; the gateway finds them
by name, so it needs no configuration of its own about which venues run.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import ray

from actors.feeds_component import feed_actors

__all__ = ["FeedNotFound", "feed_statuses", "restart_feed", "set_recording"]

log = logging.getLogger(__name__)
_STATUS_TIMEOUT_S = 3.0


class FeedNotFound(LookupError):
    pass


async def _actors() -> dict[str, Any]:
    # Listing named actors asks the GCS synchronously: off the event loop.
    return await asyncio.to_thread(feed_actors)


async def _status(connection: str, actor: Any) -> dict[str, Any]:
    try:
        status: dict[str, Any] = await asyncio.wait_for(actor.status.remote(), _STATUS_TIMEOUT_S)
    except (TimeoutError, ray.exceptions.RayError) as error:
        log.warning("feed %s did not answer: %s", connection, type(error).__name__)
        venue = connection.rpartition("-")[0]
        return {"venue": venue, "connection": connection, "state": "unreachable", "detail": ""}
    return status


async def feed_statuses() -> list[dict[str, Any]]:
    """Every feed connection's status (``FeedActor.status``), by connection name."""
    actors = await _actors()
    names = sorted(actors)
    return list(await asyncio.gather(*(_status(name, actors[name]) for name in names)))


async def _actor(connection: str) -> Any:
    actor = (await _actors()).get(connection)
    if actor is None:
        raise FeedNotFound(connection)
    return actor


async def restart_feed(connection: str) -> None:
    await (await _actor(connection)).restart.remote()


async def set_recording(connection: str, on: bool) -> str | None:
    """Switch recording; the capture file being written, if any."""
    path: str | None = await (await _actor(connection)).set_recording.remote(on)
    return path
