"""The gateway's levers on the retrain scheduler actor (named, in the platform's namespace)."""

from __future__ import annotations

import asyncio
from typing import Any

import ray

from actors.retrain_scheduler import RETRAIN_ACTOR_NAME
from cluster.components import RAY_NAMESPACE

__all__ = ["SchedulerMissing", "retrain_status", "trigger_retrain"]

_TIMEOUT_S = 5.0


class SchedulerMissing(LookupError):
    pass


async def _scheduler() -> Any:
    try:
        # A GCS lookup, synchronous in Ray: off the event loop.
        return await asyncio.to_thread(ray.get_actor, RETRAIN_ACTOR_NAME, RAY_NAMESPACE)
    except ValueError:
        raise SchedulerMissing(RETRAIN_ACTOR_NAME) from None


async def retrain_status() -> dict[str, Any]:
    status: dict[str, Any] = await asyncio.wait_for(
        (await _scheduler()).status.remote(), _TIMEOUT_S
    )
    return status


async def trigger_retrain() -> bool:
    """True when a run started; False when one is already running."""
    started: bool = await asyncio.wait_for((await _scheduler()).trigger.remote(), _TIMEOUT_S)
    return started
