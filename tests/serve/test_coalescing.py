"""Requests that arrive together for the same key share one call, and only while it is in
flight; a failure reaches every caller; one caller giving up leaves the others their answer."""

from __future__ import annotations

import asyncio
import contextvars

import pytest

from serve.coalescing import Coalescing


class _Slow:
    """A call that answers ``key * 2`` once released, counting how often it is made."""

    def __init__(self, fails: bool = False) -> None:
        self.calls: list[int] = []
        self.release = asyncio.Event()
        self.fails = fails

    async def __call__(self, key: int) -> int:
        self.calls.append(key)
        await self.release.wait()
        if self.fails:
            raise RuntimeError(f"no answer for {key}")
        return key * 2


async def test_concurrent_requests_for_one_key_make_one_call_and_all_get_its_answer() -> None:
    call = _Slow()
    coalescing = Coalescing(call)
    waiting = [asyncio.create_task(coalescing(7)) for _ in range(20)]
    other = asyncio.create_task(coalescing(8))
    await asyncio.sleep(0)

    call.release.set()

    assert await asyncio.gather(*waiting) == [14] * 20
    assert await other == 16
    assert sorted(call.calls) == [7, 8]
    assert len(coalescing) == 0


async def test_a_request_after_the_answer_makes_a_new_call() -> None:
    call = _Slow()
    call.release.set()
    coalescing = Coalescing(call)

    assert await coalescing(3) == 6
    assert await coalescing(3) == 6
    assert call.calls == [3, 3]


async def test_a_failed_call_fails_every_caller_and_the_next_request_tries_again() -> None:
    call = _Slow(fails=True)
    coalescing = Coalescing(call)
    waiting = [asyncio.create_task(coalescing(1)) for _ in range(3)]
    await asyncio.sleep(0)
    call.release.set()

    results = await asyncio.gather(*waiting, return_exceptions=True)

    assert all(isinstance(r, RuntimeError) for r in results), results
    call.fails = False
    assert await coalescing(1) == 2
    assert call.calls == [1, 1]


async def test_a_caller_giving_up_leaves_the_others_their_answer() -> None:
    call = _Slow()
    coalescing = Coalescing(call)
    impatient = asyncio.create_task(coalescing(5))
    patient = asyncio.create_task(coalescing(5))
    await asyncio.sleep(0)

    impatient.cancel()
    call.release.set()

    assert await patient == 10
    with pytest.raises(asyncio.CancelledError):
        await impatient
    assert call.calls == [5]


_asker: contextvars.ContextVar[str] = contextvars.ContextVar("asker", default="nobody")


async def test_the_shared_call_is_made_outside_every_callers_context() -> None:
    """Ray Serve cancels the handle calls a request made, found through its context, when that
    request's client goes away; a shared call must be no one caller's."""
    seen: list[str] = []
    release = asyncio.Event()

    async def call(key: int) -> int:
        seen.append(_asker.get())
        await release.wait()
        return key

    coalescing = Coalescing(call)

    async def ask(name: str) -> int:
        _asker.set(name)
        return await coalescing(1)

    first = asyncio.create_task(ask("first"))
    second = asyncio.create_task(ask("second"))
    await asyncio.sleep(0)
    release.set()

    assert await asyncio.gather(first, second) == [1, 1]
    assert seen == ["nobody"]
