"""``finone replay`` as a user runs it, on the real recordings in ../shared/captures."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import redis

from core.redis_keys import stream_key
from tests.captures import CAPTURES, needs_captures

FINONE = str(Path(sys.executable).parent / "finone")


def replay(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [FINONE, "replay", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env=env or dict(os.environ),
    )


@needs_captures
def test_replay_of_binance_capture_with_its_snapshots_keeps_every_book_consistent() -> None:
    result = replay(
        "--venue",
        "binance",
        "--no-publish",
        str(CAPTURES / "BINANCE.http.0.0"),
        str(CAPTURES / "BINANCE.ws.1.0"),
    )
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["frames"] == 265
    assert (summary["sequence_errors"], summary["parse_errors"], summary["unknown_messages"]) == (
        0,
        0,
        0,
    )
    assert summary["gaps"] == 0 and summary["unanswered_requests"] == []
    assert set(summary["instruments"]) == {
        "binance:NKN-USDT",
        "binance:BLZ-ETH",
        "binance:LRC-BTC",
        "binance:RUNE-EUR",
    }
    for instrument, detail in summary["instruments"].items():
        assert detail["events"]["book_snapshot"] == 1, instrument
        assert float(detail["best_bid"]) < float(detail["best_ask"]), instrument
    # Prices as the exchange wrote them, trailing zeros and all.
    assert summary["instruments"]["binance:NKN-USDT"]["best_ask"] == "0.35310000"


@needs_captures
def test_replay_publishing_to_redis_writes_every_event_to_its_stream(redis_url: str) -> None:
    # A logical database of its own: the flush must not touch the gateway tests' state.
    redis_url = urlunsplit(urlsplit(redis_url)._replace(path="/2"))
    client = redis.from_url(redis_url)
    client.flushdb()
    result = replay(
        "--venue",
        "okx",
        str(CAPTURES / "OKX.ws.1.0"),
        env={**os.environ, "REDIS_URL": redis_url},
    )
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    trades = summary["instruments"]["okx:BTC-USDT"]["events"]["trade"]
    assert client.xlen(stream_key("trades", "okx:BTC-USDT")) == trades
    assert summary["published"] == sum(summary["events"].values())
    client.close()


def test_replay_without_a_websocket_capture_says_what_to_give(tmp_path: Path) -> None:
    rest = tmp_path / "depth.http"
    rest.write_text(
        'https://api.binance.com/api/v3/depth?symbol=BTCUSDT -> 1.0: {"lastUpdateId":1}\n'
    )
    result = replay("--venue", "binance", "--no-publish", str(rest))
    assert result.returncode == 1
    assert "exactly one WebSocket capture" in result.stderr


def test_replay_with_unknown_venue_lists_the_known_ones(tmp_path: Path) -> None:
    capture = tmp_path / "x.ws"
    capture.write_text("wss://example <-> 1.0\n")
    result = replay("--venue", "nowhere", "--no-publish", str(capture))
    assert result.returncode == 1
    assert "unknown venue 'nowhere'" in result.stderr and "binance" in result.stderr


def test_replay_of_a_garbled_file_names_the_line(tmp_path: Path) -> None:
    capture = tmp_path / "bad.ws"
    capture.write_text("wss://example <-> 1.0\nthis is not a capture line\n")
    result = replay("--venue", "okx", "--no-publish", str(capture))
    assert result.returncode == 1
    assert "bad.ws:2" in result.stderr and "Traceback" not in result.stderr
