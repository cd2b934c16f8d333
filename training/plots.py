"""Pictures of out-of-sample forecasts, for a person judging a forecaster at a glance.

Both take the table of ``training.evaluation.all_forecasts``: the actual targets, then
``<name>_q10/_q50/_q90`` of each return forecaster and ``<name>_vol`` of each volatility
forecaster. Figures are built on the Agg canvas directly rather than through pyplot: pyplot
keeps every figure alive until closed and is not safe outside the main thread (the retrain
scheduler logs plots from an actor), whereas these are freed as soon as they are dropped.
"""

from __future__ import annotations

from collections.abc import Sequence

import mlflow
import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from training.errors import DatasetError
from training.metrics import QUANTILES

__all__ = ["forecast_figure", "calibration_figure", "log_plots"]

_QUANTILE_COLUMNS = ("q10", "q50", "q90")


def _figure(width: float, height: float) -> Figure:
    figure = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def _return_forecasters(forecasts: pd.DataFrame) -> list[str]:
    return [c.removesuffix("_q10") for c in forecasts.columns if c.endswith("_q10")]


def _vol_forecasters(forecasts: pd.DataFrame) -> list[str]:
    return [
        c.removesuffix("_vol")
        for c in forecasts.columns
        if c.endswith("_vol") and c != "actual_vol"
    ]


def forecast_figure(forecasts: pd.DataFrame, instrument: str, model: str) -> Figure:
    """Top: the realized next-bar return of ``instrument`` with ``model``'s 10-90% band and
    median over the test windows. Bottom: realized volatility against every volatility
    forecaster in the table, ``model`` drawn boldest."""
    rows = forecasts[forecasts["instrument"] == instrument]
    if rows.empty:
        raise DatasetError(f"no forecasts for {instrument}")
    figure = _figure(10, 7)
    returns, volatility = figure.subplots(2, 1, sharex=True)

    returns.fill_between(
        rows.index,
        rows[f"{model}_q10"],
        rows[f"{model}_q90"],
        alpha=0.3,
        label=f"{model} 10-90%",
    )
    returns.plot(rows.index, rows[f"{model}_q50"], linewidth=1, label=f"{model} median")
    returns.plot(
        rows.index, rows["actual_return"], ".", markersize=2, color="black", label="realized"
    )
    returns.set_ylabel("log return, next bar")
    returns.set_title(f"{instrument}: {model} forecasts out of sample")
    returns.legend(loc="upper left")

    volatility.plot(rows.index, rows["actual_vol"], color="black", linewidth=1, label="realized")
    for name in _vol_forecasters(rows):
        volatility.plot(
            rows.index,
            rows[f"{name}_vol"],
            linewidth=2 if name == model else 1,
            label=name,
        )
    volatility.set_ylabel("volatility, next bars")
    volatility.legend(loc="upper left")
    return figure


def _fraction_below(forecasts: pd.DataFrame, name: str) -> list[float]:
    """The share of realized returns below each of ``name``'s quantiles: a calibrated
    forecaster's shares are the quantiles' own levels."""
    actual = forecasts["actual_return"].to_numpy()
    return [
        float(np.mean(actual < forecasts[f"{name}_{column}"].to_numpy()))
        for column in _QUANTILE_COLUMNS
    ]


def calibration_figure(forecasts: pd.DataFrame) -> Figure:
    """Reliability of every return forecaster's quantiles: the share of realized returns
    below each quantile against its nominal level, beside the diagonal of perfect calibration."""
    figure = _figure(6, 6)
    axes = figure.subplots()
    axes.plot([0, 1], [0, 1], linestyle="--", color="grey", label="calibrated")
    for name in _return_forecasters(forecasts):
        axes.plot(QUANTILES, _fraction_below(forecasts, name), marker="o", label=name)
    axes.set_xlim(0, 1)
    axes.set_ylim(0, 1)
    axes.set_aspect("equal")
    axes.set_xlabel("nominal quantile")
    axes.set_ylabel("share of realized returns below it")
    axes.set_title(f"Quantile calibration, {len(forecasts):,} forecasts")
    axes.legend(loc="upper left")
    return figure


def log_plots(forecasts: pd.DataFrame, models: Sequence[str]) -> list[str]:
    """Log into the active MLflow run ``plots/calibration.png`` and, per model and instrument,
    ``plots/forecast_<model>_<instrument>.png``; returns the artifact paths."""
    # One figure at a time: each holds a few MB of pixels until it is dropped.
    mlflow.log_figure(calibration_figure(forecasts), "plots/calibration.png")
    paths = ["plots/calibration.png"]
    for model in models:
        for instrument in sorted(forecasts["instrument"].unique()):
            # A colon is not allowed in file names everywhere an artifact may be downloaded.
            path = f"plots/forecast_{model}_{instrument.replace(':', '-')}.png"
            mlflow.log_figure(forecast_figure(forecasts, instrument, model), path)
            paths.append(path)
    return paths
