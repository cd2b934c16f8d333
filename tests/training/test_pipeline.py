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
from training.evaluation import WalkForward
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

    result = retrain(
        table,
        "1d",
        WalkForward(folds=1, test_size=150, min_train=400),
        search,
        mlflow_url,
        f"retrain-{uuid.uuid4().hex[:8]}",
        tmp_path,
    )

    client = MlflowClient(mlflow_url)
    run = client.get_run(result.run_id)
    assert {"model.pinball", "historical.pinball", "model_vol.qlike", "garch_vol.qlike"} <= set(
        run.data.metrics
    )
    assert {"model", "width", "epochs"} <= set(run.data.params)
    plots = {artifact.path for artifact in client.list_artifacts(result.run_id, "plots")}
    assert plots == {"plots/calibration.png", "plots/forecast_model_alpaca-MSFT.png"}
    assert [d.name for d in result.decisions] == ["finone-returns", "finone-volatility"]
    for decision in result.decisions:
        assert decision.alias in {"champion", "challenger"}
        version = client.get_model_version_by_alias(decision.name, decision.alias)
        assert version.version == decision.version
        assert version.tags["promotion"] == decision.reason
    # Whatever the gate decided, the registered model serves forecasts.
    uri = f"models:/finone-returns/{result.decisions[0].version}"
    mlflow.set_tracking_uri(mlflow_url)
    served = mlflow.pyfunc.load_model(uri).predict(table.iloc[-30:][[*FEATURES, "instrument"]])
    assert list(served.columns) == ["q10", "q50", "q90", "vol"] and len(served) == 30
