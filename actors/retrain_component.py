"""The retrain scheduler as a component of the stack, deployed by ``finone up``."""

from __future__ import annotations

import logging

import ray

from actors.retrain_scheduler import RETRAIN_ACTOR_NAME, RetrainPlan, RetrainScheduler
from cluster.components import RAY_NAMESPACE
from cluster.health import Check
from cluster.settings import Settings
from training.evaluation import WalkForward
from training.search import SearchSettings

__all__ = ["RetrainComponent", "retrain_plan"]

log = logging.getLogger(__name__)
STATUS_TIMEOUT_S = 5.0


def retrain_plan(settings: Settings) -> RetrainPlan:
    return RetrainPlan(
        instruments=tuple(settings.retrain_instruments),
        interval=settings.retrain_interval,
        every_s=settings.retrain_every_s,
        min_new_bars=settings.retrain_min_new_bars,
        walk_forward=WalkForward(),
        search=SearchSettings(samples=settings.retrain_samples, max_epochs=settings.retrain_epochs),
        storage=str(settings.data_path / "tune"),
    )


class RetrainComponent:
    name = "retrain"

    def deploy(self, settings: Settings) -> None:
        assert settings.database_url and settings.mlflow_tracking_uri
        RetrainScheduler.options(  # type: ignore[attr-defined]
            name=RETRAIN_ACTOR_NAME,
            namespace=RAY_NAMESPACE,
            get_if_exists=True,
            lifetime="detached",
        ).remote(settings.database_url, settings.mlflow_tracking_uri, retrain_plan(settings))

    def health(self, settings: Settings) -> list[Check]:
        try:
            actor = ray.get_actor(RETRAIN_ACTOR_NAME, namespace=RAY_NAMESPACE)
            status = ray.get(actor.status.remote(), timeout=STATUS_TIMEOUT_S)
        except Exception as error:  # a missing or stuck actor is a status line, not a crash
            return [Check(name="retrain", ok=False, detail=f"no answer: {error}")]
        detail = f"{status['state']}: {status['detail']}; {status['runs']} run(s)"
        return [Check(name="retrain", ok=status["state"] != "failed", detail=detail)]

    def stop(self, settings: Settings) -> None:
        try:
            actor = ray.get_actor(RETRAIN_ACTOR_NAME, namespace=RAY_NAMESPACE)
        except ValueError:
            return
        ray.kill(actor, no_restart=True)

    def urls(self, settings: Settings) -> dict[str, str]:
        return {}
