"""One retraining: search, judge each target's winner on the walk-forward folds beside the
baselines, train it on all the history, log it to MLflow and let the gate decide per target.

Every step is visible in MLflow: the search's trials in their experiment, and one run per
distinct winner (one when a configuration wins both targets) with its parameters, its
walk-forward scores next to the baselines' (its own as ``model`` and ``model_vol``), and the
logged model.
"""

from __future__ import annotations

import itertools
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
    TARGET_METRICS,
    Decision,
    ForecastSpec,
    log_forecaster,
    model_name,
    register_and_gate,
)
from training.search import SearchSettings, run_search
from training.trainer import TrainConfig, fit

__all__ = ["Retraining", "retrain"]

# The column prefix of the model judged in a retrain run's forecasts and scores.
_MODEL = "model"


@dataclass(frozen=True, slots=True)
class Retraining:
    """The MLflow runs of the winners (the returns winner's first), per run its scores, and
    where the gate moved each target's alias."""

    run_ids: tuple[str, ...]
    scores: dict[str, dict[str, dict[str, float]]]
    decisions: list[Decision]

    @property
    def run_id(self) -> str:
        return self.run_ids[0]


def _winners(configs: dict[str, TrainConfig]) -> dict[str, list[str]]:
    """Candidate name -> the targets it won: one candidate when one configuration won both."""
    if configs["returns"] == configs["volatility"]:
        return {_MODEL: ["returns", "volatility"]}
    return {"returns_model": ["returns"], "vol_model": ["volatility"]}


def _as_model(forecasts: pd.DataFrame, candidate: str, candidates: list[str]) -> pd.DataFrame:
    """``forecasts`` with ``candidate``'s columns named as the run's model, other candidates'
    left out."""
    others = [
        c for c in forecasts.columns for o in candidates if o != candidate and c.startswith(f"{o}_")
    ]
    renamed = {
        c: _MODEL + c.removeprefix(candidate)
        for c in forecasts.columns
        if c.startswith(f"{candidate}_")
    }
    return forecasts.drop(columns=others).rename(columns=renamed)


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
    winners = _winners(outcome.configs)
    configs = {name: outcome.configs[targets[0]] for name, targets in winners.items()}
    forecasts = all_forecasts(table, plan, configs, progress)
    fit_rows, valid_rows = hold_out(table.sort_index(kind="stable"), plan.embargo)
    mlflow.set_tracking_uri(tracking_uri)
    mlflow.set_experiment(experiment)
    client = MlflowClient(tracking_uri)
    run_ids, scores, decisions = [], {}, []
    finals = itertools.count(1)
    total = len(winners) + len(TARGET_METRICS)

    def final_unit(unit: str) -> None:
        if progress is not None:
            progress(Step("final", next(finals), total, unit))

    for name, targets in winners.items():
        config = configs[name]
        judged = _as_model(forecasts, name, list(winners))
        run_scores = all_scores(judged, [_MODEL], plan)
        suffix = "" if name == _MODEL else f"-{targets[0]}"
        with mlflow.start_run(run_name=f"{config.model}-retrain{suffix}") as run:
            mlflow.log_params(asdict(config))
            mlflow.log_params(
                {
                    **asdict(spec),
                    "instruments": ",".join(spec.instruments),
                    "targets": ",".join(targets),
                }
            )
            for forecaster, values in run_scores.items():
                mlflow.log_metrics(
                    {f"{forecaster}.{metric}": value for metric, value in values.items()}
                )
            log_plots(judged, [_MODEL])
            uri = log_forecaster(fit(fit_rows, valid_rows, config), spec, valid_rows)
        final_unit(f"final fit and log of {name}")
        run_ids.append(run.info.run_id)
        scores[run.info.run_id] = run_scores
        for target in targets:
            decisions.append(_gate(client, uri, target, interval, run_scores, signing_key))
            final_unit(f"gate of {decisions[-1].name}")
    return Retraining(run_ids=tuple(run_ids), scores=scores, decisions=decisions)


def _gate(
    client: MlflowClient,
    uri: str,
    target: str,
    interval: str,
    scores: dict[str, dict[str, float]],
    signing_key: bytes,
) -> Decision:
    name, metric = model_name(target, interval), TARGET_METRICS[target]
    if target == "returns":
        model, baselines = scores[_MODEL], {b: scores[b][metric] for b in RETURN_BASELINES}
    else:
        model = scores[f"{_MODEL}_vol"]
        baselines = {b: scores[f"{b}_vol"][metric] for b in VOL_BASELINES}
    return register_and_gate(
        client, uri, name, metric, model[metric], baselines, model["dm_p"], signing_key
    )
