"""Daily index history that nothing here is trained or tuned on: the S&P 500 and the NASDAQ
Composite, 1999 to 2018, as the ``arch`` package ships them. The forecasting targets are
judged on it (``bench/bench_forecasts.py``)."""

from __future__ import annotations

import pandas as pd

from training.datasets import examples

__all__ = ["HELD_OUT_INDEXES", "index_bars", "held_out_table"]

HELD_OUT_INDEXES = ("sp500", "nasdaq")


def index_bars(name: str) -> pd.DataFrame:
    """Daily OHLCV of one of HELD_OUT_INDEXES, indexed by date (UTC), oldest first."""
    from arch.data import nasdaq, sp500

    sources = {"sp500": sp500.load, "nasdaq": nasdaq.load}
    if name not in sources:
        raise ValueError(f"unknown held-out index {name!r}; one of {', '.join(sources)}")
    raw = sources[name]()
    bars = raw[["Open", "High", "Low", "Close", "Volume"]].astype(float)
    bars.columns = pd.Index(["open", "high", "low", "close", "volume"])
    bars.index = pd.DatetimeIndex(raw.index).tz_localize("UTC")
    return bars.sort_index()


def held_out_table(horizon: int = 1, vol_horizon: int = 5) -> pd.DataFrame:
    """Both indexes' features and targets pooled in time order, as ``load_dataset`` makes them
    from the bars table (instruments ``index:SP500`` and ``index:NASDAQ``)."""
    tables = [
        table
        for name in HELD_OUT_INDEXES
        for table in examples(f"index:{name.upper()}", index_bars(name), "1d", horizon, vol_horizon)
    ]
    return pd.concat(tables).sort_index(kind="stable")
