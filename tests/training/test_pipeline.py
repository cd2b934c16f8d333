"""A whole retraining on the bundled history: a small Tune search on the session's Ray cluster,
the winner judged on the walk-forward folds, logged and gated in the real MLflow server."""

from __future__ import annotations

import uuid
from pathlib import Path

import mlflow
import pandas as pd
from mlflow import MlflowClient

from actors.demo import stock_history
from tests.ray_resources import wait_for_free_cpus
from training.evaluation import Step, WalkForward
from training.features import FEATURES, make_features
from training.pipeline import retrain
from training.search import SearchSettings


def _table() -> pd.DataFrame:
    history = stock_history(("MSFT",)).head(1_100)
    bars = history.set_index(pd.DatetimeIndex(history["date"], tz="UTC"))
    table = make_features(bars[["open", "high", "low", "close", "volume"]].astype(float))
    return table.assign(instrument="alpaca:MSFT")


def test_retraining_logs_the_winner_and_gates_both_targets(
    ray_cluster: None, mlflow_url: str, tmp_path: Path
) -> None:
    table = _table()
    search = SearchSettings(samples=2, max_epochs=2, grace_epochs=1, cpus_per_trial=0.5)
    wait_for_free_cpus(search.cpus_per_trial)
    steps: list[Step] = []

    result = retrain(
        table,
        "1d",
        WalkForward(folds=1, test_size=150, min_train=400),
        search,
        mlflow_url,
        f"retrain-{uuid.uuid4().hex[:8]}",
        tmp_path,
        steps.append,
    )

    client = MlflowClient(mlflow_url)
    # One run per distinct winner: the returns winner's, then the volatility winner's if another.
    assert 1 <= len(result.run_ids) <= 2
    targets = []
    for run_id in result.run_ids:
        run = client.get_run(run_id)
        assert {
            "model.pinball",
            "model.dm_p",
            "model.coverage_80_fold1",
            "garch_t.pinball",
            "model_vol.qlike",
            "model_vol.dm_p",
            "har_vol.qlike",
        } <= set(run.data.metrics)
        assert {"model", "width", "epochs", "members"} <= set(run.data.params)
        targets += run.data.params["targets"].split(",")
        plots = {artifact.path for artifact in client.list_artifacts(run_id, "plots")}
        assert plots == {"plots/calibration.png", "plots/forecast_model_alpaca-MSFT.png"}
    assert targets == ["returns", "volatility"]
    # Progress is told of every phase in order, up to the last gate.
    phases = [step.phase for step in steps]
    assert phases == sorted(phases, key=["search", "walk-forward", "final"].index)
    assert steps[-1].phase == "final" and steps[-1].done == steps[-1].total
    assert steps[-1].unit == "gate of finone-volatility"
    assert [d.name for d in result.decisions] == ["finone-returns", "finone-volatility"]
    for decision, run_id in zip(
        result.decisions, (result.run_ids[0], result.run_ids[-1]), strict=True
    ):
        assert decision.alias in {"champion", "challenger"}
        version = client.get_model_version_by_alias(decision.name, decision.alias)
        assert version.version == decision.version
        assert version.tags["promotion"] == decision.reason
        assert version.run_id == run_id
    # Whatever the gate decided, the registered model serves forecasts.
    uri = f"models:/finone-returns/{result.decisions[0].version}"
    mlflow.set_tracking_uri(mlflow_url)
    served = mlflow.pyfunc.load_model(uri).predict(table.iloc[-30:][[*FEATURES, "instrument"]])
    assert list(served.columns) == ["q10", "q50", "q90", "vol"] and len(served) == 30
