"""The plots of out-of-sample forecasts show the forecasts a user would read off the tables."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from matplotlib.axes import Axes
from matplotlib.lines import Line2D

from actors.demo import stock_history
from training.errors import DatasetError
from training.evaluation import WalkForward, all_forecasts
from training.features import make_features
from training.plots import calibration_figure, forecast_figure
from training.trainer import TrainConfig


@pytest.fixture(scope="module")
def forecasts() -> pd.DataFrame:
    tables = []
    for ticker, rows in stock_history(("IBM", "MSFT")).groupby("ticker"):
        bars = rows.set_index(pd.DatetimeIndex(rows["date"], tz="UTC"))
        features = make_features(bars[["open", "high", "low", "close", "volume"]].astype(float))
        tables.append(features.assign(instrument=f"alpaca:{ticker}"))
    table = pd.concat(tables).sort_index(kind="stable")
    plan = WalkForward(folds=2, test_size=100)
    return all_forecasts(table, plan, {"mlp": TrainConfig(epochs=1, width=8, depth=1)})


def _lines(axes: Axes) -> dict[str, Line2D]:
    return {line.get_label(): line for line in axes.get_lines()}


def test_forecast_figure_shows_one_instruments_band_median_and_volatilities(
    forecasts: pd.DataFrame,
) -> None:
    ibm = forecasts[forecasts["instrument"] == "alpaca:IBM"]

    returns, volatility = forecast_figure(forecasts, "alpaca:IBM", "mlp").axes

    lines = _lines(returns)
    assert set(lines) == {"mlp median", "realized"}
    np.testing.assert_array_equal(lines["realized"].get_ydata(), ibm["actual_return"])
    np.testing.assert_array_equal(lines["mlp median"].get_ydata(), ibm["mlp_q50"])
    (band,) = returns.collections
    assert band.get_label() == "mlp 10-90%"
    # The band spans exactly the model's 10% to 90% forecasts.
    corners = np.concatenate([path.vertices for path in band.get_paths()])
    assert corners[:, 1].min() == pytest.approx(ibm["mlp_q10"].min())
    assert corners[:, 1].max() == pytest.approx(ibm["mlp_q90"].max())

    lines = _lines(volatility)
    assert set(lines) == {"realized", "ewma", "garch", "gjr_garch_t", "har", "mlp"}
    np.testing.assert_array_equal(lines["realized"].get_ydata(), ibm["actual_vol"])
    np.testing.assert_array_equal(lines["garch"].get_ydata(), ibm["garch_vol"])
    assert lines["mlp"].get_linewidth() > lines["ewma"].get_linewidth()


def test_forecast_figure_of_an_instrument_not_forecast_says_so(forecasts: pd.DataFrame) -> None:
    with pytest.raises(DatasetError, match="no forecasts for alpaca:NOPE"):
        forecast_figure(forecasts, "alpaca:NOPE", "mlp")


def test_calibration_figure_plots_each_forecasters_share_below_its_quantiles(
    forecasts: pd.DataFrame,
) -> None:
    (axes,) = calibration_figure(forecasts).axes

    lines = _lines(axes)
    forecasters = ("random_walk", "historical", "garch_t", "fhs", "mlp")
    assert set(lines) == {"calibrated", *forecasters}
    np.testing.assert_array_equal(lines["calibrated"].get_ydata(), [0, 1])
    actual = forecasts["actual_return"]
    for name in forecasters:
        assert list(lines[name].get_xdata()) == [0.1, 0.5, 0.9]
        expected = [(actual < forecasts[f"{name}_{q}"]).mean() for q in ("q10", "q50", "q90")]
        assert lines[name].get_ydata() == pytest.approx(expected)
