"""Datasets read from the bars table, pooled across instruments."""

from __future__ import annotations

import asyncpg
import pandas as pd
import pytest

from cluster.sample_data import load_sample_bars
from training.datasets import load_dataset
from training.errors import DatasetError
from training.features import FEATURES, LOOKBACK, TARGETS, unbroken_runs


async def test_pooled_dataset_from_the_bars_table(database_url: str) -> None:
    await load_sample_bars(database_url, ("IBM", "MSFT"))

    table = await load_dataset(database_url, ["alpaca:IBM", "alpaca:MSFT"], "1d")

    assert set(table["instrument"]) == {"alpaca:IBM", "alpaca:MSFT"}
    assert table.index.is_monotonic_increasing
    assert str(table.index.tz) == "UTC"
    assert list(table.columns) == [*FEATURES, *TARGETS, "instrument"]
    # 3,270 bars each, less 21 of look-back and 5 of look-ahead.
    assert (table["instrument"] == "alpaca:IBM").sum() == 3_270 - 26


async def test_missing_history_names_the_instrument_and_the_fix(database_url: str) -> None:
    with pytest.raises(DatasetError, match="no 1d bars for alpaca:NOPE: import some"):
        await load_dataset(database_url, ["alpaca:NOPE"], "1d")


async def _insert_minutes(database_url: str, instrument: str, minutes: list[int]) -> None:
    conn = await asyncpg.connect(database_url)
    try:
        await conn.executemany(
            "INSERT INTO bars (instrument_id, interval, start_ts_ns, open, high, low, close, "
            "volume, trade_count) VALUES ($1, '1m', $2, $3, $4, $5, $6, $7, 1)",
            [
                (
                    instrument,
                    START + minute * MINUTE,
                    100 + (minute % 7),
                    103 + (minute % 7),
                    99 + (minute % 5) * 0.1,
                    100.5 + (minute % 3),
                    1_000 + (minute * 37) % 500,
                )
                for minute in minutes
            ],
        )
    finally:
        await conn.close()


START = 1_700_000_000 * 10**9
MINUTE = 60 * 10**9


async def test_examples_never_span_a_gap_in_the_bars(database_url: str) -> None:
    # 100 minutes, an hour without bars, 100 more; two missing minutes are no gap.
    minutes = [m for m in range(100) if m not in (40, 41)] + list(range(160, 260))
    await _insert_minutes(database_url, "test:GAPPY", minutes)

    table = await load_dataset(database_url, ["test:GAPPY"], "1m")

    starts = table.index.asi8
    after_gap = starts[starts >= START + 160 * MINUTE]
    # Each side of the gap makes its own examples: none of the first 20 bars after it (their
    # look-back would reach across), none of the last 5 before it (their targets would).
    assert after_gap.min() == START + (160 + LOOKBACK) * MINUTE
    assert starts[starts < START + 160 * MINUTE].max() == START + 94 * MINUTE
    assert len(table) == (98 - 26) + (100 - 26)


async def test_history_cut_short_by_gaps_says_so(database_url: str) -> None:
    await _insert_minutes(database_url, "test:CHOPPY", [0, 1, 2, 3, 4, 5, *range(20, 40), 90, 91])

    with pytest.raises(
        DatasetError,
        match=r"test:CHOPPY: its 28 1m bars have 2 gap\(s\); the "
        r"longest stretch without one has 20 bars, an example needs 27",
    ):
        await load_dataset(database_url, ["test:CHOPPY"], "1m")


def test_daily_bars_skip_weekends_and_closures_without_a_gap() -> None:
    days = pd.to_datetime(["2001-09-07", "2001-09-10", "2001-09-17", "2001-10-15"], utc=True)
    bars = pd.DataFrame({"close": [1.0, 2.0, 3.0, 4.0]}, index=days)

    runs = unbroken_runs(bars, "1d")

    assert [len(run) for run in runs] == [3, 1]
