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

from serve.background import ConnectionRounds

__all__ = ["Beating", "Heartbeats"]

log = logging.getLogger(__name__)


class Beating(Protocol):
    def beat(self, now_ns: int) -> None: ...


class Heartbeats(ConnectionRounds[Beating]):
    def __init__(self, period_s: float) -> None:
        super().__init__("live feed heartbeats", log, 0.0)
        self._period_s = period_s

    async def _step(self) -> None:
        await asyncio.sleep(self._period_s)
        now_ns = time.time_ns()
        for connection in tuple(self._connections):
            connection.beat(now_ns)
