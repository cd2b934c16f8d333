"""The gateway's view of the feed actors: their reports, and the operator's levers on them.

Feed actors are named, detached Ray actors in the platform's namespace; the gateway finds them
by name, so it needs no configuration of its own about which venues run.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import ray
from ray.actor import ActorHandle

from actors.feed import FeedReport
from core.named_actors import feed_actors

__all__ = ["FeedNotFound", "feed_reports", "restart_feed", "set_recording"]

log = logging.getLogger(__name__)
_STATUS_TIMEOUT_S = 3.0


class FeedNotFound(LookupError):
    pass


async def _actors() -> dict[str, ActorHandle[Any]]:
    # Listing named actors asks the GCS synchronously: off the event loop.
    return await asyncio.to_thread(feed_actors)


async def _report(connection: str, actor: ActorHandle[Any]) -> FeedReport:
    try:
        report: FeedReport = await asyncio.wait_for(actor.status.remote(), _STATUS_TIMEOUT_S)
    except (TimeoutError, ray.exceptions.RayError) as error:
        log.warning("feed %s did not answer: %s", connection, type(error).__name__)
        venue = connection.rpartition("-")[0]
        return FeedReport(venue=venue, connection=connection, state="unreachable")
    return report


async def feed_reports() -> list[FeedReport]:
    """Every feed connection's report, ordered by connection name."""
    actors = await _actors()
    names = sorted(actors)
    return list(await asyncio.gather(*(_report(name, actors[name]) for name in names)))


async def _actor(connection: str) -> ActorHandle[Any]:
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
