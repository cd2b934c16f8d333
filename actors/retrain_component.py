"""The retrain scheduler as a component of the stack, deployed by ``finone up``."""

from __future__ import annotations

from actors.retrain_scheduler import RETRAIN_ACTOR_NAME, RetrainPlan, RetrainScheduler
from cluster.components import RAY_NAMESPACE, named_actor_status, stop_named_actor
from cluster.health import Check
from cluster.settings import Settings
from training.evaluation import WalkForward
from training.search import SearchSettings

__all__ = ["RetrainComponent", "retrain_plan"]


def retrain_plan(settings: Settings) -> RetrainPlan:
    return RetrainPlan(
        instruments=tuple(settings.retrain_instruments),
        interval=settings.retrain_interval,
        every_s=settings.retrain_every_s,
        min_new_bars=settings.retrain_min_new_bars,
        walk_forward=WalkForward(),
        search=SearchSettings(
            samples=settings.retrain_samples,
            max_epochs=settings.retrain_epochs,
            cpus_per_trial=settings.retrain_cpus_per_trial,
        ),
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
            status = named_actor_status(RETRAIN_ACTOR_NAME)
        except Exception as error:  # a missing or stuck actor is a status line, not a crash
            return [Check(name="retrain", ok=False, detail=f"no answer: {error}")]
        detail = f"{status['state']}: {status['detail']}; {status['runs']} run(s)"
        return [Check(name="retrain", ok=status["state"] != "failed", detail=detail)]

    def stop(self, settings: Settings) -> None:
        stop_named_actor(RETRAIN_ACTOR_NAME, graceful=False)

    def urls(self, settings: Settings) -> dict[str, str]:
        return {}
