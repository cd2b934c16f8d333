"""Ray Tune search over the forecasters' hyperparameters, every trial tracked in MLflow.

The search sees only the history before the first walk-forward test window (its last tenth,
after an embargo, scores the trials), so the folds that later judge the winner stay unseen.
Trials report after every epoch with a checkpoint; ASHA stops unpromising ones early. Each target
has its own score, the validation loss relative to a baseline's on the same rows (pinball loss
against historical quantiles, QLIKE against EWMA), and its own winner: the best epoch of any
trial for that target. ASHA keeps a trial while it is promising for either target (it ranks
trials by the better of the two). The platform's default configuration is always tried first.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import mlflow
import pandas as pd
import torch
from ray import tune
from ray.tune.schedulers import ASHAScheduler
from ray.tune.search.basic_variant import BasicVariantGenerator

from training.baselines import ewma_volatility, historical_quantiles
from training.evaluation import Step, WalkForward, fold_rows, hold_out
from training.metrics import pinball_loss, qlike
from training.trainer import TrainConfig, train_epochs

__all__ = [
    "SEARCH_SPACE",
    "TARGET_SCORES",
    "SearchSettings",
    "SearchOutcome",
    "search_data",
    "run_search",
]

SEARCH_SPACE: dict[str, Any] = {
    "model": tune.choice(["mlp", "gru"]),
    "width": tune.choice([16, 32, 64]),
    "depth": tune.choice([1, 2]),
    "dropout": tune.uniform(0.0, 0.3),
    "learning_rate": tune.loguniform(1e-4, 3e-3),
    "vol_weight": tune.uniform(0.5, 2.0),
}


# Per target, the score its winner is chosen by (lower is better).
TARGET_SCORES = {"returns": "returns_score", "volatility": "vol_score"}


# TrainConfig's defaults, the configuration `finone evaluate` scores.
_DEFAULT_POINT = {name: getattr(TrainConfig(), name) for name in SEARCH_SPACE}


@dataclass(frozen=True, slots=True)
class SearchSettings:
    samples: int = 8
    max_epochs: int = 15
    grace_epochs: int = 3
    # One core per trial: two trials at once on a 2-core machine, many on a cluster.
    cpus_per_trial: float = 1.0
    seed: int = 0
    # Networks per winner, from as many seeds, averaged (trials train one each).
    members: int = 1


@dataclass(frozen=True, slots=True)
class SearchOutcome:
    """Per target ("returns", "volatility"): the winning configuration, with the epochs it
    ran, and its score."""

    configs: dict[str, TrainConfig]
    scores: dict[str, float]
    trials: int
    experiment_id: str


def search_data(table: pd.DataFrame, plan: WalkForward) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(training rows, validation rows) from before the first walk-forward test window."""
    first_fold_train, _ = fold_rows(table, plan)[0]
    return hold_out(first_fold_train, plan.embargo)


def _baseline_scores(
    train: pd.DataFrame, valid: pd.DataFrame, plan: WalkForward
) -> dict[str, float]:
    quantiles = historical_quantiles(train["target_return"].to_numpy(), len(valid))
    rows = pd.concat([train, valid])
    vol = ewma_volatility(rows["ret_1"].to_numpy(), len(train), plan.vol_horizon)[len(train) :]
    return {
        "pinball": pinball_loss(valid["target_return"].to_numpy(), quantiles),
        "qlike": qlike(valid["target_vol"].to_numpy(), vol),
    }


def _trial(
    config: dict[str, Any],
    train: pd.DataFrame,
    valid: pd.DataFrame,
    baselines: dict[str, float],
    settings: SearchSettings,
    tracking_uri: str,
    experiment_id: str,
) -> None:
    torch.set_num_threads(max(1, int(settings.cpus_per_trial)))
    train_config = TrainConfig(**config, epochs=settings.max_epochs, seed=settings.seed)
    mlflow.set_tracking_uri(tracking_uri)
    context = tune.get_context()
    with mlflow.start_run(experiment_id=experiment_id, run_name=context.get_trial_name()):
        mlflow.log_params({**config, "max_epochs": settings.max_epochs})
        mlflow.log_metrics({f"baseline_{k}": v for k, v in baselines.items()})
        for fitted in train_epochs(train, valid, train_config):
            epoch = fitted.history[-1]
            scores = {
                "returns_score": epoch["valid_pinball"] / baselines["pinball"],
                "vol_score": epoch["valid_qlike"] / baselines["qlike"],
            }
            scores["score"] = min(scores.values())
            mlflow.log_metrics({**epoch, **scores}, step=int(epoch["epoch"]))
            with tempfile.TemporaryDirectory() as directory:
                torch.save(fitted.model.state_dict(), Path(directory) / "model.pt")
                (Path(directory) / "config.json").write_text(json.dumps(config))
                tune.report(
                    {**epoch, **scores},
                    checkpoint=tune.Checkpoint.from_directory(directory),
                )


class _TrialsEnded(tune.Callback):
    def __init__(self, total: int, progress: Callable[[Step], None] | None) -> None:
        self._total = total
        self._ended = 0
        self._progress = progress

    def __getstate__(self) -> dict[str, Any]:
        # Tune checkpoints its callbacks with the experiment; a live display stays behind.
        return {"_total": self._total, "_ended": self._ended, "_progress": None}

    def on_trial_complete(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
        self._ended += 1
        if self._progress is None:
            return
        epochs = (trial.last_result or {}).get("epoch", 0)
        unit = f"trial {self._ended}/{self._total} ({trial.config['model']}, {epochs:.0f} epochs)"
        self._progress(Step("search", self._ended, self._total, unit))


def run_search(
    table: pd.DataFrame,
    plan: WalkForward,
    settings: SearchSettings,
    tracking_uri: str,
    experiment: str,
    storage: Path,
    progress: Callable[[Step], None] | None = None,
) -> SearchOutcome:
    """Search on the connected Ray cluster; each target's best configuration, with the epochs
    it ran. ``progress`` hears of every trial as it ends (finished or stopped early)."""
    train, valid = search_data(table, plan)
    baselines = _baseline_scores(train, valid, plan)
    mlflow.set_tracking_uri(tracking_uri)
    experiment_id = mlflow.set_experiment(experiment).experiment_id
    trainable = tune.with_resources(
        tune.with_parameters(
            _trial,
            train=train,
            valid=valid,
            baselines=baselines,
            settings=settings,
            tracking_uri=tracking_uri,
            experiment_id=experiment_id,
        ),
        {"cpu": settings.cpus_per_trial},
    )
    tuner = tune.Tuner(
        trainable,
        param_space=SEARCH_SPACE,
        tune_config=tune.TuneConfig(
            metric="score",
            mode="min",
            num_samples=settings.samples,
            scheduler=ASHAScheduler(
                max_t=settings.max_epochs,
                grace_period=min(settings.grace_epochs, settings.max_epochs),
            ),
            search_alg=BasicVariantGenerator(
                points_to_evaluate=[_DEFAULT_POINT], random_state=settings.seed
            ),
        ),
        run_config=tune.RunConfig(
            storage_path=str(storage),
            name=experiment,
            verbose=0,
            callbacks=[] if progress is None else [_TrialsEnded(settings.samples, progress)],
        ),
    )
    results = tuner.fit()
    configs, scores = {}, {}
    for target, metric in TARGET_SCORES.items():
        best = results.get_best_result(metric=metric, mode="min", scope="all")
        history, chosen = best.metrics_dataframe, best.config
        if history is None or chosen is None:
            raise RuntimeError(f"the best trial of {experiment} holds no reports or no config")
        # The best epoch of the best trial (a trial's last report need not be its best).
        best_epoch = history.loc[history[metric].idxmin()]
        configs[target] = TrainConfig(
            **{k: chosen[k] for k in SEARCH_SPACE},
            epochs=int(best_epoch["epoch"]),
            seed=settings.seed,
            members=settings.members,
        )
        scores[target] = float(best_epoch[metric])
    return SearchOutcome(
        configs=configs, scores=scores, trials=len(results), experiment_id=experiment_id
    )
