"""Time of the Ray Tune search on this machine: per trial, per epoch and for the whole search.

The bundled daily history of the four stocks, pooled, searched as `finone train` searches it
(ASHA, random search, one CPU per trial) on a local Ray cluster, every trial logged to a
temporary embedded MLflow server; each trial's time is read from its MLflow run: from its start
to its last epoch's report (a trial ASHA stops is ended by Tune, which may leave the run open).
Run with `make bench` or `.venv/bin/python bench/bench_training.py [--samples N] [--epochs N]`.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import statistics
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import ray
from mlflow import MlflowClient

from actors.demo import DEMO_SYMBOLS, stock_history
from cluster.embedded_mlflow import SERVICE_USERNAME, EmbeddedMlflow
from cluster.ports import free_port
from training.evaluation import WalkForward
from training.features import make_features
from training.search import SearchSettings, run_search, search_data


@dataclass(frozen=True, slots=True)
class TrialTiming:
    model: str
    epochs: int
    seconds: float
    # When its MLflow run started, in seconds since the epoch.
    started: float
    epoch_seconds: list[float]


def pooled_history() -> pd.DataFrame:
    """The four stocks' features and targets, pooled in time order as `load_dataset` pools."""
    tables = []
    for ticker, rows in stock_history(DEMO_SYMBOLS).groupby("ticker"):
        bars = rows.set_index(pd.DatetimeIndex(rows["date"], tz="UTC"))
        features = make_features(bars[["open", "high", "low", "close", "volume"]].astype(float))
        tables.append(features.assign(instrument=f"alpaca:{ticker}"))
    return pd.concat(tables).sort_index(kind="stable")


def trial_timings(client: MlflowClient, experiment_id: str) -> list[TrialTiming]:
    timings = []
    for run in client.search_runs([experiment_id]):
        reports = sorted(m.timestamp for m in client.get_metric_history(run.info.run_id, "score"))
        if not reports:
            continue
        timings.append(
            TrialTiming(
                model=run.data.params["model"],
                epochs=len(reports),
                seconds=(reports[-1] - run.info.start_time) / 1000,
                started=run.info.start_time / 1000,
                epoch_seconds=[float(s) / 1000 for s in np.diff(reports)],
            )
        )
    return timings


@contextmanager
def mlflow_server(data_dir: Path) -> Iterator[str]:
    """A temporary embedded MLflow tracking server; yields its URL."""
    server = EmbeddedMlflow(data_dir, "127.0.0.1", free_port(), os.environ)
    server.process.start()
    try:
        asyncio.run(server.process.wait_until_ready(lambda: server.ready(2.0), 120))
        # Before Ray starts: its workers (the trials) inherit the environment.
        os.environ["MLFLOW_TRACKING_USERNAME"] = SERVICE_USERNAME
        os.environ["MLFLOW_TRACKING_PASSWORD"] = server.service_password
        yield server.url
    finally:
        server.process.stop()


@contextmanager
def local_ray() -> Iterator[None]:
    """A fresh Ray cluster on this machine's cores, as `finone train` starts without a stack."""
    ray.init(
        address="local", include_dashboard=False, log_to_driver=False, logging_level=logging.ERROR
    )
    try:
        yield
    finally:
        ray.shutdown()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--samples", type=int, default=8)
    parser.add_argument("--epochs", type=int, default=15, help="most epochs a trial may train")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="finone-bench-") as tmp:
        data_dir = Path(tmp)
        with mlflow_server(data_dir) as tracking_uri:
            table = pooled_history()
            plan = WalkForward()
            train, valid = search_data(table, plan)
            settings = SearchSettings(
                samples=args.samples, max_epochs=args.epochs, cpus_per_trial=1.0
            )
            with local_ray():
                started = time.monotonic()
                outcome = run_search(
                    table, plan, settings, tracking_uri, "bench-search", data_dir / "tune"
                )
                wall_s = time.monotonic() - started
            timings = trial_timings(MlflowClient(tracking_uri), outcome.experiment_id)

    trial_s = [t.seconds for t in timings]
    epochs = sum(t.epochs for t in timings)
    print(f"cpus: {os.cpu_count()}, one per trial")
    print(
        f"search data:           {len(train):,} training, {len(valid):,} validation rows of "
        f"{table['instrument'].nunique()} stocks, before the first of {plan.folds} test windows"
    )
    print(
        f"trials run:            {outcome.trials}, {epochs} epochs of at most "
        f"{outcome.trials * args.epochs} (ASHA stopped "
        f"{sum(t.epochs < args.epochs for t in timings)} trials early)"
    )
    print(
        f"seconds per trial:     median {statistics.median(trial_s):.1f}, "
        f"p90 {np.percentile(trial_s, 90):.1f}, max {max(trial_s):.1f}"
    )
    for model in sorted({t.model for t in timings}):
        kind = [t for t in timings if t.model == model]
        per_epoch = [s for t in kind for s in t.epoch_seconds]
        if not per_epoch:  # every trial of this kind stopped after its first epoch
            continue
        print(
            f"seconds per epoch:     {model}: median {statistics.median(per_epoch):.2f} "
            f"({len(kind)} trials, {sum(t.epochs for t in kind)} epochs)"
        )
    print(f"trial seconds / epoch: {sum(trial_s) / epochs:.2f} (with set-up and logging)")
    print(f"whole search:          {wall_s:.1f} s wall")
    cpus = os.cpu_count() or 1
    print(
        f"cores busy in trials:  {sum(trial_s) / (wall_s * cpus):.0%} of {cpus} x wall "
        "(the rest: trial workers starting, imports, Tune's scheduling)"
    )
    for target, config in outcome.configs.items():
        print(f"best for {target + ':':<13}{asdict(config)}")
        print(f"  its score:           {outcome.scores[target]:.4f} (validation loss / baseline's)")


if __name__ == "__main__":
    main()
