"""Out-of-sample scores on walk-forward folds: every forecaster on the same windows.

Each instrument is split on its own history (walk-forward, with an embargo of the longest
target horizon); the forecasts of every fold's test window are pooled and scored together.
Models add their forecasts beside the baselines' in the same table.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from training.baselines import (
    ewma_volatility,
    garch_volatility,
    historical_quantiles,
    random_walk_quantiles,
)
from training.metrics import (
    directional_accuracy,
    information_coefficient,
    interval_coverage,
    mse,
    pinball_loss,
    qlike,
)
from training.splits import walk_forward

__all__ = ["WalkForward", "baseline_forecasts", "score_returns", "score_volatility"]

ReturnForecaster = Callable[[pd.DataFrame, pd.DataFrame], np.ndarray]


@dataclass(frozen=True, slots=True)
class WalkForward:
    folds: int = 4
    test_size: int = 250
    min_train: int = 500
    horizon: int = 1
    vol_horizon: int = 5

    @property
    def embargo(self) -> int:
        return max(self.horizon, self.vol_horizon)


def baseline_forecasts(table: pd.DataFrame, plan: WalkForward) -> pd.DataFrame:
    """Out-of-sample forecasts of every baseline, one row per tested example: the actual
    targets, ``<model>_q10/_q50/_q90`` for returns and ``<model>_vol`` for volatility."""
    pieces = []
    for instrument, rows in table.groupby("instrument", sort=True):
        returns = rows["ret_1"].to_numpy()
        for split in walk_forward(
            len(rows), plan.folds, plan.test_size, plan.embargo, plan.min_train
        ):
            train = rows.iloc[: split.train_end]
            test = rows.iloc[split.test_start : split.test_end]
            window = slice(split.test_start, split.test_end)
            piece = pd.DataFrame(
                {
                    "instrument": instrument,
                    "actual_return": test["target_return"].to_numpy(),
                    "actual_vol": test["target_vol"].to_numpy(),
                },
                index=test.index,
            )
            forecasts = {
                "random_walk": random_walk_quantiles(
                    train["ret_1"].to_numpy(), len(test), plan.horizon
                ),
                "historical": historical_quantiles(train["target_return"].to_numpy(), len(test)),
            }
            for name, quantiles in forecasts.items():
                for column, values in zip(("q10", "q50", "q90"), quantiles.T, strict=True):
                    piece[f"{name}_{column}"] = values
            piece["ewma_vol"] = ewma_volatility(returns, split.train_end, plan.vol_horizon)[window]
            piece["garch_vol"] = garch_volatility(returns, split.train_end, plan.vol_horizon)[
                window
            ]
            pieces.append(piece)
    return pd.concat(pieces).sort_index(kind="stable")


def score_returns(forecasts: pd.DataFrame, model: str) -> dict[str, float]:
    actual = forecasts["actual_return"].to_numpy()
    quantiles = forecasts[[f"{model}_q10", f"{model}_q50", f"{model}_q90"]].to_numpy()
    return {
        "pinball": pinball_loss(actual, quantiles),
        "coverage_80": interval_coverage(actual, quantiles[:, 0], quantiles[:, 2]),
        "direction": directional_accuracy(actual, quantiles[:, 1]),
        "ic": information_coefficient(forecasts, f"{model}_q50", "actual_return"),
    }


def score_volatility(forecasts: pd.DataFrame, model: str) -> dict[str, float]:
    actual = forecasts["actual_vol"].to_numpy()
    predicted = forecasts[f"{model}_vol"].to_numpy()
    return {"qlike": qlike(actual, predicted), "mse": mse(actual, predicted)}
