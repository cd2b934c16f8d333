"""A background loop of a replica outlives the failures of its passes, and says what failed."""

from __future__ import annotations

import asyncio
import logging

import pytest
import redis.exceptions

from serve.background import keep_running


async def test_a_loop_goes_on_through_redis_errors_and_bugs_until_cancelled(
    caplog: pytest.LogCaptureFixture,
) -> None:
    failures: list[BaseException] = [
        redis.exceptions.ConnectionError("refused"),
        ConnectionResetError("reset"),
        KeyError("a bug"),
    ]
    passes = 0
    done = asyncio.Event()

    async def step() -> None:
        nonlocal passes
        passes += 1
        if failures:
            raise failures.pop(0)
        done.set()
        await asyncio.Event().wait()

    with caplog.at_level(logging.WARNING):
        loop = asyncio.create_task(keep_running(step, "test loop", logging.getLogger("t"), 0.01))
        await asyncio.wait_for(done.wait(), 5)
        loop.cancel()
        with pytest.raises(asyncio.CancelledError):
            await loop

    assert passes == 4
    lines = [(record.levelname, record.getMessage()) for record in caplog.records]
    assert lines == [
        ("WARNING", "test loop: Redis is unreachable (ConnectionError); retrying"),
        ("WARNING", "test loop: Redis is unreachable (ConnectionResetError); retrying"),
        ("ERROR", "test loop failed; continuing"),
    ]
    assert caplog.records[-1].exc_info is not None
