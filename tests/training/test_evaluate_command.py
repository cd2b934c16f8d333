"""`finone evaluate` as a user runs it: the tables printed, and one run kept in the real MLflow
server with the parameters, every score, the tables and the plots."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

from mlflow import MlflowClient

from cluster.sample_data import load_sample_bars
from tests.finone_cli import finone_env, run_finone
from training.evaluation import RETURN_BASELINES, VOL_BASELINES


def test_evaluate_command_prints_the_tables_and_logs_the_run(
    database_url: str, mlflow_url: str, tmp_path: Path
) -> None:
    asyncio.run(load_sample_bars(database_url, ("IBM",)))
    env = finone_env(tmp_path, DATABASE_URL=database_url, MLFLOW_TRACKING_URI=mlflow_url)

    result = run_finone(
        "evaluate",
        "--instrument",
        "alpaca:IBM",
        "--models",
        "mlp",
        "--epochs",
        "1",
        "--folds",
        "1",
        "--test-size",
        "100",
        env=env,
        timeout=300,
    )

    assert result.returncode == 0, result.stderr[-3000:]
    assert "100 forecasts" in result.stdout
    for forecaster in (*RETURN_BASELINES, *VOL_BASELINES, "mlp"):
        assert forecaster in result.stdout
    assert "1/1: mlp done" in result.stderr  # the progress bar's last step
    found = re.search(r"^MLflow run (\w+) at (\S+)$", result.stdout, re.MULTILINE)
    assert found is not None, result.stdout
    assert found.group(2) == mlflow_url

    client = MlflowClient(mlflow_url)
    run = client.get_run(found.group(1))
    assert client.get_experiment(run.info.experiment_id).name == "finone-evaluations"
    assert run.data.params == {
        "instruments": "alpaca:IBM",
        "interval": "1d",
        "folds": "1",
        "test_size": "100",
        "models": "mlp",
        "epochs": "1",
    }
    metrics = run.data.metrics
    for name in (*RETURN_BASELINES, "mlp"):
        assert metrics[f"{name}.pinball"] > 0
    for name in (*VOL_BASELINES, "mlp"):
        assert metrics[f"{name}_vol.qlike"] > 0
    # The model is tested against the best baseline of each target.
    assert 0 <= metrics["mlp.dm_p"] <= 1 and 0 <= metrics["mlp_vol.dm_p"] <= 1
    assert metrics["mlp.coverage_80_fold1"] == metrics["mlp.coverage_80"]
    # A random walk calls no direction: no score is logged rather than a NaN.
    assert "random_walk.direction" not in metrics
    assert 0 <= metrics["mlp.coverage_80"] <= 1
    # The printed table shows the logged score.
    assert f"{metrics['historical.pinball']:.6f}" in result.stdout

    artifacts = {artifact.path for artifact in client.list_artifacts(run.info.run_id)}
    assert {"evaluation.md", "plots"} <= artifacts
    plots = {artifact.path for artifact in client.list_artifacts(run.info.run_id, "plots")}
    assert plots == {"plots/calibration.png", "plots/forecast_mlp_alpaca-IBM.png"}
    report = Path(client.download_artifacts(run.info.run_id, "evaluation.md", str(tmp_path)))
    assert "| historical |" in report.read_text()
    assert f"{metrics['mlp_vol.qlike']:.4f}" in report.read_text()


def test_evaluate_without_mlflow_prints_the_tables_and_says_it_did_not_log(
    database_url: str, tmp_path: Path
) -> None:
    asyncio.run(load_sample_bars(database_url, ("IBM",)))
    env = finone_env(tmp_path, DATABASE_URL=database_url)
    for name in ("MLFLOW_TRACKING_URI", "FINONE_MLFLOW_TRACKING_URI"):
        env.pop(name, None)

    result = run_finone(
        "evaluate",
        "--instrument",
        "alpaca:IBM",
        "--models",
        "",
        "--folds",
        "1",
        env=env,
        cwd=tmp_path,  # no .env file that could name a tracking server
        timeout=120,
    )

    assert result.returncode == 0, result.stderr[-3000:]
    assert "250 forecasts" in result.stdout
    assert "will not be logged to MLflow" in result.stderr
    assert "MLflow run" not in result.stdout
