"""A retraining small enough for a test: its plan, and how long a run of it may take here."""

from __future__ import annotations

from pathlib import Path

from actors.retrain_scheduler import RetrainPlan
from training.evaluation import WalkForward
from training.search import SearchSettings

__all__ = ["RUN_TIMEOUT_S", "small_plan"]

# On 2 cores shared with the rest of the suite: a minute of search and judging, then minutes of
# final fitting and MLflow logging (7.5 min seen with the cores busy four times over).
RUN_TIMEOUT_S = 600


def small_plan(tmp_path: Path, instruments: tuple[str, ...]) -> RetrainPlan:
    """Two trials of at most two epochs, judged on one walk-forward fold."""
    return RetrainPlan(
        instruments=instruments,
        intervals=("1d",),
        every_s=86_400,
        min_new_bars=10_000,
        walk_forward=WalkForward(folds=1, test_size=150, min_train=400),
        search=SearchSettings(samples=2, max_epochs=2, grace_epochs=1, cpus_per_trial=0.5),
        storage=str(tmp_path),
    )
