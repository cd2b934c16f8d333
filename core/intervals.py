"""Bar lengths the platform stores, and how long each is."""

from __future__ import annotations

from typing import Literal

__all__ = ["INTERVALS", "INTERVAL_NS", "Interval"]

Interval = Literal["1s", "1m", "5m", "15m", "1h", "1d"]

INTERVAL_NS: dict[str, int] = {
    "1s": 1_000_000_000,
    "1m": 60_000_000_000,
    "5m": 300_000_000_000,
    "15m": 900_000_000_000,
    "1h": 3_600_000_000_000,
    "1d": 86_400_000_000_000,
}
INTERVALS = tuple(INTERVAL_NS)
