"""The retrain scheduler actor: triggered, it retrains once at a time and reports the gate's
decisions, and while it runs how far it is and for how long; without history it says what is
missing, a failed run says why, and a restarted scheduler starts afresh. ``finone status`` shows
its reports as they are made (``RetrainComponent.check``)."""

from __future__ import annotations

import contextlib
import dataclasses
import re
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import ray
from ray.exceptions import RayActorError

from actors.retrain_scheduler import RetrainReport, RetrainScheduler
from cluster.components.retrain import RetrainComponent
from cluster.sample_data import load_sample_bars
from core.model_signing import SIGNING_KEY_ENV
from tests.polling import wait_until
from tests.retraining import RUN_TIMEOUT_S, small_plan


@contextlib.asynccontextmanager
async def _triggered(
    database_url: str, mlflow_url: str, tmp_path: Path, **options: Any
) -> AsyncIterator[Any]:
    """A scheduler of IBM's daily bars (Ray ``options`` aside), asked for a run; killed after."""
    await load_sample_bars(database_url, ("IBM",))
    actor = RetrainScheduler.options(**options).remote(  # type: ignore[attr-defined]
        database_url, mlflow_url, small_plan(tmp_path, ("alpaca:IBM",))
    )
    try:
        assert (await actor.trigger.remote()).outcome == "started"
        yield actor
    finally:
        ray.kill(actor, no_restart=True)


def _no_run_in_progress(status: RetrainReport) -> bool:
    return (status.started_at, status.elapsed_s, status.progress) == (None, None, None)


async def _settled(actor: Any) -> RetrainReport:
    async def done() -> bool:
        return (await actor.status.remote()).state != "training"

    await wait_until(done, RUN_TIMEOUT_S, "the retraining to finish")
    status: RetrainReport = await actor.status.remote()
    return status


async def test_triggered_retraining_runs_once_at_a_time_and_reports_decisions(
    ray_cluster: None, database_url: str, mlflow_url: str, tmp_path: Path
) -> None:
    async with _triggered(database_url, mlflow_url, tmp_path) as actor:
        # One run at a time.
        again = await actor.trigger.remote()
        assert (again.outcome, again.report.state) == ("running", "training")

        status = await _settled(actor)

    assert status.state == "idle", status.detail
    assert status.runs == 1
    assert _no_run_in_progress(status), status
    assert status.last_run_duration_s is not None and status.last_run_duration_s > 0
    assert [d.model for d in status.decisions] == ["finone-returns", "finone-volatility"]
    assert all(d.alias in {"champion", "challenger"} for d in status.decisions)


async def test_plan_with_first_run_at_once_trains_unasked_and_reports_each_step(
    ray_cluster: None, database_url: str, mlflow_url: str, tmp_path: Path
) -> None:
    await load_sample_bars(database_url, ("IBM",))
    plan = dataclasses.replace(small_plan(tmp_path, ("alpaca:IBM",)), first_run_at_once=True)
    started = time.monotonic()
    actor = RetrainScheduler.remote(database_url, mlflow_url, plan)  # type: ignore[attr-defined]
    try:

        async def training() -> bool:
            status = await actor.status.remote()
            return status.state == "training"

        await wait_until(training, 20, "the first run to start")
        # Not the poll, which comes after 30 s.
        assert time.monotonic() - started < 25
        assert "(1d bars, first run)" in (await actor.status.remote()).detail

        # Each step overwrites the one before, and the two trials run side by side, so one
        # trial's report may last only a moment: every report is kept until the run ends.
        seen: set[str] = set()
        running: list[tuple[float, RetrainReport]] = []

        async def finished() -> bool:
            status = await actor.status.remote()
            seen.add(status.detail)
            if status.state == "training":
                running.append((time.time(), status))
            return bool(status.state != "training")

        await wait_until(finished, RUN_TIMEOUT_S, "the first run to finish")
        waited_s = time.monotonic() - started
        trials = {d for d in seen if re.search(r"trial [12]/2 \(.*\) done", d)}
        assert trials and all("(1d bars, first run)" in d for d in trials), seen

        # While it ran: one start, and an elapsed time that grew with the clock.
        [started_at] = {status.started_at for _, status in running}
        assert started_at is not None
        elapsed = [status.elapsed_s or 0.0 for _, status in running]
        assert elapsed == sorted(elapsed) and elapsed[-1] - elapsed[0] > 5, elapsed
        asked_at, first = running[0]
        assert abs((asked_at - started_at) - (first.elapsed_s or 0.0)) < 2
        # Its steps in order: the search's two trials, then the walk-forward's units (the
        # fold's baselines, the fold of each winner), each count moving up to its total, then
        # the final fits and gates (the gates take a moment: a poll may miss them).
        steps = [
            (status.progress.phase, status.progress.done, status.progress.total)
            for _, status in running
            if status.progress is not None
        ]
        assert running[0][1].progress is None  # before the first trial ended
        units = next(total for phase, _, total in steps if phase == "walk-forward")
        assert steps[0][0] == "search" and ("search", 2, 2) in steps, steps
        assert {("walk-forward", 1, units), ("walk-forward", units, units)} <= set(steps), steps
        order = ["search", "walk-forward", "final"]
        assert steps == sorted(steps, key=lambda s: (order.index(s[0]), s[1])), steps

        # `finone status` says the same while it ran.
        component = RetrainComponent()
        lines = {component.check(status).detail for _, status in running if status.progress}
        pattern = (
            r"training: search [12] of 2, (\d+m )?\d+s elapsed; running \(1d bars, first run\): "
        )
        assert any(re.match(pattern + r"trial [12]/2 \(", line) for line in lines), lines

        # Over: the run's progress is gone, its duration is there instead, from the same clock.
        status = await actor.status.remote()
        assert status.state == "idle" and _no_run_in_progress(status), status
        assert status.last_run_duration_s is not None
        assert elapsed[-1] <= status.last_run_duration_s <= waited_s, (elapsed, waited_s)
        check = component.check(status)
        assert check.ok
        assert re.fullmatch(
            r"idle: last run \w+ \(1d bars, first run\), took (\d+m )?\d+s; 1 run\(s\)",
            check.detail,
        ), check.detail
    finally:
        ray.kill(actor, no_restart=True)


async def test_retraining_without_history_waits_and_says_why(
    ray_cluster: None, database_url: str, mlflow_url: str, tmp_path: Path
) -> None:
    plan = small_plan(tmp_path, ("alpaca:NOPE",))
    actor = RetrainScheduler.remote(database_url, mlflow_url, plan)  # type: ignore[attr-defined]
    try:
        await actor.trigger.remote()
        status = await _settled(actor)
    finally:
        ray.kill(actor, no_restart=True)

    assert status.state == "waiting"
    assert "no 1d bars for alpaca:NOPE" in status.detail
    assert _no_run_in_progress(status) and status.last_run_duration_s is None, status


async def test_each_interval_is_retrained_in_turn_and_one_not_planned_is_refused(
    ray_cluster: None, database_url: str, mlflow_url: str, tmp_path: Path
) -> None:
    plan = dataclasses.replace(small_plan(tmp_path, ("alpaca:NOPE",)), intervals=("1m", "1d"))
    actor = RetrainScheduler.remote(database_url, mlflow_url, plan)  # type: ignore[attr-defined]
    try:
        refused = await actor.trigger.remote("1h")
        assert (refused.outcome, refused.report.runs) == ("not_retrained", 0)
        started = await actor.trigger.remote()
        assert (started.outcome, started.report.state) == ("started", "training")
        status = await _settled(actor)
        # Each interval got its turn, the last one's outcome is the state.
        assert (status.state, status.interval, status.intervals) == ("waiting", "1d", ["1m", "1d"])
        assert "not enough 1d history: no 1d bars for alpaca:NOPE" in status.detail, status
        assert (await actor.trigger.remote("1m")).outcome == "started"
        status = await _settled(actor)
        assert status.interval == "1m" and "no 1m bars for alpaca:NOPE" in status.detail, status
    finally:
        ray.kill(actor, no_restart=True)


async def test_retraining_that_fails_leaves_no_progress_and_says_why(
    ray_cluster: None, database_url: str, mlflow_url: str, tmp_path: Path
) -> None:
    # Without the model-signing key nothing trained could be registered: the run stops early.
    unsigned = {"env_vars": {SIGNING_KEY_ENV: ""}}
    async with _triggered(database_url, mlflow_url, tmp_path, runtime_env=unsigned) as actor:
        status = await _settled(actor)

    assert status.state == "failed"
    assert f"PlatformError: {SIGNING_KEY_ENV} is not set" in status.detail, status.detail
    assert _no_run_in_progress(status) and status.runs == 0, status
    check = RetrainComponent().check(status)
    assert not check.ok and check.detail.startswith(f"failed: PlatformError: {SIGNING_KEY_ENV}")


async def test_scheduler_restarted_during_a_run_starts_afresh(
    ray_cluster: None, database_url: str, mlflow_url: str, tmp_path: Path
) -> None:
    async with _triggered(database_url, mlflow_url, tmp_path) as actor:

        async def searching() -> bool:
            status = await actor.status.remote()
            return "searching" in status.detail

        await wait_until(searching, 60, "the run's search to start")
        ray.kill(actor, no_restart=False)

        async def restarted() -> bool:
            try:
                status = await actor.status.remote()
            except RayActorError:  # the killed process, or its replacement not yet up
                return False
            return bool(status.detail == "restarted, no run since")

        await wait_until(restarted, 120, "the scheduler to come back")
        status = await actor.status.remote()

    # The run died with the process: nothing says it is still going.
    assert (status.state, status.runs, status.last_run_at) == ("waiting", 0, None), status
    assert _no_run_in_progress(status), status
