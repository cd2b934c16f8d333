"""Operators see and start retraining over HTTP; users cannot."""

from __future__ import annotations

import asyncio
from pathlib import Path

import ray

from actors.retrain_scheduler import RETRAIN_ACTOR_NAME, RetrainPlan, RetrainScheduler
from cluster.sample_data import load_sample_bars
from core.named_actors import RAY_NAMESPACE
from core.settings import Settings
from tests.polling import wait_until
from tests.serve.auth_api import AuthApi, Session
from training.evaluation import WalkForward
from training.search import SearchSettings


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
    plan = RetrainPlan(
        instruments=("alpaca:IBM",),
        interval="1d",
        every_s=86_400,
        min_new_bars=10_000,
        walk_forward=WalkForward(folds=1, test_size=150, min_train=400),
        search=SearchSettings(samples=2, max_epochs=2, grace_epochs=1, cpus_per_trial=0.5),
        storage=str(tmp_path),
    )
    actor = RetrainScheduler.options(  # type: ignore[attr-defined]
        name=RETRAIN_ACTOR_NAME, namespace=RAY_NAMESPACE, lifetime="detached"
    ).remote(gateway_settings.database_url, mlflow_url, plan)
    try:
        # Up, as `finone up` leaves it: constructing it imports the training stack (seconds).
        await asyncio.wait_for(actor.status.remote(), 120)
        forbidden = await auth_api.http.post(url, headers=user.headers)
        started = await auth_api.http.post(url, headers=operator.headers)
        again = await auth_api.http.post(url, headers=operator.headers)

        assert forbidden.status_code == 403
        assert started.status_code == 202 and started.json()["state"] == "training"
        assert (again.status_code, again.json()["code"]) == (409, "retrain_running")

        async def finished() -> bool:
            status = (await auth_api.http.get(url, headers=operator.headers)).json()
            return bool(status["state"] != "training")

        await wait_until(finished, 240, "the retraining to finish")
        status = (await auth_api.http.get(url, headers=operator.headers)).json()
        assert status["state"] == "idle" and status["runs"] == 1, status
        assert {d["model"] for d in status["decisions"]} == {"finone-returns", "finone-volatility"}
    finally:
        ray.kill(actor, no_restart=True)
