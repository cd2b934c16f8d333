"""The bundled public-domain daily stock history (``bokeh_sampledata``: AAPL, GOOG, IBM, MSFT,
Quandl WIKI prices to 2013-03-01) loaded into the bars table, so a new user can train at once."""

from __future__ import annotations

import pandas as pd

from actors.demo import DEMO_SYMBOLS, stock_history
from cluster.bars_import import bars_from_frame, write_bars
from core.events import instrument_id

__all__ = ["SAMPLE_VENUE", "SAMPLE_INTERVAL", "SAMPLE_INSTRUMENTS", "load_sample_bars"]

# The demo streams these under Alpaca's name; history and live bars then share instrument ids.
SAMPLE_VENUE = "alpaca"
SAMPLE_INTERVAL = "1d"
SAMPLE_INSTRUMENTS = tuple(instrument_id(SAMPLE_VENUE, symbol) for symbol in DEMO_SYMBOLS)


def _as_text(history: pd.DataFrame) -> pd.DataFrame:
    # repr gives the shortest spelling of each float: the digits the source file has.
    text = pd.DataFrame({"date": history["date"].dt.strftime("%Y-%m-%dT00:00:00Z")})
    for column in ("open", "high", "low", "close"):
        text[column] = [repr(float(v)) for v in history[column]]
    text["volume"] = [str(int(v)) for v in history["volume"]]
    return text


async def load_sample_bars(
    database_url: str,
    symbols: tuple[str, ...] = DEMO_SYMBOLS,
    before: pd.Timestamp | None = None,
) -> dict[str, tuple[int, int, int]]:
    """Symbol -> (bars, inserted, updated) of the days before ``before`` (all when None);
    loading twice changes nothing."""
    history = stock_history(symbols)
    if before is not None:
        history = history[history["date"] < before]
    loaded: dict[str, tuple[int, int, int]] = {}
    for symbol in symbols:
        rows = history[history["ticker"] == symbol]
        bars = bars_from_frame(_as_text(rows), f"bokeh_sampledata stocks {symbol}")
        inserted, updated = await write_bars(
            database_url, SAMPLE_VENUE, symbol, SAMPLE_INTERVAL, bars
        )
        loaded[symbol] = (len(bars.rows), inserted, updated)
    return loaded
