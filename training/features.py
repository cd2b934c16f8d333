"""Leakage-safe features and forecast targets from OHLCV bars of one instrument.

Every feature at bar t is computed from bars up to and including t; only the targets look
ahead (the next ``horizon`` bars' log return, and the realized volatility of the next
``vol_horizon`` bars). Rows without a full look-back or look-ahead are dropped, as are rows
where a value is not finite (a constant price makes a volume z-score undefined, for instance).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from core.intervals import INTERVAL_NS
from training.errors import DatasetError

__all__ = [
    "FEATURES",
    "TARGETS",
    "LOOKBACK",
    "MAX_MISSING_BARS",
    "unbroken_runs",
    "bars_for_an_example",
    "feature_frame",
    "make_features",
]

# Bars before a bar that its features read: HAR's monthly component averages 22 bars (a month
# of trading days), that bar and the 21 before it.
LOOKBACK = 21
_WINDOW = 20
FEATURES = (
    "ret_1",
    "ret_5",
    "ret_20",
    "realized_vol_20",
    "parkinson_20",
    "garman_klass_20",
    "volume_z_20",
    # HAR's components (Corsi): the one-bar Parkinson range variance averaged over 1, 5 and 22
    # bars, in logs (range variance is far less noisy than a squared return).
    "log_range_var_1",
    "log_range_var_5",
    "log_range_var_22",
    # The leverage effect: falls raise volatility more than rises of the same size.
    "down_ret_1",
    "down_vol_5",
    "weekday_sin",
    "weekday_cos",
)
TARGETS = ("target_return", "target_vol")
_REQUIRED = ("open", "high", "low", "close", "volume")
# A bar whose high equals its low has no range; its log needs a floor.
_VARIANCE_FLOOR = 1e-12
# Intraday bars go missing when nothing traded; more than this many in a row is a gap.
MAX_MISSING_BARS = 5
# Daily bars skip weekends, holidays and the rare days a market stays shut (six after 9/11).
_DAILY_GAP_NS = 10 * INTERVAL_NS["1d"]


def unbroken_runs(bars: pd.DataFrame, interval: str) -> list[pd.DataFrame]:
    """``bars`` cut at every gap, oldest first: features must not span one (a return across a
    week of missing minutes is no one-minute return)."""
    step = INTERVAL_NS[interval]
    limit = _DAILY_GAP_NS if interval == "1d" else (MAX_MISSING_BARS + 1) * step
    cuts = (np.flatnonzero(np.diff(bars.index.as_unit("ns").asi8) > limit) + 1).tolist()
    return [bars.iloc[start:end] for start, end in zip([0, *cuts], [*cuts, len(bars)], strict=True)]


def bars_for_an_example(horizon: int, vol_horizon: int) -> int:
    """Bars in a row that make one example: the look-back, the bar itself and the look-ahead."""
    return LOOKBACK + max(horizon, vol_horizon) + 1


def feature_frame(bars: pd.DataFrame) -> pd.DataFrame:
    """``bars``: a DatetimeIndex (UTC), ascending, with float open/high/low/close/volume.

    Returns columns FEATURES for every bar with a full look-back and finite values, including
    the latest bar: what a forecast made now is fed.
    """
    return _complete_rows(_features_and_log_close(bars, LOOKBACK + 1)[0])


def make_features(bars: pd.DataFrame, horizon: int = 1, vol_horizon: int = 5) -> pd.DataFrame:
    """``bars`` as for ``feature_frame``.

    Returns the rows that have every feature and both targets, columns FEATURES + TARGETS.
    """
    table, log_close = _features_and_log_close(bars, bars_for_an_example(horizon, vol_horizon))
    ret_1 = table["ret_1"]
    table["target_return"] = log_close.shift(-horizon) - log_close
    table["target_vol"] = np.sqrt((ret_1**2).rolling(vol_horizon).sum().shift(-vol_horizon))
    return _complete_rows(table)


def _complete_rows(table: pd.DataFrame) -> pd.DataFrame:
    usable = table.replace([np.inf, -np.inf], np.nan).dropna()
    if usable.empty:
        raise DatasetError("no bar has every feature defined (constant prices or volumes?)")
    return usable


def _features_and_log_close(bars: pd.DataFrame, needed: int) -> tuple[pd.DataFrame, pd.Series]:
    missing = [c for c in _REQUIRED if c not in bars.columns]
    if missing:
        raise DatasetError(f"bars lack the column(s): {', '.join(missing)}")
    if len(bars) < needed:
        raise DatasetError(f"need at least {needed} bars to make one example, have {len(bars)}")
    if not bars.index.is_monotonic_increasing:
        raise DatasetError("bars must be in time order")
    prices = bars[["open", "high", "low", "close"]].astype(float)
    if (prices <= 0).to_numpy().any() or not np.isfinite(prices.to_numpy()).all():
        raise DatasetError("bars hold prices that are not positive finite numbers")

    log_close = np.log(prices["close"])
    ret_1 = log_close.diff()
    range_sq = np.log(prices["high"] / prices["low"]) ** 2
    body_sq = np.log(prices["close"] / prices["open"]) ** 2
    log_volume = np.log1p(bars["volume"].astype(float).clip(lower=0))
    volume_mean = log_volume.rolling(_WINDOW).mean()
    volume_std = log_volume.rolling(_WINDOW).std()
    weekday = 2 * np.pi * bars.index.day_of_week.to_numpy() / 7
    range_var = range_sq / (4 * np.log(2))
    down = ret_1.clip(upper=0)

    table = pd.DataFrame(
        {
            "ret_1": ret_1,
            "ret_5": log_close.diff(5),
            "ret_20": log_close.diff(20),
            "realized_vol_20": ret_1.rolling(_WINDOW).std(),
            "parkinson_20": np.sqrt(range_var.rolling(_WINDOW).mean()),
            "garman_klass_20": np.sqrt(
                (0.5 * range_sq - (2 * np.log(2) - 1) * body_sq)
                .rolling(_WINDOW)
                .mean()
                .clip(lower=0)
            ),
            "volume_z_20": (log_volume - volume_mean) / volume_std,
            "log_range_var_1": np.log(range_var + _VARIANCE_FLOOR),
            "log_range_var_5": np.log(range_var.rolling(5).mean() + _VARIANCE_FLOOR),
            "log_range_var_22": np.log(range_var.rolling(22).mean() + _VARIANCE_FLOOR),
            "down_ret_1": down,
            "down_vol_5": np.sqrt((down**2).rolling(5).mean()),
            "weekday_sin": np.sin(weekday),
            "weekday_cos": np.cos(weekday),
        },
        index=bars.index,
    )
    return table, log_close
