"""`finone evaluate` on the bundled history: every forecaster scored on the same folds."""

from __future__ import annotations

import asyncio

from click.testing import CliRunner

from cluster.cli import main
from cluster.sample_data import load_sample_bars
from training.datasets import load_dataset
from training.evaluation import (
    RETURN_BASELINES,
    VOL_BASELINES,
    WalkForward,
    all_forecasts,
    baseline_forecasts,
    score_returns,
    score_volatility,
)
from training.trainer import TrainConfig


def test_baselines_are_scored_out_of_sample_on_every_fold(database_url: str) -> None:
    asyncio.run(load_sample_bars(database_url, ("IBM", "MSFT")))
    table = asyncio.run(load_dataset(database_url, ["alpaca:IBM", "alpaca:MSFT"], "1d"))
    plan = WalkForward(folds=3, test_size=200)

    forecasts = baseline_forecasts(table, plan)

    assert len(forecasts) == 2 * 3 * 200
    assert not forecasts.isna().any().any()
    assert sorted(set(forecasts["fold"])) == [1, 2, 3]
    for name in RETURN_BASELINES:
        scores = score_returns(forecasts, name)
        assert 0.6 < scores["coverage_80"] < 0.95
        assert [scores[f"coverage_80_fold{fold}"] for fold in (1, 2, 3)] == [
            score_returns(forecasts[forecasts["fold"] == fold], name)["coverage_80"]
            for fold in (1, 2, 3)
        ]
    for name in VOL_BASELINES:
        assert 0 < score_volatility(forecasts, name)["qlike"] < 1


def test_evaluate_prints_the_tables_or_says_what_is_missing(database_url: str) -> None:
    asyncio.run(load_sample_bars(database_url, ("IBM",)))
    env = {"DATABASE_URL": database_url}

    result = CliRunner().invoke(
        main,
        ["evaluate", "--instrument", "alpaca:IBM", "--folds", "2", "--test-size", "100"],
        env=env,
    )
    missing = CliRunner().invoke(main, ["evaluate", "--instrument", "alpaca:NOPE"], env=env)

    assert result.exit_code == 0, result.output
    for text in (
        *RETURN_BASELINES,
        *VOL_BASELINES,
        "mlp",
        "gru",
        "QLIKE",
        "DM p",
        "by fold",
        "200 forecasts",
    ):
        assert text in result.output
    assert missing.exit_code == 1
    assert "no 1d bars for alpaca:NOPE" in missing.output


def test_models_are_scored_on_the_same_examples_as_the_baselines(database_url: str) -> None:
    asyncio.run(load_sample_bars(database_url, ("IBM", "MSFT")))
    table = asyncio.run(load_dataset(database_url, ["alpaca:IBM", "alpaca:MSFT"], "1d"))
    plan = WalkForward(folds=2, test_size=100)

    forecasts = all_forecasts(table, plan, {"mlp": TrainConfig(epochs=2, width=8, depth=1)})

    assert len(forecasts) == 2 * 2 * 100
    assert not forecasts.isna().any().any()
    quantiles = forecasts[["mlp_q10", "mlp_q50", "mlp_q90"]].to_numpy()
    assert (quantiles[:, 0] <= quantiles[:, 2]).all()
    assert score_returns(forecasts, "mlp")["pinball"] > 0
