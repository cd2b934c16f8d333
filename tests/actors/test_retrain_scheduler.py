"""The retrain scheduler actor: triggered, it retrains once at a time and reports the gate's
decisions; without history it says what is missing."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import ray

from actors.retrain_scheduler import RetrainPlan, RetrainScheduler
from tests.polling import wait_until
from training.evaluation import WalkForward
from training.sample_data import load_sample_bars
from training.search import SearchSettings


def _plan(tmp_path: Path, instruments: tuple[str, ...]) -> RetrainPlan:
    return RetrainPlan(
        instruments=instruments,
        interval="1d",
        every_s=86_400,
        min_new_bars=10_000,
        walk_forward=WalkForward(folds=1, test_size=150, min_train=400),
        search=SearchSettings(samples=2, max_epochs=2, grace_epochs=1, cpus_per_trial=0.5),
        storage=str(tmp_path),
    )


async def _settled(actor: Any) -> dict[str, Any]:
    async def done() -> bool:
        return (await actor.status.remote())["state"] != "training"

    await wait_until(done, 240, "the retraining to finish")
    status: dict[str, Any] = await actor.status.remote()
    return status


async def test_triggered_retraining_runs_once_at_a_time_and_reports_decisions(
    ray_cluster: None, database_url: str, mlflow_url: str, tmp_path: Path
) -> None:
    await load_sample_bars(database_url, ("IBM",))
    actor = RetrainScheduler.remote(database_url, mlflow_url, _plan(tmp_path, ("alpaca:IBM",)))  # type: ignore[attr-defined]
    try:
        assert await actor.trigger.remote() is True
        assert await actor.trigger.remote() is False  # one run at a time

        status = await _settled(actor)

        assert status["state"] == "idle", status["detail"]
        assert status["runs"] == 1
        assert [d["model"] for d in status["decisions"]] == ["finone-returns", "finone-volatility"]
        assert all(d["alias"] in {"champion", "challenger"} for d in status["decisions"])
    finally:
        ray.kill(actor, no_restart=True)


async def test_retraining_without_history_waits_and_says_why(
    ray_cluster: None, database_url: str, mlflow_url: str, tmp_path: Path
) -> None:
    actor = RetrainScheduler.remote(database_url, mlflow_url, _plan(tmp_path, ("alpaca:NOPE",)))  # type: ignore[attr-defined]
    try:
        await actor.trigger.remote()
        status = await _settled(actor)
    finally:
        ray.kill(actor, no_restart=True)

    assert status["state"] == "waiting"
    assert "no 1d bars for alpaca:NOPE" in status["detail"]
