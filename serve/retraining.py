"""The gateway's levers on the retrain scheduler actor (named, in the platform's namespace)."""

from __future__ import annotations

import asyncio
from typing import Any

from ray.actor import ActorHandle

from actors.retrain_scheduler import RETRAIN_ACTOR_NAME, RetrainReport, TriggerReply
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


async def trigger_retrain(interval: str | None) -> TriggerReply:
    """Retrain ``interval`` (every interval in turn when None), in one call to the scheduler."""
    scheduler = await _scheduler()
    reply: TriggerReply = await asyncio.wait_for(scheduler.trigger.remote(interval), _TIMEOUT_S)
    return reply
