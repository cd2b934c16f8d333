"""Forecasters in the real MLflow server: logged with their preprocessing, served back by
pyfunc, and promoted to champion only when they beat the champion and every baseline."""

from __future__ import annotations

import json
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow import MlflowClient

from actors.demo import stock_history
from core.model_signing import SIGNATURE_TAG, artifacts_digest, signing_key, verifies
from training.features import FEATURES, make_features
from training.registry import (
    ForecastSpec,
    download_version,
    forecast_frame,
    log_forecaster,
    register_and_gate,
)
from training.trainer import NO_CALIBRATION, TrainConfig, fit


@pytest.fixture
def client(mlflow_url: str) -> Iterator[MlflowClient]:
    mlflow.set_tracking_uri(mlflow_url)
    mlflow.set_experiment(f"test-{uuid.uuid4().hex[:8]}")
    yield MlflowClient(mlflow_url)


KEY = signing_key("test-registry-secret")
SPEC = ForecastSpec(interval="1d", horizon=1, vol_horizon=5, instruments=("alpaca:MSFT",))


def _table() -> pd.DataFrame:
    history = stock_history(("MSFT",))
    bars = history.set_index(pd.DatetimeIndex(history["date"], tz="UTC"))
    table = make_features(bars[["open", "high", "low", "close", "volume"]].astype(float))
    return table.assign(instrument="alpaca:MSFT")


def test_logged_forecaster_predicts_exactly_as_trained(client: MlflowClient) -> None:
    table = _table()
    config = TrainConfig(epochs=1, width=8, depth=1, members=2)
    fitted = fit(table.iloc[:800], table.iloc[805:905], config)
    assert fitted.calibration != NO_CALIBRATION

    with mlflow.start_run():
        uri = log_forecaster(fitted, SPEC, table.iloc[805:905])
    served = mlflow.pyfunc.load_model(uri).predict(table.iloc[905:955][[*FEATURES, "instrument"]])

    expected = forecast_frame(fitted, table.iloc[905:955])
    np.testing.assert_allclose(served.to_numpy(), expected.to_numpy(), rtol=1e-6)
    assert list(served.columns) == ["q10", "q50", "q90", "vol"]


def test_a_forecaster_trained_on_other_features_is_refused_at_load(
    client: MlflowClient, tmp_path: Path
) -> None:
    table = _table()
    fitted = fit(table.iloc[:500], table.iloc[505:605], TrainConfig(epochs=1, width=8, depth=1))
    with mlflow.start_run():
        uri = log_forecaster(fitted, SPEC, table.iloc[505:605])
    root = Path(mlflow.artifacts.download_artifacts(uri, dst_path=str(tmp_path)))
    [meta] = root.rglob("meta.json")
    older = json.loads(meta.read_text())
    older["features"] = older["features"][:9]
    meta.write_text(json.dumps(older))

    with pytest.raises(TypeError, match="trained on the features .*: retrain it"):
        mlflow.pyfunc.load_model(str(root))


def test_champion_moves_only_when_champion_and_baselines_are_beaten(client: MlflowClient) -> None:
    table = _table()
    fitted = fit(table.iloc[:500], table.iloc[505:605], TrainConfig(epochs=1, width=8, depth=1))
    with mlflow.start_run():
        uri = log_forecaster(fitted, SPEC, table.iloc[505:605])
    name = f"test-returns-{uuid.uuid4().hex[:8]}"
    baselines = {"historical": 0.0040, "random_walk": 0.0042}

    def gate(score: float, p_value: float = 0.01) -> tuple[str, str]:
        decision = register_and_gate(client, uri, name, "pinball", score, baselines, p_value, KEY)
        return decision.alias, decision.reason

    loses_to_baseline = gate(0.0041)
    by_chance = gate(0.0039, p_value=0.2)
    first = gate(0.0039)
    worse = gate(0.00395)
    better = gate(0.0038)

    assert loses_to_baseline[0] == "challenger" and "historical" in loses_to_baseline[1]
    assert by_chance == (
        "challenger",
        "pinball 0.0039 beats every baseline but not significantly: best baseline historical "
        "(0.004), Diebold-Mariano p 0.2 (needs < 0.05)",
    )
    assert first == (
        "champion",
        "pinball 0.0039 beats every baseline, the best (historical, 0.004) with "
        "Diebold-Mariano p 0.01",
    )
    assert worse == ("challenger", "pinball 0.00395 does not beat champion v3 (0.0039)")
    assert better[0] == "champion"
    assert client.get_model_version_by_alias(name, "champion").version == "5"
    assert client.get_model_version_by_alias(name, "challenger").version == "4"
    tags = client.get_model_version(name, "4").tags
    assert tags["promotion"] == "pinball 0.00395 does not beat champion v3 (0.0039)"
    # Every version the gate registered is signed over the artifacts inference will download.
    with tempfile.TemporaryDirectory() as tmp:
        root = download_version(client, name, "4", Path(tmp))
        assert (root / "MLmodel").exists()
        assert verifies(KEY, artifacts_digest(root), tags[SIGNATURE_TAG])


def test_a_champion_set_by_hand_is_replaced_by_a_version_that_beats_the_baselines(
    client: MlflowClient,
) -> None:
    table = _table()
    fitted = fit(table.iloc[:500], table.iloc[505:605], TrainConfig(epochs=1, width=8, depth=1))
    with mlflow.start_run():
        uri = log_forecaster(fitted, SPEC, table.iloc[505:605])
    name = f"test-returns-{uuid.uuid4().hex[:8]}"
    by_hand = mlflow.register_model(uri, name).version
    client.set_registered_model_alias(name, "champion", by_hand)

    decision = register_and_gate(
        client, uri, name, "pinball", 0.0039, {"historical": 0.0040}, 0.01, KEY
    )

    assert decision.alias == "champion"
    assert decision.reason == (
        "pinball 0.0039 beats every baseline, the best (historical, 0.004) with Diebold-Mariano "
        f"p 0.01; champion v{by_hand} has no held-out score to compare (set by hand?)"
    )
