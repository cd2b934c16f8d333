"""A small Ray Tune search on the session's Ray cluster, every trial tracked in the real MLflow."""

from __future__ import annotations

import uuid
from pathlib import Path

import pandas as pd
from mlflow import MlflowClient

from actors.demo import stock_history
from tests.ray_resources import wait_for_free_cpus
from training.evaluation import Step, WalkForward, fold_rows
from training.features import make_features
from training.search import TARGET_SCORES, SearchSettings, run_search, search_data
from training.trainer import TrainConfig


def _table() -> pd.DataFrame:
    history = stock_history(("IBM",)).head(1_200)
    bars = history.set_index(pd.DatetimeIndex(history["date"], tz="UTC"))
    table = make_features(bars[["open", "high", "low", "close", "volume"]].astype(float))
    return table.assign(instrument="alpaca:IBM")


def test_search_sees_nothing_of_the_test_windows() -> None:
    table = _table()
    plan = WalkForward(folds=2, test_size=150, min_train=400)

    train, valid = search_data(table, plan)

    first_test = fold_rows(table, plan)[0][1]
    assert train.index.max() < valid.index.min()
    assert valid.index.max() < first_test.index.min()


def test_tune_search_runs_trials_tracked_in_mlflow(
    ray_cluster: None, mlflow_url: str, tmp_path: Path
) -> None:
    experiment = f"search-{uuid.uuid4().hex[:8]}"
    settings = SearchSettings(samples=3, max_epochs=3, grace_epochs=1, cpus_per_trial=0.5)
    steps: list[Step] = []
    wait_for_free_cpus(settings.cpus_per_trial)

    outcome = run_search(
        _table(),
        WalkForward(folds=1, test_size=150, min_train=400),
        settings,
        mlflow_url,
        experiment,
        tmp_path,
        steps.append,
    )

    assert outcome.trials == 3
    assert [(step.done, step.total) for step in steps] == [(1, 3), (2, 3), (3, 3)]
    assert all(step.unit.startswith(f"trial {step.done}/3 (") for step in steps)
    assert set(outcome.configs) == {"returns", "volatility"}
    for config in outcome.configs.values():
        assert config.model in {"mlp", "gru"} and 1 <= config.epochs <= 3
    runs = MlflowClient(mlflow_url).search_runs([outcome.experiment_id])
    assert len(runs) == 3
    for run in runs:
        assert {"model", "width", "learning_rate"} <= set(run.data.params)
        assert {"valid_pinball", "valid_qlike", "returns_score", "vol_score"} <= set(
            run.data.metrics
        )
    # The platform's default configuration is among the trials.
    default = TrainConfig()
    assert any(
        run.data.params["model"] == default.model
        and int(run.data.params["width"]) == default.width
        and float(run.data.params["learning_rate"]) == default.learning_rate
        for run in runs
    )
    client = MlflowClient(mlflow_url)
    history = client.get_metric_history(runs[0].info.run_id, "valid_pinball")
    assert [m.step for m in history] == list(range(1, len(history) + 1))
    # Each target's winner is the best epoch of any trial for that target, as MLflow recorded it.
    for target, metric in TARGET_SCORES.items():
        scores = [
            m.value for run in runs for m in client.get_metric_history(run.info.run_id, metric)
        ]
        assert abs(min(scores) - outcome.scores[target]) < 1e-9
