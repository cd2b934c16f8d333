"""The classic forecasts every model must beat, fitted on the training window only.

Returns (quantiles of the next ``horizon`` bars' log return): a driftless random walk (a normal
with the training volatility), the historical quantiles of training returns, GARCH(1,1) with
Student-t innovations (its conditional quantiles) and filtered historical simulation (a
GARCH(1,1)'s conditional volatility times the empirical quantiles of its standardized training
residuals). Volatility (of the next ``vol_horizon`` bars): EWMA (RiskMetrics, lambda 0.94),
GARCH(1,1), GJR-GARCH(1,1,1) with Student-t innovations, and HAR (Corsi) on the one-bar
Parkinson range variance's 1, 5 and 22 bar averages.

Every model forecasts at bar t from data up to t only; parameters are estimated on the training
window (``[:train_end]``), and the ``arch`` package fits the GARCH family.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray
from scipy.stats import norm

from training.metrics import QUANTILES

__all__ = [
    "random_walk_quantiles",
    "historical_quantiles",
    "garch_t_quantiles",
    "filtered_historical_quantiles",
    "ewma_volatility",
    "garch_volatility",
    "gjr_garch_t_volatility",
    "har_volatility",
    "HAR_COMPONENTS",
]

# arch fits best with returns in percent.
_PERCENT = 100.0
# The HAR regressors' logs (training.features): range variance averaged over a bar, a week and
# a month of bars.
HAR_COMPONENTS = ("log_range_var_1", "log_range_var_5", "log_range_var_22")


def random_walk_quantiles(train_returns: np.ndarray, count: int, horizon: int = 1) -> np.ndarray:
    """(count, len(QUANTILES)): zero median, normal spread scaled to the horizon."""
    scale = float(np.std(train_returns, ddof=1)) * np.sqrt(horizon)
    row = np.array([norm.ppf(q) * scale for q in QUANTILES])
    return np.tile(row, (count, 1))


def historical_quantiles(train_returns: np.ndarray, count: int) -> np.ndarray:
    """(count, len(QUANTILES)): the empirical quantiles of the training returns."""
    row = np.quantile(train_returns, QUANTILES)
    return np.tile(row, (count, 1))


def _fit(
    returns: np.ndarray,
    train_end: int,
    mean: Literal["Zero", "Constant"],
    asymmetry: int,
    dist: Literal["normal", "t"],
) -> Any:
    from arch import arch_model

    model = arch_model(
        returns * _PERCENT, mean=mean, vol="GARCH", p=1, o=asymmetry, q=1, dist=dist, rescale=False
    )
    return model.fit(last_obs=train_end, disp="off", show_warning=False)


def _mean_and_scale(fitted: Any, train_end: int, horizon: int) -> tuple[np.ndarray, np.ndarray]:
    """Per bar from ``train_end - 1`` on (NaN before): the forecast mean and standard deviation
    of the sum of the next ``horizon`` returns, in return units."""
    forecast = fitted.forecast(horizon=horizon, start=train_end - 1, reindex=True)
    mean = forecast.mean.sum(axis=1, skipna=False).to_numpy()
    variance = forecast.variance.sum(axis=1, skipna=False).to_numpy()
    return mean / _PERCENT, np.sqrt(variance) / _PERCENT


def garch_t_quantiles(returns: np.ndarray, train_end: int, horizon: int = 1) -> np.ndarray:
    """(len(returns), len(QUANTILES)), NaN before ``train_end - 1``: the conditional quantiles
    of a constant-mean GARCH(1,1) with standardized Student-t innovations."""
    fitted = _fit(returns, train_end, "Constant", 0, "t")
    mean, scale = _mean_and_scale(fitted, train_end, horizon)
    shape = fitted.params[["nu"]].to_numpy()
    standard = np.array([fitted.model.distribution.ppf(q, shape) for q in QUANTILES])
    quantiles: NDArray[np.float64] = mean[:, None] + scale[:, None] * standard[None, :]
    return quantiles


def filtered_historical_quantiles(
    returns: np.ndarray, train_end: int, horizon: int = 1
) -> np.ndarray:
    """As ``garch_t_quantiles`` from a Gaussian (quasi-likelihood) GARCH(1,1), whose
    standardized training residuals' empirical quantiles replace a distribution's."""
    fitted = _fit(returns, train_end, "Constant", 0, "normal")
    mean, scale = _mean_and_scale(fitted, train_end, horizon)
    residuals = fitted.std_resid[:train_end]
    standard = np.quantile(residuals[np.isfinite(residuals)], QUANTILES)
    quantiles: NDArray[np.float64] = mean[:, None] + scale[:, None] * standard[None, :]
    return quantiles


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
    _, scale = _mean_and_scale(_fit(returns, train_end, "Zero", 0, "normal"), train_end, horizon)
    return scale


def gjr_garch_t_volatility(returns: np.ndarray, train_end: int, horizon: int) -> np.ndarray:
    """As ``garch_volatility`` from a GJR-GARCH(1,1,1) with Student-t innovations: bad news
    raises the next bar's variance more than good news of the same size (leverage)."""
    _, scale = _mean_and_scale(_fit(returns, train_end, "Zero", 1, "t"), train_end, horizon)
    return scale


def har_volatility(components: np.ndarray, target_vol: np.ndarray, train_end: int) -> np.ndarray:
    """Forecast of the target's realized volatility at every bar: the realized variance
    (``target_vol`` squared, which spans the forecast horizon) regressed by least squares on
    the range variances ``components`` (rows, 3; see HAR_COMPONENTS) over the training rows.
    A forecast below the smallest training variance is raised to it (least squares can go
    negative)."""
    design = np.column_stack([np.ones(len(components)), components])
    realized = target_vol**2
    coefficients, *_ = np.linalg.lstsq(design[:train_end], realized[:train_end], rcond=None)
    floor = float(np.min(realized[:train_end][realized[:train_end] > 0], initial=np.inf))
    variance = np.maximum(design @ coefficients, floor if np.isfinite(floor) else 0.0)
    forecast: NDArray[np.float64] = np.sqrt(variance)
    return forecast
