"""The retrain scheduler actor: triggered, it retrains once at a time and reports the gate's
decisions; without history it says what is missing."""

from __future__ import annotations

import dataclasses
import re
import time
from pathlib import Path
from typing import Any

import ray

from actors.retrain_scheduler import RetrainPlan, RetrainReport, RetrainScheduler
from cluster.sample_data import load_sample_bars
from tests.polling import wait_until
from training.evaluation import WalkForward
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


async def _settled(actor: Any) -> RetrainReport:
    async def done() -> bool:
        return (await actor.status.remote()).state != "training"

    await wait_until(done, 240, "the retraining to finish")
    status: RetrainReport = await actor.status.remote()
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

        assert status.state == "idle", status.detail
        assert status.runs == 1
        assert [d.model for d in status.decisions] == ["finone-returns", "finone-volatility"]
        assert all(d.alias in {"champion", "challenger"} for d in status.decisions)
    finally:
        ray.kill(actor, no_restart=True)


async def test_plan_with_first_run_at_once_trains_unasked_and_reports_each_step(
    ray_cluster: None, database_url: str, mlflow_url: str, tmp_path: Path
) -> None:
    await load_sample_bars(database_url, ("IBM",))
    plan = dataclasses.replace(_plan(tmp_path, ("alpaca:IBM",)), first_run_at_once=True)
    started = time.monotonic()
    actor = RetrainScheduler.remote(database_url, mlflow_url, plan)  # type: ignore[attr-defined]
    try:

        async def training() -> bool:
            status = await actor.status.remote()
            return status.state == "training"

        await wait_until(training, 20, "the first run to start")
        # Not the poll, which comes after 30 s.
        assert time.monotonic() - started < 25
        assert "(first run)" in (await actor.status.remote()).detail

        # Each step overwrites the one before, and the two trials run side by side, so one
        # trial's report may last only a moment: every report is kept until the run ends.
        seen: set[str] = set()

        async def finished() -> bool:
            status = await actor.status.remote()
            seen.add(status.detail)
            return bool(status.state != "training")

        await wait_until(finished, 240, "the first run to finish")
        assert (await actor.status.remote()).state == "idle", seen
        trials = {d for d in seen if re.search(r"trial [12]/2 \(.*\) done", d)}
        assert trials and all("(first run)" in d for d in trials), seen
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

    assert status.state == "waiting"
    assert "no 1d bars for alpaca:NOPE" in status.detail
