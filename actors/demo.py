"""The demo market: real daily stock history replayed as a live feed, on any machine.

The history is the public-domain Quandl WIKI prices bundled in ``bokeh_sampledata`` (AAPL, GOOG,
IBM, MSFT up to 2013-03-01), adjusted for splits and dividends. It is written once as an Alpaca-protocol capture file — daily bars,
``{"T": "d", ...}``, one frame per trading day — and streamed by the replay venue through the
same Alpaca adapter a live feed uses, a trading day every ``FINONE_DEMO_PACE_S`` seconds.
"""

from __future__ import annotations

import time
from pathlib import Path

import msgspec
import pandas as pd

from actors.capture import CaptureWriter
from actors.venues.alpaca import AlpacaAdapter
from actors.venues.base import VenueConfig

__all__ = ["DEMO_SYMBOLS", "demo_capture", "demo_config", "stock_history"]

DEMO_SYMBOLS = ("AAPL", "GOOG", "IBM", "MSFT")
_URL = "wss://stream.data.alpaca.markets/v2/iex"
_encode = msgspec.json.Encoder().encode


def stock_history(symbols: tuple[str, ...] = DEMO_SYMBOLS) -> pd.DataFrame:
    """Daily OHLCV rows (ticker, date, open, high, low, close, volume), oldest first, adjusted
    for splits and dividends (the source's ``adj_close`` ratio, prices to 4 decimals).

    Raw prices halve overnight at a split; adjusted ones are a continuous series a model, an
    alert or a chart can use.
    """
    from bokeh_sampledata.stocks import data

    frame = data[data["ticker"].isin(symbols)].copy()
    factor = frame["adj_close"] / frame["close"]
    for column in ("open", "high", "low", "close"):
        frame[column] = (frame[column] * factor).round(4)
    frame["volume"] = (frame["volume"] / factor).round().astype("int64")
    columns = ["ticker", "date", "open", "high", "low", "close", "volume"]
    return frame[columns].sort_values(["date", "ticker"]).reset_index(drop=True)


def _bar_message(row: pd.Series) -> dict[str, object]:
    # repr gives the shortest spelling of each float: the digits the source file has.
    return {
        "T": "d",
        "S": row["ticker"],
        "o": msgspec.Raw(repr(float(row["open"])).encode()),
        "h": msgspec.Raw(repr(float(row["high"])).encode()),
        "l": msgspec.Raw(repr(float(row["low"])).encode()),
        "c": msgspec.Raw(repr(float(row["close"])).encode()),
        "v": int(row["volume"]),
        "t": row["date"].strftime("%Y-%m-%dT00:00:00Z"),
        "n": 0,
    }


def demo_capture(directory: Path, symbols: tuple[str, ...] = DEMO_SYMBOLS) -> Path:
    """The history as a capture file (written on first use), in the Alpaca stream's protocol."""
    path = directory / f"demo-adjusted-{'-'.join(symbols)}.ws"
    if path.exists():
        return path
    history = stock_history(symbols)
    partial = path.with_suffix(".partial")
    writer = CaptureWriter(partial)
    now = time.time_ns()
    writer.opened(_URL, now)
    writer.received(_encode([{"T": "success", "msg": "connected"}]).decode(), now)
    writer.sent(_URL, '{"action":"auth","key":"***","secret":"***"}', now)
    writer.received(_encode([{"T": "success", "msg": "authenticated"}]).decode(), now)
    writer.sent(_URL, _encode({"action": "subscribe", "bars": list(symbols)}).decode(), now)
    writer.received(
        _encode([{"T": "subscription", "trades": [], "quotes": [], "bars": list(symbols)}]).decode(),
        now,
    )
    for day, rows in history.groupby("date", sort=True):
        stamp = int(pd.Timestamp(day).tz_localize("UTC").value)
        writer.received(_encode([_bar_message(row) for _, row in rows.iterrows()]).decode(), stamp)
    writer.close()
    partial.replace(path)
    return path


def demo_config(capture_dir: Path, pace_s: float) -> VenueConfig:
    """The replay-venue feed that streams the demo history, looping."""
    return VenueConfig(
        venue=AlpacaAdapter.venue,
        symbols=list(DEMO_SYMBOLS),
        channels=["bars"],
        # The replay never connects, so it never authenticates.
        api_key="demo",
        api_secret="demo",
        replay_file=str(demo_capture(capture_dir)),
        replay_pace_s=pace_s,
        replay_loop=True,
    )
