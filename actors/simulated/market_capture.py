"""Capture files of the simulated market: what a client subscribed to its listings would have
received over a stretch of market time, written in moments on a virtual clock.

Replayed (``actors.replay``, the replay venue), such a file streams a long live-like market
through the real path, adapter, publisher and recorder, so the recorder's 1 s and 1 min bars
of twenty minutes of trading exist seconds after they are asked for: intraday training, its
tests and benchmarks. The file is like those the demo's feed records from the simulated venue
(``FINONE_RECORD_FEEDS``), its frames and lines stamped by the virtual clock instead of the
wall clock, and replays through the ``simulated`` venue's adapter.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from actors.capture import CaptureWriter
from actors.simulated.market import (
    LISTINGS,
    STEP_S,
    Listing,
    SimulatedMarket,
    first_trade_id_at,
)
from actors.simulated.okx import CHANNELS

__all__ = ["SIMULATED_WS_URL", "write_market_capture"]

# Where the capture says it connected: no real host (``.invalid`` never resolves), OKX's path.
SIMULATED_WS_URL = "ws://simulated.invalid/ws/v5/public"


@dataclass(slots=True)
class _VirtualClock:
    now_ns: int

    def __call__(self) -> int:
        return self.now_ns


def write_market_capture(
    path: Path,
    *,
    duration_s: float,
    start_ns: int,
    listings: Sequence[Listing] = LISTINGS,
    seed: int = 1,
    channels: Sequence[str] = tuple(sorted(CHANNELS)),
    step_s: float = STEP_S,
) -> None:
    """Write (replacing ``path``) a connection opened at ``start_ns`` that subscribes to
    ``channels`` of every listing, then ``duration_s`` of the market's stream.

    A step of the three default listings costs about a millisecond here: at the venue's 100 ms
    half an hour of market time takes twenty seconds to write, so long captures may take
    coarser steps (the price walk scales with ``step_s``; a step's trades share its time).
    Deterministic for (``start_ns``, ``seed``, the rest); trade ids start where a market opened
    at ``start_ns`` starts them, so captures of other times recorded into one database never
    share one."""
    clock = _VirtualClock(start_ns)
    market = SimulatedMarket(
        listings,
        seed=seed,
        step_s=step_s,
        first_trade_id=first_trade_id_at(start_ns),
        clock=clock,
    )
    args = [
        {"channel": channel, "instId": listing.inst_id}
        for listing in listings
        for channel in channels
    ]
    subscribe = json.dumps({"op": "subscribe", "args": args}, separators=(",", ":"))
    subscriptions: set[tuple[str, str]] = set()
    step_ns = round(market.step_s * 1e9)
    path.unlink(missing_ok=True)
    writer = CaptureWriter(path)
    try:
        writer.opened(SIMULATED_WS_URL, start_ns)
        writer.sent(SIMULATED_WS_URL, subscribe, start_ns)
        for reply in market.replies(subscribe, subscriptions):
            writer.received(reply, start_ns)
        # As ``OkxServer`` streams: step n goes out n steps after the subscription.
        for step in range(1, round(duration_s * 1e9) // step_ns + 1):
            clock.now_ns = start_ns + step * step_ns
            for channel, inst_id, text in market.stream_frames(step):
                if (channel, inst_id) in subscriptions:
                    writer.received(text, clock.now_ns)
    finally:
        writer.close()
