"""Out-of-sample scores on walk-forward folds: every forecaster on the same windows.

Each instrument is split on its own history (walk-forward, with an embargo of the longest
target horizon); the forecasts of every fold's test window are pooled and scored together.
Models add their forecasts beside the baselines' in the same table.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from dataclasses import dataclass

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
from training.splits import Split, walk_forward
from training.trainer import TrainConfig, fit, predict

__all__ = [
    "WalkForward",
    "Step",
    "baseline_forecasts",
    "model_forecasts",
    "all_forecasts",
    "fold_rows",
    "hold_out",
    "score_returns",
    "score_volatility",
    "RETURN_BASELINES",
    "VOL_BASELINES",
    "all_scores",
]


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


@dataclass(frozen=True, slots=True)
class Step:
    """A unit of work of ``all_forecasts`` just finished, and how far along the whole is."""

    done: int
    total: int
    unit: str


def baseline_forecasts(
    table: pd.DataFrame, plan: WalkForward, on_unit: Callable[[str], None] | None = None
) -> pd.DataFrame:
    """Out-of-sample forecasts of every baseline, one row per tested example: the actual
    targets, ``<model>_q10/_q50/_q90`` for returns and ``<model>_vol`` for volatility.
    ``on_unit`` is told of each instrument's fold once its baselines are fitted."""
    pieces = []
    for instrument, rows in table.groupby("instrument", sort=True):
        returns = rows["ret_1"].to_numpy()
        splits = walk_forward(len(rows), plan.folds, plan.test_size, plan.embargo, plan.min_train)
        for fold, split in enumerate(splits, start=1):
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
            if on_unit is not None:
                on_unit(f"{instrument} fold {fold}/{len(splits)}: baselines")
    return pd.concat(pieces).sort_index(kind="stable")


def fold_rows(table: pd.DataFrame, plan: WalkForward) -> list[tuple[pd.DataFrame, pd.DataFrame]]:
    """Per fold, (training rows, test rows) pooled across instruments, each instrument split on
    its own history exactly as for the baselines."""
    per_instrument: list[tuple[pd.DataFrame, list[Split]]] = [
        (rows, walk_forward(len(rows), plan.folds, plan.test_size, plan.embargo, plan.min_train))
        for _, rows in table.groupby("instrument", sort=True)
    ]
    folds = []
    for fold in range(plan.folds):
        train = [rows.iloc[: splits[fold].train_end] for rows, splits in per_instrument]
        test = [
            rows.iloc[splits[fold].test_start : splits[fold].test_end]
            for rows, splits in per_instrument
        ]
        folds.append((pd.concat(train).sort_index(kind="stable"), pd.concat(test)))
    return folds


def model_forecasts(
    table: pd.DataFrame,
    plan: WalkForward,
    configs: dict[str, TrainConfig],
    on_unit: Callable[[str], None] | None = None,
) -> pd.DataFrame:
    """Out-of-sample forecasts of each model (trained afresh on every fold's pooled training
    rows), as ``<name>_q10/_q50/_q90`` and ``<name>_vol`` columns keyed like the baselines'.
    ``on_unit`` is told of each model once it is trained and has forecast a fold."""
    pieces = []
    for fold, (train, test) in enumerate(fold_rows(table, plan), start=1):
        fit_rows, valid_rows = hold_out(train, plan.embargo)
        piece = pd.DataFrame({"instrument": test["instrument"].to_numpy()}, index=test.index)
        for name, config in configs.items():
            quantiles, vol = predict(fit(fit_rows, valid_rows, config), test)
            for column, values in zip(("q10", "q50", "q90"), quantiles.T, strict=True):
                piece[f"{name}_{column}"] = values
            piece[f"{name}_vol"] = vol
            if on_unit is not None:
                on_unit(f"fold {fold}/{plan.folds}: {name}")
        pieces.append(piece)
    return pd.concat(pieces)


def all_forecasts(
    table: pd.DataFrame,
    plan: WalkForward,
    configs: dict[str, TrainConfig],
    progress: Callable[[Step], None] | None = None,
) -> pd.DataFrame:
    """Baselines' and models' forecasts side by side, one row per tested example; ``progress``
    hears of every instrument's fold of baselines and every fold of each model as it is done."""
    total = plan.folds * (table["instrument"].nunique() + len(configs))
    done = itertools.count(1)

    def on_unit(unit: str) -> None:
        if progress is not None:
            progress(Step(next(done), total, unit))

    baselines = baseline_forecasts(table, plan, on_unit)
    if not configs:
        return baselines
    models = model_forecasts(table, plan, configs, on_unit)
    keyed = baselines.set_index("instrument", append=True)
    joined = keyed.join(models.set_index("instrument", append=True), how="inner")
    return joined.reset_index(level="instrument")


def hold_out(train: pd.DataFrame, embargo: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The last tenth of the training dates as validation (per-epoch scores), with an embargo
    of ``embargo`` dates before it."""
    dates = train.index.unique().sort_values()
    cut = int(len(dates) * 0.9)
    return train[train.index < dates[max(cut - embargo, 1)]], train[train.index >= dates[cut]]


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


# The baselines every model is judged against, by target.
RETURN_BASELINES = ("random_walk", "historical")
VOL_BASELINES = ("ewma", "garch")


def all_scores(forecasts: pd.DataFrame, models: Sequence[str]) -> dict[str, dict[str, float]]:
    """Forecaster -> metric -> score, baselines first; volatility forecasters as ``<name>_vol``
    (the keys a retrain run and an evaluation run log to MLflow)."""
    returns = {name: score_returns(forecasts, name) for name in (*RETURN_BASELINES, *models)}
    volatility = {
        f"{name}_vol": score_volatility(forecasts, name) for name in (*VOL_BASELINES, *models)
    }
    return returns | volatility
