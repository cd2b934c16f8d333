"""Scores and baselines on the bundled history."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from actors.demo import stock_history
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
from training.features import make_features
from training.metrics import (
    diebold_mariano,
    direction_p_value,
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


def _clustered_returns(count: int, seed: int) -> np.ndarray:
    """A GARCH(1,1) path: volatility that clusters, as the GARCH family expects."""
    rng = np.random.default_rng(seed)
    returns, variance = np.empty(count), 1e-4
    for t in range(count):
        returns[t] = np.sqrt(variance) * rng.standard_normal()
        variance = 1e-6 + 0.1 * returns[t] ** 2 + 0.88 * variance
    return returns


def test_volatility_forecasts_at_t_ignore_everything_after_t() -> None:
    # Long enough a training window for GARCH to find the clustering (on 200 bars it does not).
    returns = _clustered_returns(1_500, 3)
    shocked = returns.copy()
    shocked[1_100:] *= 10

    assert np.array_equal(
        ewma_volatility(returns, 1_000, 5)[:1_100], ewma_volatility(shocked, 1_000, 5)[:1_100]
    )
    for forecaster in (garch_volatility, gjr_garch_t_volatility):
        calm, wild = forecaster(returns, 1_000, 5), forecaster(shocked, 1_000, 5)
        assert np.isnan(calm[:999]).all() and not np.isnan(calm[999:]).any()
        np.testing.assert_allclose(calm[999:1_100], wild[999:1_100])
        assert (wild[1_100:1_120] > 2 * calm[1_100:1_120]).all()
    for quantiles in (garch_t_quantiles, filtered_historical_quantiles):
        calm, wild = quantiles(returns, 1_000), quantiles(shocked, 1_000)
        assert np.isnan(calm[:999]).all() and not np.isnan(calm[999:]).any()
        np.testing.assert_allclose(calm[999:1_100], wild[999:1_100])
        # The shock reaches the forecasts made after it, and widens them.
        assert (np.ptp(wild[1_100:1_120], axis=1) > 2 * np.ptp(calm[1_100:1_120], axis=1)).all()


def test_har_learns_only_from_training_rows_and_follows_the_range() -> None:
    rng = np.random.default_rng(5)
    range_var = np.exp(rng.normal(-9, 0.5, 600))
    components = np.column_stack([range_var, range_var, range_var])
    target_vol = np.sqrt(5 * range_var * rng.lognormal(0, 0.3, 600))
    altered = target_vol.copy()
    altered[400:] *= 100

    vol = har_volatility(components, target_vol, 400)

    np.testing.assert_allclose(vol, har_volatility(components, altered, 400))
    assert np.corrcoef(vol[400:], np.sqrt(range_var[400:]))[0, 1] > 0.99
    assert (vol > 0).all()


def test_garch_t_tails_are_wider_than_normal_ones_where_returns_have_fat_tails() -> None:
    rng = np.random.default_rng(8)
    returns = rng.standard_t(3, 2_000) * 0.01

    quantiles = garch_t_quantiles(returns, 1_500)[1_499:]
    empirical = filtered_historical_quantiles(returns, 1_500)[1_499:]
    below = np.mean(returns[1_500:] < quantiles[:-1, 0])

    assert (quantiles[:, 0] < quantiles[:, 1]).all() and (quantiles[:, 1] < quantiles[:, 2]).all()
    assert 0.05 < below < 0.15
    assert 0.05 < np.mean(returns[1_500:] < empirical[:-1, 0]) < 0.15


def test_diebold_mariano_tells_a_real_edge_from_noise() -> None:
    rng = np.random.default_rng(11)
    dates = pd.date_range("2020-01-01", periods=1_000, freq="D")
    rival = rng.exponential(1.0, 1_000)

    better = rival - 0.1 + rng.normal(0, 0.2, 1_000)
    same = rival + rng.normal(0, 0.2, 1_000)

    assert diebold_mariano(better, rival, dates, 0) < 0.001
    assert diebold_mariano(same, rival, dates, 0) > 0.05
    assert diebold_mariano(rival + 0.1, rival, dates, 4) > 0.999
    # Two instruments on each date count as one observation of the difference, not two.
    twice = dates.append(dates)
    assert diebold_mariano(
        np.concatenate([better, better]), np.concatenate([rival, rival]), twice, 0
    ) == pytest.approx(diebold_mariano(better, rival, dates, 0))


def test_a_coin_has_no_directional_edge_and_a_seer_has() -> None:
    rng = np.random.default_rng(2)
    actual = rng.normal(0, 1, 2_000)

    assert direction_p_value(actual, rng.normal(0, 1, 2_000)) > 0.01
    assert direction_p_value(actual, actual + rng.normal(0, 1, 2_000)) < 1e-6
    assert np.isnan(direction_p_value(actual, np.zeros(2_000)))


def test_baselines_on_real_history_are_calibrated_roughly() -> None:
    history = stock_history(("IBM",))
    bars = history.set_index(pd.DatetimeIndex(history["date"], tz="UTC"))
    table = make_features(bars[["open", "high", "low", "close", "volume"]].astype(float))
    [split] = walk_forward(len(table), folds=1, test_size=500, embargo=5, min_train=1_000)
    train = table.iloc[: split.train_end]
    test = table.iloc[split.test_start : split.test_end]

    returns = table["ret_1"].to_numpy()
    window = slice(split.test_start, split.test_end)
    for forecast in (
        historical_quantiles(train["target_return"].to_numpy(), len(test)),
        random_walk_quantiles(train["ret_1"].to_numpy(), len(test)),
        garch_t_quantiles(returns, split.train_end)[window],
        filtered_historical_quantiles(returns, split.train_end)[window],
    ):
        coverage = interval_coverage(
            test["target_return"].to_numpy(), forecast[:, 0], forecast[:, 2]
        )
        assert 0.6 < coverage < 0.95
    vol = ewma_volatility(table["ret_1"].to_numpy(), split.train_end, 5)[
        split.test_start : split.test_end
    ]
    flat = np.full(len(test), train["target_vol"].mean())
    realized = test["target_vol"].to_numpy()
    # EWMA tracks volatility clustering: it beats a constant forecast on QLIKE.
    assert qlike(realized, vol) < qlike(realized, flat)
    har = har_volatility(
        np.exp(table[list(HAR_COMPONENTS)].to_numpy()),
        table["target_vol"].to_numpy(),
        split.train_end,
    )[window]
    gjr = gjr_garch_t_volatility(returns, split.train_end, 5)[window]
    # Both read more than EWMA does (the day's range; bad news weighing more than good).
    assert qlike(realized, har) < qlike(realized, vol)
    assert qlike(realized, gjr) < qlike(realized, flat)
