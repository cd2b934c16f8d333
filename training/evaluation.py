"""Out-of-sample scores on walk-forward folds: every forecaster on the same windows.

Each instrument is split on its own history (walk-forward, with an embargo of the longest
target horizon); the forecasts of every fold's test window are pooled and scored together.
Models add their forecasts beside the baselines' in the same table.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd

from training.baselines import (
    HAR_COMPONENTS,
    ewma_volatility,
    filtered_historical_quantiles,
    garch_t_quantiles,
    garch_volatility,
    gjr_garch_t_volatility,
    har_volatility,
    historical_quantiles,
    random_walk_quantiles,
)
from training.metrics import (
    diebold_mariano,
    direction_p_value,
    directional_accuracy,
    information_coefficient,
    interval_coverage,
    mse,
    pinball_loss,
    pinball_losses,
    qlike,
    qlike_losses,
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
    "best_baselines",
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
    """A unit of a retraining's or an evaluation's work just finished, and how far along its
    phase is: ``done`` of ``total`` trials of the search, of the walk-forward's units (an
    instrument's fold of baselines, a fold of one model), or of a retraining's final units (a
    winner trained on all the history and logged, a target gated)."""

    phase: Literal["search", "walk-forward", "final"]
    done: int
    total: int
    unit: str


def baseline_forecasts(
    table: pd.DataFrame, plan: WalkForward, on_unit: Callable[[str], None] | None = None
) -> pd.DataFrame:
    """Out-of-sample forecasts of every baseline, one row per tested example: the actual
    targets, the walk-forward ``fold`` (from 1), ``<model>_q10/_q50/_q90`` for returns and
    ``<model>_vol`` for volatility.
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
                    "fold": fold,
                    "actual_return": test["target_return"].to_numpy(),
                    "actual_vol": test["target_vol"].to_numpy(),
                },
                index=test.index,
            )
            quantile_forecasts = {
                "random_walk": random_walk_quantiles(
                    train["ret_1"].to_numpy(), len(test), plan.horizon
                ),
                "historical": historical_quantiles(train["target_return"].to_numpy(), len(test)),
                "garch_t": garch_t_quantiles(returns, split.train_end, plan.horizon)[window],
                "fhs": filtered_historical_quantiles(returns, split.train_end, plan.horizon)[
                    window
                ],
            }
            for name, quantiles in quantile_forecasts.items():
                for column, values in zip(("q10", "q50", "q90"), quantiles.T, strict=True):
                    piece[f"{name}_{column}"] = values
            vol_forecasts = {
                "ewma": ewma_volatility(returns, split.train_end, plan.vol_horizon),
                "garch": garch_volatility(returns, split.train_end, plan.vol_horizon),
                "gjr_garch_t": gjr_garch_t_volatility(returns, split.train_end, plan.vol_horizon),
                "har": har_volatility(
                    np.exp(rows[list(HAR_COMPONENTS)].to_numpy()),
                    rows["target_vol"].to_numpy(),
                    split.train_end,
                ),
            }
            for name, vol in vol_forecasts.items():
                piece[f"{name}_vol"] = vol[window]
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
            progress(Step("walk-forward", next(done), total, unit))

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


def _quantiles(forecasts: pd.DataFrame, model: str) -> np.ndarray:
    columns: np.ndarray = forecasts[[f"{model}_q10", f"{model}_q50", f"{model}_q90"]].to_numpy()
    return columns


def score_returns(forecasts: pd.DataFrame, model: str) -> dict[str, float]:
    """Pinball loss, 80% coverage (overall and ``coverage_80_fold<k>`` per walk-forward fold),
    direction (with ``direction_p``, the chance of calling as many by luck) and IC of
    ``model``'s return quantiles."""
    actual = forecasts["actual_return"].to_numpy()
    quantiles = _quantiles(forecasts, model)
    inside = (actual >= quantiles[:, 0]) & (actual <= quantiles[:, 2])
    per_fold = pd.Series(inside, index=forecasts["fold"].to_numpy()).groupby(level=0).mean()
    return {
        "pinball": pinball_loss(actual, quantiles),
        "coverage_80": interval_coverage(actual, quantiles[:, 0], quantiles[:, 2]),
        **{f"coverage_80_fold{fold}": float(share) for fold, share in per_fold.items()},
        "direction": directional_accuracy(actual, quantiles[:, 1]),
        "direction_p": direction_p_value(actual, quantiles[:, 1]),
        "ic": information_coefficient(forecasts, f"{model}_q50", "actual_return"),
    }


def score_volatility(forecasts: pd.DataFrame, model: str) -> dict[str, float]:
    actual = forecasts["actual_vol"].to_numpy()
    predicted = forecasts[f"{model}_vol"].to_numpy()
    return {"qlike": qlike(actual, predicted), "mse": mse(actual, predicted)}


# The baselines every model is judged against, by target.
RETURN_BASELINES = ("random_walk", "historical", "garch_t", "fhs")
VOL_BASELINES = ("ewma", "garch", "gjr_garch_t", "har")


def best_baselines(scores: Mapping[str, Mapping[str, float]]) -> tuple[str, str]:
    """(the returns baseline with the lowest pinball loss, the volatility baseline with the
    lowest QLIKE) of ``all_scores``'s scores."""
    returns = min(RETURN_BASELINES, key=lambda name: scores[name]["pinball"])
    volatility = min(VOL_BASELINES, key=lambda name: scores[f"{name}_vol"]["qlike"])
    return returns, volatility


def all_scores(
    forecasts: pd.DataFrame, models: Sequence[str], plan: WalkForward
) -> dict[str, dict[str, float]]:
    """Forecaster -> metric -> score, baselines first; volatility forecasters as ``<name>_vol``
    (the keys a retrain run and an evaluation run log to MLflow). Each model also has ``dm_p``
    per target: the Diebold-Mariano p-value that its loss is below the best baseline's."""
    scores = {name: score_returns(forecasts, name) for name in (*RETURN_BASELINES, *models)}
    scores |= {
        f"{name}_vol": score_volatility(forecasts, name) for name in (*VOL_BASELINES, *models)
    }
    best_returns, best_vol = best_baselines(scores)
    dates, actual = forecasts.index, forecasts["actual_return"].to_numpy()
    realized = forecasts["actual_vol"].to_numpy()
    rival_returns = pinball_losses(actual, _quantiles(forecasts, best_returns))
    rival_vol = qlike_losses(realized, forecasts[f"{best_vol}_vol"].to_numpy())
    for model in models:
        scores[model]["dm_p"] = diebold_mariano(
            pinball_losses(actual, _quantiles(forecasts, model)),
            rival_returns,
            dates,
            plan.horizon - 1,
        )
        scores[f"{model}_vol"]["dm_p"] = diebold_mariano(
            qlike_losses(realized, forecasts[f"{model}_vol"].to_numpy()),
            rival_vol,
            dates,
            plan.vol_horizon - 1,
        )
    return scores
