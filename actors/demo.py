"""The demo markets, on any machine: real daily stock history replayed as a live feed, and a
simulated crypto exchange streaming trades, quotes and books.

The history is the public-domain Quandl WIKI prices bundled in ``bokeh_sampledata`` (AAPL, GOOG,
IBM, MSFT up to 2013-03-01), adjusted for splits and dividends. It is written once as an
Alpaca-protocol capture file (daily bars, ``{"T": "d", ...}``, one frame per trading day) and
streamed by the replay venue through the same Alpaca adapter a live feed uses, a trading day
every ``FINONE_DEMO_PACE_S`` seconds. At its end (2013-03-01) the feed stops and says so: starting
over would send prices back two years beside the history already recorded.

The crypto market is ``actors.simulated``'s: made-up prices served over OKX's protocol by the
SimulatedVenue actor, streamed by a feed of the ``simulated`` venue.
"""

from __future__ import annotations

import time
from pathlib import Path

import msgspec
import pandas as pd

from actors.capture import CaptureWriter
from actors.simulated.market import LISTINGS
from actors.venues.alpaca import AlpacaAdapter
from actors.venues.base import VenueConfig
from actors.venues.simulated import SimulatedAdapter

__all__ = [
    "DEMO_SYMBOLS",
    "DEMO_REPLAY_FROM",
    "demo_capture",
    "demo_config",
    "simulated_config",
    "stock_history",
]

DEMO_SYMBOLS = ("AAPL", "GOOG", "IBM", "MSFT")
# The demo loads the days before this as history and replays the rest as the live market, so
# live bars carry the history on instead of starting over years before its end.
DEMO_REPLAY_FROM = pd.Timestamp("2011-01-01")
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
    """The history from ``DEMO_REPLAY_FROM`` on as a capture file (written on first use), in
    the Alpaca stream's protocol."""
    since = DEMO_REPLAY_FROM.strftime("%Y%m%d")
    path = directory / f"demo-adjusted-{'-'.join(symbols)}-from-{since}.ws"
    if path.exists():
        return path
    history = stock_history(symbols)
    history = history[history["date"] >= DEMO_REPLAY_FROM]
    partial = path.with_suffix(".partial")
    writer = CaptureWriter(partial)
    now = time.time_ns()
    writer.opened(_URL, now)
    writer.received(_encode([{"T": "success", "msg": "connected"}]).decode(), now)
    writer.sent(_URL, '{"action":"auth","key":"***","secret":"***"}', now)
    writer.received(_encode([{"T": "success", "msg": "authenticated"}]).decode(), now)
    writer.sent(_URL, _encode({"action": "subscribe", "bars": list(symbols)}).decode(), now)
    writer.received(
        _encode(
            [{"T": "subscription", "trades": [], "quotes": [], "bars": list(symbols)}]
        ).decode(),
        now,
    )
    for day, rows in history.groupby("date", sort=True):
        stamp = int(pd.Timestamp(day).tz_localize("UTC").value)
        writer.received(_encode([_bar_message(row) for _, row in rows.iterrows()]).decode(), stamp)
    writer.close()
    partial.replace(path)
    return path


def demo_config(capture_dir: Path, pace_s: float) -> VenueConfig:
    """The replay-venue feed that streams the demo history once."""
    return VenueConfig(
        venue=AlpacaAdapter.venue,
        symbols=list(DEMO_SYMBOLS),
        channels=["bars"],
        # The replay never connects, so it never authenticates.
        api_key="demo",
        api_secret="demo",
        replay_file=str(demo_capture(capture_dir)),
        replay_pace_s=pace_s,
        replay_loop=False,
    )


def simulated_config(ws_url: str | None) -> VenueConfig:
    """The feed of the simulated exchange listening at ``ws_url``: every listing, every channel."""
    return VenueConfig(
        venue=SimulatedAdapter.venue,
        symbols=[listing.inst_id for listing in LISTINGS],
        channels=["trades", "quotes", "book"],
        ws_url=ws_url,
    )
