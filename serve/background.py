"""Background loops of the gateway and inference replicas, kept running through failures."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Generic, NoReturn, TypeVar

import redis.exceptions

__all__ = ["keep_running", "ConnectionRounds"]

C = TypeVar("C")


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


class ConnectionRounds(Generic[C]):
    """One task per replica over its open connections, whatever their number: subclasses say
    what one ``_step`` does; it runs again and again (``keep_running``) from the first
    connection on, until ``close``."""

    def __init__(self, what: str, log: logging.Logger, retry_s: float) -> None:
        self._what = what
        self._log = log
        self._retry_s = retry_s
        self._connections: set[C] = set()
        self._task: asyncio.Task[None] | None = None

    def add(self, connection: C) -> None:
        self._connections.add(connection)
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(
                keep_running(self._step, self._what, self._log, self._retry_s), name=self._what
            )

    def discard(self, connection: C) -> None:
        self._connections.discard(connection)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            self._task = None

    async def _step(self) -> None:
        raise NotImplementedError
