"""The live feed's heartbeats: one task per replica tells every open connection the time, every
``period_s``, and ends those whose access token has expired.

A task and a timer of its own per connection cost an idle connection more memory than its
subscriptions do; one pass over all of them costs one timer whatever their number.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Protocol

from serve.background import keep_running

__all__ = ["Beating", "Heartbeats"]

log = logging.getLogger(__name__)


class Beating(Protocol):
    def beat(self, now_ns: int) -> None: ...


class Heartbeats:
    def __init__(self, period_s: float) -> None:
        self._period_s = period_s
        self._connections: set[Beating] = set()
        self._task: asyncio.Task[None] | None = None

    def add(self, connection: Beating) -> None:
        self._connections.add(connection)
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(
                keep_running(self._round, "live feed heartbeats", log, 0.0), name="heartbeats"
            )

    def discard(self, connection: Beating) -> None:
        self._connections.discard(connection)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            self._task = None

    async def _round(self) -> None:
        await asyncio.sleep(self._period_s)
        now_ns = time.time_ns()
        for connection in tuple(self._connections):
            connection.beat(now_ns)
