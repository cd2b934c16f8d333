"""Latency figures the benchmarks print: median and 99th percentile."""

from __future__ import annotations

import statistics

__all__ = ["percentiles_ms"]


def percentiles_ms(samples_s: list[float]) -> tuple[float, float]:
    """(p50, p99) in milliseconds of latencies given in seconds."""
    ordered = sorted(samples_s)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return statistics.median(ordered) * 1e3, p99 * 1e3
