"""One retraining: search, judge the winner on the walk-forward folds beside the baselines,
train it on all the history, log it to MLflow and let the gate decide per target.

Every step is visible in MLflow: the search's trials in their experiment, and one run with the
winner's parameters, its walk-forward scores next to the baselines', and the logged model.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import mlflow
import pandas as pd
from mlflow import MlflowClient

from core.model_signing import signing_key_from_env
from training.evaluation import (
    RETURN_BASELINES,
    VOL_BASELINES,
    Step,
    WalkForward,
    all_forecasts,
    all_scores,
    hold_out,
)
from training.plots import log_plots
from training.registry import (
    TARGET_MODELS,
    Decision,
    ForecastSpec,
    log_forecaster,
    register_and_gate,
)
from training.search import SearchSettings, run_search
from training.trainer import fit

__all__ = ["Retraining", "retrain"]


@dataclass(frozen=True, slots=True)
class Retraining:
    run_id: str
    scores: dict[str, dict[str, float]]
    decisions: list[Decision]


def retrain(
    table: pd.DataFrame,
    interval: str,
    plan: WalkForward,
    search: SearchSettings,
    tracking_uri: str,
    experiment: str,
    storage: Path,
    progress: Callable[[Step], None] | None = None,
) -> Retraining:
    """``table`` is ``load_dataset``'s pooled features of ``interval`` bars. Needs a connected
    Ray cluster (for the search), an MLflow tracking server, and the model-signing key in the
    environment (``core.model_signing.signing_key_env``)."""
    # Read first: a missing key must not cost a whole search before it is noticed.
    signing_key = signing_key_from_env()
    spec = ForecastSpec(
        interval=interval,
        horizon=plan.horizon,
        vol_horizon=plan.vol_horizon,
        instruments=tuple(sorted(table["instrument"].unique())),
    )
    outcome = run_search(
        table, plan, search, tracking_uri, f"{experiment}-search", storage, progress
    )
    forecasts = all_forecasts(table, plan, {"model": outcome.config}, progress)
    scores = all_scores(forecasts, ["model"])
    mlflow.set_tracking_uri(tracking_uri)
    mlflow.set_experiment(experiment)
    with mlflow.start_run(run_name=f"{outcome.config.model}-retrain") as run:
        mlflow.log_params(asdict(outcome.config))
        mlflow.log_params({**asdict(spec), "instruments": ",".join(spec.instruments)})
        for name, values in scores.items():
            mlflow.log_metrics({f"{name}.{metric}": value for metric, value in values.items()})
        log_plots(forecasts, ["model"])
        fit_rows, valid_rows = hold_out(table.sort_index(kind="stable"), plan.embargo)
        final = fit(fit_rows, valid_rows, outcome.config)
        uri = log_forecaster(final, spec, valid_rows)
    client = MlflowClient(tracking_uri)
    returns_name, returns_metric = TARGET_MODELS["returns"]
    vol_name, vol_metric = TARGET_MODELS["volatility"]
    decisions = [
        register_and_gate(
            client,
            uri,
            returns_name,
            returns_metric,
            scores["model"]["pinball"],
            {b: scores[b]["pinball"] for b in RETURN_BASELINES},
            signing_key,
        ),
        register_and_gate(
            client,
            uri,
            vol_name,
            vol_metric,
            scores["model_vol"]["qlike"],
            {b: scores[f"{b}_vol"]["qlike"] for b in VOL_BASELINES},
            signing_key,
        ),
    ]
    return Retraining(run_id=run.info.run_id, scores=scores, decisions=decisions)
