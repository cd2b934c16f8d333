"""`finone train` as a user runs it: its own local Ray, the real MLflow server and Postgres."""

from __future__ import annotations

import asyncio
from pathlib import Path

from cluster.sample_data import load_sample_bars
from tests.finone_cli import finone_env, run_finone


def test_train_command_searches_logs_and_gates(
    database_url: str, mlflow_url: str, tmp_path: Path
) -> None:
    asyncio.run(load_sample_bars(database_url, ("IBM",)))
    env = finone_env(tmp_path, DATABASE_URL=database_url, MLFLOW_TRACKING_URI=mlflow_url)

    result = run_finone(
        "train",
        "--instrument",
        "alpaca:IBM",
        "--samples",
        "2",
        "--epochs",
        "2",
        "--folds",
        "1",
        "--test-size",
        "150",
        "--cpus-per-trial",
        "0.5",
        env=env,
        timeout=420,
    )

    assert result.returncode == 0, result.stderr[-3000:]
    lines = result.stdout.splitlines()  # after Tune's own progress display
    assert any(line.startswith("MLflow run ") for line in lines)
    assert any(line.startswith("finone-returns v") for line in lines)
    assert any(line.startswith("finone-volatility v") for line in lines)
    assert "gate of finone-volatility done" in result.stderr  # the progress bar's last step


def test_train_command_without_history_says_what_to_do(
    database_url: str, mlflow_url: str, tmp_path: Path
) -> None:
    env = finone_env(tmp_path, DATABASE_URL=database_url, MLFLOW_TRACKING_URI=mlflow_url)

    result = run_finone("train", "--instrument", "alpaca:NOPE", env=env, timeout=120)

    assert result.returncode == 1
    assert "no 1d bars for alpaca:NOPE" in result.stderr
