"""Both forecasters learn on real history, predict ordered quantiles, and are reproducible."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from actors.demo import stock_history
from training.features import FEATURES, make_features
from training.trainer import TrainConfig, fit, predict, sequences


def _table() -> pd.DataFrame:
    history = stock_history(("IBM",))
    bars = history.set_index(pd.DatetimeIndex(history["date"], tz="UTC"))
    table = make_features(bars[["open", "high", "low", "close", "volume"]].astype(float))
    return table.assign(instrument="alpaca:IBM")


@pytest.mark.parametrize("model", ["mlp", "gru"])
def test_forecaster_learns_and_predicts_ordered_quantiles(model: str) -> None:
    table = _table()
    train, valid = table.iloc[:2_000], table.iloc[2_005:2_505]
    config = TrainConfig(model=model, epochs=4, width=16, depth=1, sequence=10)

    fitted = fit(train, valid, config)
    quantiles, vol = predict(fitted, valid)

    losses = [h["train_loss"] for h in fitted.history]
    assert losses[-1] < losses[0]
    assert quantiles.shape == (500, 3) and vol.shape == (500,)
    assert (quantiles[:, 0] <= quantiles[:, 1]).all() and (quantiles[:, 1] <= quantiles[:, 2]).all()
    assert np.isfinite(vol).all() and (vol > 0).all()
    assert all(
        np.isfinite(h["valid_pinball"]) and np.isfinite(h["valid_qlike"]) for h in fitted.history
    )


def test_same_seed_same_model() -> None:
    table = _table()
    train, valid = table.iloc[:1_000], table.iloc[1_005:1_205]
    config = TrainConfig(epochs=2, width=8, depth=1)

    first, second = (
        predict(fit(train, valid, config), valid),
        predict(fit(train, valid, config), valid),
    )

    np.testing.assert_array_equal(first[0], second[0])


def test_scaler_comes_from_the_training_window_only() -> None:
    table = _table()
    train, valid = table.iloc[:1_000], table.iloc[1_005:1_205]
    altered = valid.copy()
    altered[list(FEATURES)] *= 50

    fitted = fit(train, valid, TrainConfig(epochs=1, width=8, depth=1))
    refit = fit(train, altered, TrainConfig(epochs=1, width=8, depth=1))

    np.testing.assert_array_equal(fitted.standardizer.mean, refit.standardizer.mean)


def test_sequences_never_reach_into_another_instrument_or_the_future() -> None:
    table = pd.DataFrame({"instrument": ["a", "a", "b", "a", "b"]})
    values = np.arange(5, dtype=np.float32)[:, None]

    windows = sequences(table, values, 3)[:, :, 0]

    assert windows.tolist() == [[0, 0, 0], [0, 0, 1], [2, 2, 2], [0, 1, 3], [2, 2, 4]]
