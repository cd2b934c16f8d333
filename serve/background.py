"""Background loops of the gateway and inference replicas, kept running through failures."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import NoReturn

import redis.exceptions

__all__ = ["keep_running"]


async def keep_running(
    step: Callable[[], Awaitable[None]], what: str, log: logging.Logger, retry_s: float
) -> NoReturn:
    """Run ``step`` again and again until cancelled. Redis or the network failing is said in one
    line and retried after ``retry_s``; any other error is logged with its traceback and retried
    too: a bug met once must not end a loop the replica depends on for the rest of its life."""
    while True:
        try:
            await step()
        except (redis.exceptions.RedisError, OSError) as error:
            log.warning("%s: Redis is unreachable (%s); retrying", what, type(error).__name__)
            await asyncio.sleep(retry_s)
        except Exception:
            log.exception("%s failed; continuing", what)
            await asyncio.sleep(retry_s)
