"""Both forecasters learn on real history, predict ordered quantiles, and are reproducible."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from actors.demo import stock_history
from training.features import FEATURES, make_features
from training.models import ForecastEnsemble
from training.trainer import NO_CALIBRATION, TrainConfig, fit, predict, sequences


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


def test_quantiles_are_calibrated_on_the_validation_window() -> None:
    table = _table()
    # Returns three times as wide after training: an untouched network's interval is too narrow.
    wider = table.assign(target_return=table["target_return"] * 3)
    train, valid, test = table.iloc[:2_000], wider.iloc[2_005:2_505], wider.iloc[2_505:3_005]

    fitted = fit(train, valid, TrainConfig(epochs=4, width=16, depth=1))
    calibrated, _ = predict(fitted, test)
    raw, _ = predict(replace(fitted, calibration=NO_CALIBRATION), test)

    def coverage(quantiles: np.ndarray, rows: pd.DataFrame = test) -> float:
        actual = rows["target_return"].to_numpy()
        return float(np.mean((actual >= quantiles[:, 0]) & (actual <= quantiles[:, 2])))

    assert coverage(predict(fitted, valid)[0], valid) == pytest.approx(0.8, abs=0.01)
    assert coverage(raw) < 0.6
    assert 0.72 < coverage(calibrated) < 0.92
    # The median is left where the network put it.
    np.testing.assert_array_equal(calibrated[:, 1], raw[:, 1])
    assert fitted.calibration[0] < 0 < fitted.calibration[2]


def test_an_ensemble_averages_members_trained_from_different_seeds() -> None:
    table = _table()
    train, valid = table.iloc[:1_000], table.iloc[1_005:1_205]
    config = TrainConfig(epochs=2, width=8, depth=1)

    single = fit(train, valid, config)
    ensemble = fit(train, valid, replace(config, members=3))
    again = fit(train, valid, replace(config, members=3))

    assert isinstance(ensemble.model, ForecastEnsemble) and len(ensemble.model.members) == 3
    np.testing.assert_array_equal(predict(ensemble, valid)[1], predict(again, valid)[1])
    assert not np.array_equal(predict(ensemble, valid)[1], predict(single, valid)[1])
