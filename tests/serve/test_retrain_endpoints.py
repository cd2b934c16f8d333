"""Operators see and start retraining over HTTP, and follow a run's steps and clock; users
cannot."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import ray

from actors.retrain_scheduler import RETRAIN_ACTOR_NAME, RetrainScheduler
from cluster.sample_data import load_sample_bars
from core.named_actors import RAY_NAMESPACE
from core.settings import Settings
from tests.polling import wait_until
from tests.retraining import RUN_TIMEOUT_S, small_plan
from tests.serve.auth_api import AuthApi, Session


async def test_operator_starts_a_retraining_and_follows_it(
    auth_api: AuthApi,
    user: Session,
    operator: Session,
    gateway_settings: Settings,
    mlflow_url: str,
    tmp_path: Path,
) -> None:
    url = f"{auth_api.url}/v1/ops/retrain"
    missing = await auth_api.http.get(url, headers=operator.headers)
    assert (missing.status_code, missing.json()["code"]) == (503, "retrain_unavailable")

    assert gateway_settings.database_url
    await load_sample_bars(gateway_settings.database_url, ("IBM",))
    actor = RetrainScheduler.options(  # type: ignore[attr-defined]
        name=RETRAIN_ACTOR_NAME, namespace=RAY_NAMESPACE, lifetime="detached"
    ).remote(gateway_settings.database_url, mlflow_url, small_plan(tmp_path, ("alpaca:IBM",)))
    try:
        # Up, as `finone up` leaves it: constructing it imports the training stack (seconds).
        await asyncio.wait_for(actor.status.remote(), 120)
        forbidden = await auth_api.http.post(url, headers=user.headers)
        not_retrained = await auth_api.http.post(f"{url}?interval=1m", headers=operator.headers)
        no_interval = await auth_api.http.post(f"{url}?interval=2d", headers=operator.headers)
        started = await auth_api.http.post(f"{url}?interval=1d", headers=operator.headers)
        again = await auth_api.http.post(url, headers=operator.headers)

        assert forbidden.status_code == 403
        assert (not_retrained.status_code, not_retrained.json()["code"]) == (
            404,
            "interval_not_retrained",
        )
        assert no_interval.status_code == 422
        assert started.status_code == 202 and started.json()["state"] == "training"
        assert (started.json()["interval"], started.json()["intervals"]) == ("1d", ["1d"])
        assert started.json()["started_at"] is not None and started.json()["progress"] is None
        assert (again.status_code, again.json()["code"]) == (409, "retrain_running")

        running: list[dict[str, Any]] = []

        async def finished() -> bool:
            status = (await auth_api.http.get(url, headers=operator.headers)).json()
            if status["state"] == "training":
                running.append(status)
            return bool(status["state"] != "training")

        await wait_until(finished, RUN_TIMEOUT_S, "the retraining to finish")
        status = (await auth_api.http.get(url, headers=operator.headers)).json()
        assert status["state"] == "idle" and status["runs"] == 1, status
        assert {d["model"] for d in status["decisions"]} == {"finone-returns", "finone-volatility"}

        # While it ran, its clock went on and its counts moved from the search's trials to the
        # walk-forward's units, then the final fits and gates; after it, how long it took.
        assert {s["started_at"] for s in running} == {started.json()["started_at"]}
        elapsed = [s["elapsed_s"] for s in running]
        assert elapsed == sorted(elapsed) and elapsed[-1] > elapsed[0], elapsed
        steps = [
            (s["progress"]["phase"], s["progress"]["done"], s["progress"]["total"])
            for s in running
            if s["progress"] is not None
        ]
        units = next(total for phase, _, total in steps if phase == "walk-forward")
        assert ("search", 2, 2) in steps and ("walk-forward", units, units) in steps, steps
        order = ["search", "walk-forward", "final"]
        assert steps == sorted(steps, key=lambda s: (order.index(s[0]), s[1])), steps
        assert (status["started_at"], status["elapsed_s"], status["progress"]) == (None, None, None)
        assert elapsed[-1] <= status["last_run_duration_s"], (elapsed, status)
    finally:
        ray.kill(actor, no_restart=True)
