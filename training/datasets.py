"""Datasets from the Postgres bars table: one instrument's features, or several pooled."""

from __future__ import annotations

import asyncpg
import numpy as np
import pandas as pd

from training.errors import DatasetError
from training.features import bars_for_an_example, make_features, unbroken_runs

__all__ = ["load_bars", "recent_bars", "load_dataset", "examples"]

_COLUMNS = ["open", "high", "low", "close", "volume"]


async def load_bars(conn: asyncpg.Connection, instrument: str, interval: str) -> pd.DataFrame:
    """The instrument's bars, oldest first, indexed by start time (UTC), as floats."""
    rows = await conn.fetch(
        "SELECT start_ts_ns, open::float8, high::float8, low::float8, close::float8, "
        "volume::float8 FROM bars WHERE instrument_id = $1 AND interval = $2 "
        "ORDER BY start_ts_ns",
        instrument,
        interval,
    )
    if not rows:
        raise DatasetError(
            f"no {interval} bars for {instrument}: import some with `finone import-bars`, or "
            "`finone load-sample-data` for the bundled stocks"
        )
    return _frame([tuple(row) for row in rows])


async def recent_bars(
    conn: asyncpg.Connection | asyncpg.Pool, instruments: list[str], interval: str, count: int
) -> dict[str, pd.DataFrame]:
    """The latest ``count`` bars of each instrument that has any, oldest first, in one query."""
    rows = await conn.fetch(
        "SELECT instrument_id, start_ts_ns, open::float8, high::float8, low::float8, "
        "close::float8, volume::float8 FROM unnest($1::text[]) AS wanted(id) "
        "CROSS JOIN LATERAL (SELECT * FROM bars WHERE instrument_id = wanted.id "
        "AND interval = $2 ORDER BY start_ts_ns DESC LIMIT $3) AS latest "
        "ORDER BY instrument_id, start_ts_ns",
        instruments,
        interval,
        count,
    )
    grouped: dict[str, list[tuple[float, ...]]] = {}
    for row in rows:
        grouped.setdefault(row[0], []).append(tuple(row)[1:])
    return {instrument: _frame(values) for instrument, values in grouped.items()}


def _frame(rows: list[tuple[float, ...]]) -> pd.DataFrame:
    values = np.array(rows, dtype=float)
    index = pd.to_datetime(values[:, 0].astype("int64"), unit="ns", utc=True)
    return pd.DataFrame(values[:, 1:], index=index, columns=_COLUMNS)


async def load_dataset(
    database_url: str,
    instruments: list[str],
    interval: str,
    horizon: int = 1,
    vol_horizon: int = 5,
) -> pd.DataFrame:
    """Features and targets of each instrument, pooled in time order with an ``instrument``
    column; an instrument whose history cannot make a dataset stops it with the reason.
    Examples never span a gap in an instrument's bars (``training.features.unbroken_runs``)."""
    conn = await asyncpg.connect(database_url)
    try:
        tables: list[pd.DataFrame] = []
        for instrument in instruments:
            bars = await load_bars(conn, instrument, interval)
            tables += examples(instrument, bars, interval, horizon, vol_horizon)
    finally:
        await conn.close()
    return pd.concat(tables).sort_index(kind="stable")


def examples(
    instrument: str, bars: pd.DataFrame, interval: str, horizon: int = 1, vol_horizon: int = 5
) -> list[pd.DataFrame]:
    """One instrument's features and targets (an ``instrument`` column added), a table per
    stretch of ``bars`` without a gap that is long enough to make an example."""
    needed = bars_for_an_example(horizon, vol_horizon)
    runs = unbroken_runs(bars, interval)
    usable = [run for run in runs if len(run) >= needed]
    if not usable and len(runs) > 1:
        longest = max(len(run) for run in runs)
        raise DatasetError(
            f"{instrument}: its {len(bars)} {interval} bars have {len(runs) - 1} gap(s); the "
            f"longest stretch without one has {longest} bars, an example needs {needed}"
        )
    tables = []
    for run in usable or runs:
        try:
            table = make_features(run, horizon=horizon, vol_horizon=vol_horizon)
        except DatasetError as error:
            raise DatasetError(f"{instrument}: {error}") from None
        tables.append(table.assign(instrument=instrument))
    return tables
