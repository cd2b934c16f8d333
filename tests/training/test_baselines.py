"""Scores and baselines on the bundled history."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from actors.demo import stock_history
from training.baselines import (
    ewma_volatility,
    garch_volatility,
    historical_quantiles,
    random_walk_quantiles,
)
from training.features import make_features
from training.metrics import (
    directional_accuracy,
    information_coefficient,
    interval_coverage,
    mse,
    pinball_loss,
    qlike,
)
from training.splits import walk_forward


def test_scores_reward_the_truth() -> None:
    actual = np.array([0.01, -0.02, 0.03])
    exact = np.column_stack([actual - 0.01, actual, actual + 0.01])
    off = exact + 0.02

    assert pinball_loss(actual, exact) < pinball_loss(actual, off)
    assert pinball_loss(np.array([1.0]), np.array([[0.0, 1.0, 2.0]])) == pytest.approx(
        (0.1 * 1 + 0 + 0.1 * 1) / 3
    )
    assert interval_coverage(actual, exact[:, 0], exact[:, 2]) == 1.0
    assert interval_coverage(actual, off[:, 0], off[:, 2]) == 0.0
    assert directional_accuracy(actual, exact[:, 1]) == 1.0
    assert directional_accuracy(actual, -exact[:, 1]) == 0.0
    assert np.isnan(directional_accuracy(actual, np.zeros(3)))
    vol = np.array([0.01, 0.02])
    assert qlike(vol, vol) == pytest.approx(0.0)
    assert qlike(vol, vol * 2) > 0 and qlike(vol, vol / 2) > 0
    assert mse(vol, vol) == 0.0


def test_information_coefficient_ranks_instruments_per_date() -> None:
    dates = pd.DatetimeIndex(["2024-01-01"] * 3 + ["2024-01-02"] * 3)
    frame = pd.DataFrame(
        {"predicted": [1, 2, 3, 3, 2, 1], "actual": [10, 20, 30, 10, 20, 30]}, index=dates
    )

    assert information_coefficient(frame, "predicted", "actual") == pytest.approx(0.0)
    assert information_coefficient(frame.iloc[:3], "predicted", "actual") == pytest.approx(1.0)


def test_volatility_forecasts_at_t_ignore_everything_after_t() -> None:
    rng = np.random.default_rng(3)
    returns = rng.normal(0, 0.01, 500)
    shocked = returns.copy()
    shocked[300:] *= 10

    assert np.array_equal(
        ewma_volatility(returns, 200, 5)[:300], ewma_volatility(shocked, 200, 5)[:300]
    )
    garch, garch_shocked = garch_volatility(returns, 200, 5), garch_volatility(shocked, 200, 5)
    assert np.isnan(garch[:199]).all() and not np.isnan(garch[199:]).any()
    np.testing.assert_allclose(garch[199:300], garch_shocked[199:300])


def test_baselines_on_real_history_are_calibrated_roughly() -> None:
    history = stock_history(("IBM",))
    bars = history.set_index(pd.DatetimeIndex(history["date"], tz="UTC"))
    table = make_features(bars[["open", "high", "low", "close", "volume"]].astype(float))
    [split] = walk_forward(len(table), folds=1, test_size=500, embargo=5, min_train=1_000)
    train = table.iloc[: split.train_end]
    test = table.iloc[split.test_start : split.test_end]

    for forecast in (
        historical_quantiles(train["target_return"].to_numpy(), len(test)),
        random_walk_quantiles(train["ret_1"].to_numpy(), len(test)),
    ):
        coverage = interval_coverage(
            test["target_return"].to_numpy(), forecast[:, 0], forecast[:, 2]
        )
        assert 0.6 < coverage < 0.95
    vol = ewma_volatility(table["ret_1"].to_numpy(), split.train_end, 5)[
        split.test_start : split.test_end
    ]
    flat = np.full(len(test), train["target_vol"].mean())
    # EWMA tracks volatility clustering: it beats a constant forecast on QLIKE.
    assert qlike(test["target_vol"].to_numpy(), vol) < qlike(test["target_vol"].to_numpy(), flat)
