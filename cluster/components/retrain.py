"""The retrain scheduler as a component of the stack, deployed by ``finone up``."""

from __future__ import annotations

from typing import Any

from actors.retrain_scheduler import (
    RETRAIN_ACTOR_NAME,
    RetrainPlan,
    RetrainReport,
    RetrainScheduler,
)
from cluster.components.named_actor import NamedActorComponent
from cluster.sample_data import SAMPLE_INSTRUMENTS, SAMPLE_INTERVAL
from cluster.service_urls import training_env
from core.health import Check
from core.settings import Settings
from training.evaluation import WalkForward
from training.search import SearchSettings

__all__ = ["RetrainComponent", "retrain_plan"]


def retrain_plan(settings: Settings) -> RetrainPlan:
    """What the scheduler trains on. The demo loads the bundled stock history at start and
    trains on it at once, with a search small enough for a first champion within minutes."""
    demo = settings.demo
    return RetrainPlan(
        instruments=SAMPLE_INSTRUMENTS if demo else tuple(settings.retrain_instruments),
        intervals=(SAMPLE_INTERVAL,) if demo else tuple(settings.retrain_intervals),
        every_s=settings.retrain_every_s,
        min_new_bars=settings.retrain_min_new_bars,
        walk_forward=WalkForward(),
        search=SearchSettings(
            samples=settings.demo_retrain_samples if demo else settings.retrain_samples,
            max_epochs=settings.demo_retrain_epochs if demo else settings.retrain_epochs,
            cpus_per_trial=settings.retrain_cpus_per_trial,
        ),
        storage=str(settings.data_path / "tune"),
        first_run_at_once=demo,
    )


class RetrainComponent(NamedActorComponent[RetrainReport]):
    name = "retrain"
    actor_name = RETRAIN_ACTOR_NAME
    actor_class = RetrainScheduler
    report_type = RetrainReport
    # It holds no connection between runs and has no shutdown; a run in progress ends with it.
    graceful_stop = False

    def actor_args(self, settings: Settings) -> tuple[Any, ...]:
        return (
            settings.required_database_url,
            settings.required_mlflow_tracking_uri,
            retrain_plan(settings),
        )

    def actor_options(self, settings: Settings) -> dict[str, Any]:
        # Tune's trials are Ray actors the scheduler starts: they inherit this environment.
        return {"runtime_env": {"env_vars": training_env(settings)}}

    def check(self, report: RetrainReport) -> Check:
        """For ``finone status``: the state, how far a run is and how long it has taken (or how
        long the last one took), the detail in words, the runs made."""
        detail = report.detail
        if report.elapsed_s is not None:
            step = report.progress
            counts = "" if step is None else f"{step.phase} {step.done} of {step.total}, "
            detail = f"{counts}{_duration(report.elapsed_s)} elapsed; {detail}"
        elif report.state == "idle" and report.last_run_duration_s is not None:
            detail = f"{detail}, took {_duration(report.last_run_duration_s)}"
        detail = f"{report.state}: {detail}; {report.runs} run(s)"
        return Check(name=self.name, ok=report.state != "failed", detail=detail)


def _duration(seconds: float) -> str:
    """``45s``, ``1m 12s``, ``2h 05m``: to the second while minutes matter, then the minute."""
    minutes, secs = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    if hours:
        return f"{hours}h {minutes:02d}m"
    return f"{minutes}m {secs:02d}s" if minutes else f"{secs}s"
