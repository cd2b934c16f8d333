"""Retraining's speed before and after issue 18's forecasting work, side by side in one run.

Before is 1cf147e (9 features, one search score and winner, the older baselines); after is HEAD
(14 features, a winner per target, the GARCH-t, FHS, GJR-GARCH and HAR baselines, the
Diebold-Mariano test). Each is checked out as a temporary `git worktree` and run by this venv's
Python with PYTHONPATH set to that tree and the tree as working directory, so each imports its
own code (the Ray workers of its search inherit both). On the bundled history of the four stocks
in a temporary embedded Postgres, each round times in each tree, with a fresh embedded MLflow
server: `finone evaluate` and `finone train` (a small search) as processes, wall clock; the
search's trials are timed from their MLflow runs (start to each epoch's report), and the train
command's wall split at the first trial's start and the last trial's last report. After's
search tries the default MLP first, before's draws every trial at random, so their trials are
not the same networks: an epoch's seconds are per model kind, over the configurations drawn.
Rounds alternate which tree goes first (machines drift); the table gives medians over rounds.
Run with `make bench` or `.venv/bin/python bench/bench_retrain_speed.py [--rounds N] ...`.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from bench_training import TrialTiming, mlflow_server, trial_timings  # noqa: E402
from local_services import local_services  # noqa: E402
from mlflow import MlflowClient  # noqa: E402
from platform_process import FINONE, platform_env  # noqa: E402

from cluster.sample_data import SAMPLE_INSTRUMENTS, load_sample_bars  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
# The experiment `finone train` logs its search's trials to, in both trees.
SEARCH_EXPERIMENT = "finone-forecasters-search"

Measures = dict[str, float]


def _git(*args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=REPO, capture_output=True, text=True, check=True
    ).stdout.strip()


@contextmanager
def worktree(revision: str, path: Path) -> Iterator[Path]:
    """``revision`` checked out at ``path`` (detached), removed again whatever happens."""
    _git("worktree", "add", "--detach", str(path), revision)
    try:
        yield path
    finally:
        _git("worktree", "remove", "--force", str(path))


def timed_finone(tree: Path, env: dict[str, str], *args: str) -> float:
    """Wall seconds of one `finone` command run with ``tree``'s code."""
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, FINONE, *args],
        cwd=tree,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    elapsed = time.monotonic() - started
    if result.returncode != 0:
        raise SystemExit(f"finone {args[0]} failed in {tree}:\n{result.stderr[-3000:]}")
    return elapsed


def warm_up(tree: Path) -> None:
    """Imports ``tree``'s training code and its libraries once, untimed: the first command
    measured would otherwise also pay for reading them from disk."""
    subprocess.run(
        [sys.executable, "-c", "import cluster.cli, ray, training.pipeline"],
        cwd=tree,
        env={**os.environ, "PYTHONPATH": str(tree)},
        capture_output=True,
        check=True,
    )


def _median_or_nan(values: list[float]) -> float:
    # A model kind no trial of the round trained for two epochs has no epoch to time.
    return statistics.median(values) if values else math.nan


def trial_measures(timings: list[TrialTiming], started: float, ended: float) -> Measures:
    """The search's figures from its trials, and the train command's wall (from ``started`` to
    ``ended``, seconds since the epoch) split around the search."""
    first = min(t.started for t in timings)
    last = max(t.started + t.seconds for t in timings)
    epochs = sum(t.epochs for t in timings)
    per_model = {
        model: [s for t in timings if t.model == model for s in t.epoch_seconds]
        for model in ("mlp", "gru")
    }
    return {
        "train: before the first trial": first - started,
        "train: search, first trial to last report": last - first,
        "train: after the search": ended - last,
        "trials run": len(timings),
        "epochs trained": epochs,
        "seconds per trial, median": statistics.median(t.seconds for t in timings),
        "seconds per epoch, MLP, median": _median_or_nan(per_model["mlp"]),
        "seconds per epoch, GRU, median": _median_or_nan(per_model["gru"]),
        "trial seconds per epoch (with set-up, logging)": sum(t.seconds for t in timings) / epochs,
    }


def measure(tree: Path, work: Path, database_url: str, args: argparse.Namespace) -> Measures:
    """One round's figures for ``tree``; ``work`` is an empty directory of its own."""
    instruments = [flag for i in SAMPLE_INSTRUMENTS for flag in ("--instrument", i)]
    folds = ["--folds", str(args.folds), "--test-size", str(args.test_size)]
    with mlflow_server(work / "mlflow") as tracking_uri:
        env = platform_env(
            work / "data",
            DATABASE_URL=database_url,
            MLFLOW_TRACKING_URI=tracking_uri,
            PYTHONPATH=str(tree),
        )
        evaluate_s = timed_finone(
            tree, env, "evaluate", *instruments, *folds, "--epochs", str(args.epochs)
        )
        started = time.time()
        train_s = timed_finone(
            tree,
            env,
            "train",
            *instruments,
            *folds,
            "--samples",
            str(args.samples),
            "--epochs",
            str(args.epochs),
        )
        client = MlflowClient(tracking_uri)
        experiment = client.get_experiment_by_name(SEARCH_EXPERIMENT)
        if experiment is None:
            raise SystemExit(f"finone train in {tree} logged no {SEARCH_EXPERIMENT} experiment")
        timings = trial_timings(client, experiment.experiment_id)
    return {
        "`finone evaluate`, wall": evaluate_s,
        "`finone train`, wall": train_s,
        **trial_measures(timings, started, started + train_s),
    }


def measure_rounds(
    trees: dict[str, Path], work: Path, database_url: str, args: argparse.Namespace
) -> dict[str, list[Measures]]:
    for tree in trees.values():
        warm_up(tree)
    results: dict[str, list[Measures]] = {name: [] for name in trees}
    order = list(trees)
    for n in range(args.rounds):
        for name in order if n % 2 == 0 else order[::-1]:
            started = time.monotonic()
            results[name].append(measure(trees[name], work / f"{name}-{n}", database_url, args))
            print(f"round {n + 1}, {name}: {time.monotonic() - started:.0f} s", flush=True)
    return results


def table(results: dict[str, list[Measures]], labels: dict[str, str]) -> str:
    """Markdown: per measure, each tree's median over rounds with its range, and the ratio of
    the medians."""

    def median(name: str, measure: str) -> float:
        values = [r[measure] for r in results[name]]
        return math.nan if any(math.isnan(v) for v in values) else statistics.median(values)

    def cell(name: str, measure: str) -> str:
        values = [r[measure] for r in results[name]]
        if math.isnan(middle := median(name, measure)):
            return "n/a"
        return f"{middle:,.1f} ({min(values):,.1f}-{max(values):,.1f})"

    lines = [
        f"| measure: median of {len(results['before'])} rounds (range) | before "
        f"({labels['before']}) | after ({labels['after']}) | after / before |",
        "| --- | ---: | ---: | ---: |",
    ]
    for measure in results["before"][0]:
        ratio = median("after", measure) / median("before", measure)
        lines.append(
            f"| {measure} | {cell('before', measure)} | {cell('after', measure)} | "
            f"{'n/a' if math.isnan(ratio) else f'{ratio:.2f}'} |"
        )
    return "\n".join(lines)


async def measure_with_services(
    trees: dict[str, Path], work: Path, args: argparse.Namespace
) -> dict[str, list[Measures]]:
    async with local_services(work / "services") as services:
        await load_sample_bars(services.database_url)
        # In a thread: each round's MLflow server waits for readiness in an event loop of its
        # own.
        return await asyncio.to_thread(measure_rounds, trees, work, services.database_url, args)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--before", default="1cf147e", help="the commit before issue 18")
    parser.add_argument("--after", default="HEAD")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--samples", type=int, default=4, help="trials of the train search")
    parser.add_argument(
        "--epochs", type=int, default=4, help="most epochs a trial may train; evaluate's epochs"
    )
    parser.add_argument("--folds", type=int, default=2, help="walk-forward test windows")
    parser.add_argument("--test-size", type=int, default=250)
    args = parser.parse_args()

    labels = {
        name: _git("rev-parse", "--short", f"{revision}^{{commit}}")
        for name, revision in (("before", args.before), ("after", args.after))
    }
    with tempfile.TemporaryDirectory(prefix="finone-bench-retrain-") as tmp, ExitStack() as trees:
        work = Path(tmp)
        checked_out = {
            name: trees.enter_context(worktree(label, work / f"tree-{name}"))
            for name, label in labels.items()
        }
        results = asyncio.run(measure_with_services(checked_out, work, args))
    for name, label in labels.items():
        print(f"{name}: {label} {_git('log', '-1', '--format=%s', label)[:100]}")
    print(
        f"{os.cpu_count()} cpus; the four bundled stocks; {args.folds} folds of {args.test_size} "
        f"bars; evaluate: MLP and GRU, {args.epochs} epochs; train: {args.samples} samples of at "
        f"most {args.epochs} epochs, one CPU per trial"
    )
    print(table(results, labels))


if __name__ == "__main__":
    main()
