"""The replay runner on a real recording with bad lines mixed in."""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from actors.replay import ReplayRunner
from actors.venues.base import ConnectionSpec, Output
from actors.venues.okx import OkxAdapter
from core.events import FeedStatus, Gap
from tests.captures import CAPTURES, needs_captures
from tests.polling import wait_until


@needs_captures
async def test_replay_feed_counts_bad_frames_as_a_live_feed_does(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    capture = tmp_path / "OKX.ws.1.0"
    recorded = (CAPTURES / "OKX.ws.1.0").read_text().rstrip("\n")
    capture.write_text(recorded + "\n1652459236.5: {not json\n1652459236.6: [1, 2]\n")
    emitted: list[Output] = []

    def emit(out: Output) -> None:
        emitted.append(out)

    spec = ConnectionSpec(name="okx-replay", url="", symbols=("BTC-USDT",))
    runner = ReplayRunner(OkxAdapter, spec, emit, ws_file=capture)
    stop = asyncio.Event()
    with caplog.at_level(logging.WARNING, logger="actors.connection"):
        running = asyncio.create_task(runner.run(stop))
        await wait_until(_at_the_end(runner), 30, "the replay to reach its end")

    assert runner.stats.problems["parse_error"] >= 2
    reported = Counter(p.kind for out in emitted for p in out.problems)
    assert reported == runner.stats.problems
    # Logged once per kind, as live: the rest only counted.
    logged = Counter(record.getMessage().split()[1].rstrip(":") for record in caplog.records)
    assert logged == {kind: 1 for kind in runner.stats.problems}

    statuses = [e for out in emitted for e in out.events if isinstance(e, FeedStatus)]
    assert [s.state for s in statuses] == ["live", "stopped"]
    assert "to its end" in statuses[-1].detail == runner.stats.detail
    ended = [e for out in emitted for e in out.events if isinstance(e, Gap)]
    assert ended and {gap.reason for gap in ended} == {"replay ended"}

    # An operator's restart plays the file again, after a gap; stopping the feed ends the run.
    played = runner.stats.messages
    runner.close_now()
    await wait_until(_at_the_end(runner, after_messages=2 * played), 30, "the second round")
    assert runner.stats.reconnects == 1
    stop.set()
    await asyncio.wait_for(running, 5)
    assert runner.stats.state == "stopped"


def _at_the_end(runner: ReplayRunner, after_messages: int = 1) -> Callable[[], Awaitable[bool]]:
    async def ended() -> bool:
        stats = runner.stats
        return stats.state == "stopped" and bool(stats.detail) and stats.messages >= after_messages

    return ended
