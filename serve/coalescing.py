"""Concurrent requests for the same thing share one call: while a call for a key is in flight,
whoever asks for that key again waits for its answer instead of making another.

The answer is never older than the request that started the call, which began before the
later ones arrived: for forecasts, which change once a bar or a model does, that is the same
answer they would have got, for a fraction of the calls to inference.

The shared call belongs to none of its callers: it runs in a context of its own, without their
context variables. Ray Serve ties a handle call to the request whose context made it and cancels
it when that request's client goes away; made in the first caller's context, the call would end
with that client for everyone waiting on it.
"""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, TypeVar

__all__ = ["Coalescing"]

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class Coalescing(Generic[K, V]):
    def __init__(self, call: Callable[[K], Awaitable[V]]) -> None:
        self._call = call
        self._in_flight: dict[K, asyncio.Future[V]] = {}

    def __len__(self) -> int:
        """Calls in flight now."""
        return len(self._in_flight)

    async def __call__(self, key: K) -> V:
        shared = self._in_flight.get(key)
        if shared is None:
            shared = asyncio.get_running_loop().create_task(
                self._answer(key), context=contextvars.Context()
            )
            self._in_flight[key] = shared
            shared.add_done_callback(lambda done: self._settle(key, done))
        # One caller giving up (its client went away) must not cancel the others' answer.
        return await asyncio.shield(shared)

    async def _answer(self, key: K) -> V:
        # A coroutine of its own: the call is made once the task runs, in the task's context.
        return await self._call(key)

    def _settle(self, key: K, done: asyncio.Future[V]) -> None:
        if self._in_flight.get(key) is done:
            del self._in_flight[key]
        if not done.cancelled():
            # Marks a failure as seen even when every caller gave up before it came.
            done.exception()
