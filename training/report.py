"""The report of an evaluation: every forecaster's out-of-sample scores as two tables, and one
MLflow run keeping them with the plots, so evaluations can be compared across time and data.

Scores are keyed as in a retrain run: ``<forecaster>`` for returns, ``<forecaster>_vol`` for
volatility (a model forecasts both).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import mlflow
import pandas as pd
from rich.table import Table

from training.evaluation import RETURN_BASELINES, VOL_BASELINES, WalkForward, best_baselines
from training.plots import log_plots

__all__ = [
    "EXPERIMENT",
    "ScoreTable",
    "score_tables",
    "log_evaluation",
]

EXPERIMENT = "finone-evaluations"


@dataclass(frozen=True, slots=True)
class ScoreTable:
    title: str
    columns: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]

    def rich(self) -> Table:
        table = Table(title=self.title)
        for column in self.columns:
            # A name or a score cut over two lines reads as two; a narrow terminal scrolls instead.
            table.add_column(
                column, justify="left" if column == "forecaster" else "right", no_wrap=True
            )
        for row in self.rows:
            table.add_row(*row)
        return table

    def markdown(self) -> str:
        lines = [
            f"### {self.title}",
            "",
            "| " + " | ".join(self.columns) + " |",
            "| --- |" + " ---: |" * (len(self.columns) - 1),
            *("| " + " | ".join(row) + " |" for row in self.rows),
        ]
        return "\n".join(lines) + "\n"


def _shown(value: float, spec: str) -> str:
    # A random walk calls no direction and ranks nothing, and a baseline is not tested against
    # itself: no score, rather than a zero.
    return "n/a" if math.isnan(value) else format(value, spec)


def _by_fold(values: Mapping[str, float]) -> str:
    folds = sorted(k for k in values if k.startswith("coverage_80_fold"))
    return " ".join(_shown(values[k], ".2f") for k in folds)


def score_tables(
    scores: Mapping[str, Mapping[str, float]],
    models: Sequence[str],
    plan: WalkForward,
    forecast_count: int,
) -> tuple[ScoreTable, ScoreTable]:
    """(returns, volatility) tables of ``training.evaluation.all_scores``, a row per forecaster:
    its loss, that loss over the best baseline's, and for models the Diebold-Mariano p-value
    against that baseline."""
    best_returns, best_vol = best_baselines(scores)
    nan = float("nan")
    returns = ScoreTable(
        title=(
            f"Returns, next {plan.horizon} bar(s): {forecast_count:,} forecasts "
            f"(best baseline: {best_returns})"
        ),
        columns=(
            "forecaster",
            "pinball",
            "vs best",
            "80% coverage",
            "by fold",
            "direction",
            "IC",
            "DM p",
        ),
        rows=tuple(
            (
                name,
                _shown(scores[name]["pinball"], ".6f"),
                _shown(scores[name]["pinball"] / scores[best_returns]["pinball"], ".3f"),
                _shown(scores[name]["coverage_80"], ".3f"),
                _by_fold(scores[name]),
                _shown(scores[name]["direction"], ".3f"),
                _shown(scores[name]["ic"], ".3f"),
                _shown(scores[name].get("dm_p", nan), ".3f"),
            )
            for name in (*RETURN_BASELINES, *models)
        ),
    )
    volatility = ScoreTable(
        title=f"Volatility, next {plan.vol_horizon} bars (best baseline: {best_vol})",
        columns=("forecaster", "QLIKE", "vs best", "MSE", "DM p"),
        rows=tuple(
            (
                name,
                _shown(scores[f"{name}_vol"]["qlike"], ".4f"),
                _shown(scores[f"{name}_vol"]["qlike"] / scores[f"{best_vol}_vol"]["qlike"], ".3f"),
                _shown(scores[f"{name}_vol"]["mse"], ".3e"),
                _shown(scores[f"{name}_vol"].get("dm_p", nan), ".3f"),
            )
            for name in (*VOL_BASELINES, *models)
        ),
    )
    return returns, volatility


def log_evaluation(
    tracking_uri: str,
    params: Mapping[str, str | int],
    scores: Mapping[str, Mapping[str, float]],
    tables: Sequence[ScoreTable],
    forecasts: pd.DataFrame,
    models: Sequence[str],
) -> str:
    """One run in ``EXPERIMENT`` with ``params``, every score as ``<forecaster>.<metric>`` (a
    score that does not exist, such as a random walk's direction, is left out), the tables as
    ``evaluation.md`` and the plots of ``forecasts``; returns the run id."""
    mlflow.set_tracking_uri(tracking_uri)
    mlflow.set_experiment(EXPERIMENT)
    with mlflow.start_run(run_name="evaluate-" + ("-".join(models) or "baselines")) as run:
        mlflow.log_params(dict(params))
        mlflow.log_metrics(
            {
                f"{name}.{metric}": value
                for name, values in scores.items()
                for metric, value in values.items()
                if not math.isnan(value)
            }
        )
        mlflow.log_text("\n".join(table.markdown() for table in tables), "evaluation.md")
        log_plots(forecasts, models)
    run_id: str = run.info.run_id
    return run_id
