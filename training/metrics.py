"""Forecast scores, the same for every model and baseline.

Returns are scored as quantile forecasts (pinball loss, coverage of the 10-90% interval,
direction of the median); volatility as a variance forecast (QLIKE, robust to noisy realized
volatility, and MSE). The information coefficient ranks instruments against each other per date.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = [
    "QUANTILES",
    "pinball_loss",
    "interval_coverage",
    "directional_accuracy",
    "qlike",
    "mse",
    "information_coefficient",
]

QUANTILES = (0.1, 0.5, 0.9)
# Realized variance can be exactly zero (a flat window); QLIKE needs it positive.
_VARIANCE_FLOOR = 1e-12


def pinball_loss(
    actual: np.ndarray, predicted: np.ndarray, quantiles: tuple[float, ...] = QUANTILES
) -> float:
    """Mean quantile (pinball) loss; ``predicted`` has one column per quantile."""
    errors = actual[:, None] - predicted
    taus = np.asarray(quantiles)[None, :]
    return float(np.mean(np.maximum(taus * errors, (taus - 1) * errors)))


def interval_coverage(actual: np.ndarray, lower: np.ndarray, upper: np.ndarray) -> float:
    return float(np.mean((actual >= lower) & (actual <= upper)))


def directional_accuracy(actual: np.ndarray, median: np.ndarray) -> float:
    """Share of moves whose direction the median called; flat outcomes, and forecasts that
    call no direction (a zero median, as a random walk's), are left out."""
    called = (actual != 0) & (median != 0)
    if not called.any():
        return float("nan")
    return float(np.mean(np.sign(actual[called]) == np.sign(median[called])))


def qlike(realized_vol: np.ndarray, predicted_vol: np.ndarray) -> float:
    realized = np.maximum(realized_vol**2, _VARIANCE_FLOOR)
    predicted = np.maximum(predicted_vol**2, _VARIANCE_FLOOR)
    ratio = realized / predicted
    return float(np.mean(ratio - np.log(ratio) - 1))


def mse(actual: np.ndarray, predicted: np.ndarray) -> float:
    return float(np.mean((actual - predicted) ** 2))


def information_coefficient(frame: pd.DataFrame, predicted: str, actual: str) -> float:
    """Mean over dates of the Spearman correlation between forecasts and outcomes across
    instruments (``frame`` indexed by date, several instruments per date)."""
    per_date = [
        group[predicted].rank().corr(group[actual].rank())
        for _, group in frame.groupby(level=0)
        if len(group) >= 2
    ]
    values = [v for v in per_date if pd.notna(v)]
    return float(np.mean(values)) if values else float("nan")
