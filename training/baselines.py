"""The classic forecasts every model must beat, fitted on the training window only.

Returns: a driftless random walk (quantiles of a normal with the training volatility) and the
historical quantiles of training returns. Volatility: EWMA (RiskMetrics, lambda 0.94) and
GARCH(1,1) (the ``arch`` package), both of which forecast at t from returns up to t only, with
GARCH's parameters estimated on the training window.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray
from scipy.stats import norm

from training.metrics import QUANTILES

__all__ = ["random_walk_quantiles", "historical_quantiles", "ewma_volatility", "garch_volatility"]

# arch fits best with returns in percent.
_PERCENT = 100.0


def random_walk_quantiles(train_returns: np.ndarray, count: int, horizon: int = 1) -> np.ndarray:
    """(count, len(QUANTILES)): zero median, normal spread scaled to the horizon."""
    scale = float(np.std(train_returns, ddof=1)) * np.sqrt(horizon)
    row = np.array([norm.ppf(q) * scale for q in QUANTILES])
    return np.tile(row, (count, 1))


def historical_quantiles(train_returns: np.ndarray, count: int) -> np.ndarray:
    """(count, len(QUANTILES)): the empirical quantiles of the training returns."""
    row = np.quantile(train_returns, QUANTILES)
    return np.tile(row, (count, 1))


def ewma_volatility(
    returns: np.ndarray, train_end: int, horizon: int, decay: float = 0.94
) -> np.ndarray:
    """Forecast of the next ``horizon`` bars' realized volatility at every bar, from the
    exponentially weighted variance of returns up to that bar; seeded with the variance of
    the training window (``returns[:train_end]``)."""
    variance = np.empty(len(returns))
    current = float(np.var(returns[:train_end], ddof=1))
    for t, value in enumerate(returns):
        current = decay * current + (1 - decay) * value * value
        variance[t] = current
    return np.sqrt(horizon * variance)


def garch_volatility(returns: np.ndarray, train_end: int, horizon: int) -> np.ndarray:
    """Forecast of the next ``horizon`` bars' realized volatility at every bar from
    ``train_end - 1`` on (NaN before), by a zero-mean GARCH(1,1) fitted on
    ``returns[:train_end]``."""
    from arch import arch_model

    model = arch_model(returns * _PERCENT, mean="Zero", vol="GARCH", p=1, q=1, rescale=False)
    fitted = model.fit(last_obs=train_end, disp="off", show_warning=False)
    variance = fitted.forecast(horizon=horizon, start=train_end - 1, reindex=True).variance
    total: NDArray[np.float64] = variance.sum(axis=1, skipna=False).to_numpy()
    return np.sqrt(total) / _PERCENT
