"""The gateway's levers on the retrain scheduler actor (named, in the platform's namespace)."""

from __future__ import annotations

import asyncio
from typing import Any

from ray.actor import ActorHandle

from actors.retrain_scheduler import RETRAIN_ACTOR_NAME, RetrainReport
from core.named_actors import named_actor

__all__ = ["SchedulerMissing", "retrain_report", "trigger_retrain"]

_TIMEOUT_S = 5.0


class SchedulerMissing(LookupError):
    pass


async def _scheduler() -> ActorHandle[Any]:
    try:
        # A GCS lookup, synchronous in Ray: off the event loop.
        return await asyncio.to_thread(named_actor, RETRAIN_ACTOR_NAME)
    except ValueError:
        raise SchedulerMissing(RETRAIN_ACTOR_NAME) from None


async def retrain_report() -> RetrainReport:
    report: RetrainReport = await asyncio.wait_for((await _scheduler()).status.remote(), _TIMEOUT_S)
    return report


async def trigger_retrain(interval: str | None) -> bool:
    """Retrain ``interval`` (every interval in turn when None): True when the run started,
    False when one is already running."""
    scheduler = await _scheduler()
    started: bool = await asyncio.wait_for(scheduler.trigger.remote(interval), _TIMEOUT_S)
    return started
