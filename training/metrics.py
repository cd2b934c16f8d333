"""Forecast scores, the same for every model and baseline.

Returns are scored as quantile forecasts (pinball loss, coverage of the 10-90% interval,
direction of the median); volatility as a variance forecast (QLIKE, robust to noisy realized
volatility, and MSE). The information coefficient ranks instruments against each other per date.
The Diebold-Mariano test says whether one forecaster's loss is lower than another's by more than
chance.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.stats import binomtest
from scipy.stats import t as student_t

__all__ = [
    "QUANTILES",
    "pinball_loss",
    "interval_coverage",
    "directional_accuracy",
    "direction_p_value",
    "qlike",
    "mse",
    "information_coefficient",
    "pinball_losses",
    "qlike_losses",
    "diebold_mariano",
]

QUANTILES = (0.1, 0.5, 0.9)
# Realized variance can be exactly zero (a flat window); QLIKE needs it positive.
_VARIANCE_FLOOR = 1e-12


def pinball_losses(
    actual: np.ndarray, predicted: np.ndarray, quantiles: tuple[float, ...] = QUANTILES
) -> np.ndarray:
    """Per forecast, the quantile (pinball) loss averaged over ``predicted``'s columns (one per
    quantile)."""
    errors = actual[:, None] - predicted
    taus = np.asarray(quantiles)[None, :]
    losses: np.ndarray = np.maximum(taus * errors, (taus - 1) * errors).mean(axis=1)
    return losses


def pinball_loss(
    actual: np.ndarray, predicted: np.ndarray, quantiles: tuple[float, ...] = QUANTILES
) -> float:
    """Mean quantile (pinball) loss; ``predicted`` has one column per quantile."""
    return float(np.mean(pinball_losses(actual, predicted, quantiles)))


def interval_coverage(actual: np.ndarray, lower: np.ndarray, upper: np.ndarray) -> float:
    return float(np.mean((actual >= lower) & (actual <= upper)))


def directional_accuracy(actual: np.ndarray, median: np.ndarray) -> float:
    """Share of moves whose direction the median called; flat outcomes, and forecasts that
    call no direction (a zero median, as a random walk's), are left out."""
    called = (actual != 0) & (median != 0)
    if not called.any():
        return float("nan")
    return float(np.mean(np.sign(actual[called]) == np.sign(median[called])))


def direction_p_value(actual: np.ndarray, median: np.ndarray) -> float:
    """One-sided binomial p-value that the median calls directions better than a coin would
    (the moves ``directional_accuracy`` counts); NaN when it calls none."""
    called = (actual != 0) & (median != 0)
    if not called.any():
        return float("nan")
    hits = int(np.sum(np.sign(actual[called]) == np.sign(median[called])))
    return float(binomtest(hits, int(called.sum()), 0.5, alternative="greater").pvalue)


def qlike_losses(realized_vol: np.ndarray, predicted_vol: np.ndarray) -> np.ndarray:
    """Per forecast, QLIKE of the variance (zero when it is exact)."""
    realized = np.maximum(realized_vol**2, _VARIANCE_FLOOR)
    predicted = np.maximum(predicted_vol**2, _VARIANCE_FLOOR)
    ratio = realized / predicted
    losses: np.ndarray = ratio - np.log(ratio) - 1
    return losses


def qlike(realized_vol: np.ndarray, predicted_vol: np.ndarray) -> float:
    return float(np.mean(qlike_losses(realized_vol, predicted_vol)))


def diebold_mariano(
    losses: np.ndarray, rival_losses: np.ndarray, dates: pd.Index, lags: int
) -> float:
    """One-sided p-value of the Diebold-Mariano test that ``losses`` are lower on average than
    ``rival_losses`` (the same forecasts' targets, one per row, dated by ``dates``).

    Rows of one date (several instruments) are averaged into one loss difference per date,
    whose long-run variance is Newey-West's with ``lags`` lags (targets spanning h bars overlap:
    use at least h - 1); the statistic gets Harvey, Leybourne and Newbold's small-sample
    correction and is read against Student's t. NaN with fewer than three dates.
    """
    difference = pd.Series(losses - rival_losses, index=dates).groupby(level=0).mean().to_numpy()
    count = len(difference)
    if count < 3:
        return float("nan")
    centred = difference - difference.mean()
    variance = float(centred @ centred) / count
    for lag in range(1, min(lags, count - 1) + 1):
        weight = 1 - lag / (lags + 1)
        variance += 2 * weight * float(centred[lag:] @ centred[:-lag]) / count
    if variance <= 0:
        return 0.0 if difference.mean() < 0 else 1.0
    statistic = difference.mean() / np.sqrt(variance / count)
    horizon = lags + 1
    correction = np.sqrt((count + 1 - 2 * horizon + horizon * (horizon - 1) / count) / count)
    return float(student_t.cdf(statistic * correction, df=count - 1))


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
