"""The alert evaluator as a component of the stack, deployed by ``finone up``."""

from __future__ import annotations

import logging

import ray

from actors.alerts import ALERTS_ACTOR_NAME, AlertEvaluator
from cluster.components import RAY_NAMESPACE
from cluster.health import Check
from cluster.settings import Settings

__all__ = ["AlertsComponent"]

log = logging.getLogger(__name__)
STATUS_TIMEOUT_S = 5.0


class AlertsComponent:
    name = "alerts"

    def deploy(self, settings: Settings) -> None:
        assert settings.redis_url and settings.database_url
        AlertEvaluator.options(  # type: ignore[attr-defined]
            name=ALERTS_ACTOR_NAME,
            namespace=RAY_NAMESPACE,
            get_if_exists=True,
            lifetime="detached",
        ).remote(settings.redis_url, settings.database_url)

    def health(self, settings: Settings) -> list[Check]:
        try:
            actor = ray.get_actor(ALERTS_ACTOR_NAME, namespace=RAY_NAMESPACE)
            status = ray.get(actor.status.remote(), timeout=STATUS_TIMEOUT_S)
        except Exception as error:  # a missing or stuck actor is a status line, not a crash
            return [Check(name="alerts", ok=False, detail=f"no answer: {error}")]
        detail = (
            f"{status['waiting']} alerts waiting, {status['fired']} fired, "
            f"{status['errors']} errors"
        )
        return [Check(name="alerts", ok=status["running"], detail=detail)]

    def stop(self, settings: Settings) -> None:
        try:
            actor = ray.get_actor(ALERTS_ACTOR_NAME, namespace=RAY_NAMESPACE)
        except ValueError:
            return
        try:
            ray.get(actor.shutdown.remote(), timeout=15)
        except Exception as error:
            log.warning("the alert evaluator did not shut down cleanly: %s", error)
        ray.kill(actor, no_restart=True)

    def urls(self, settings: Settings) -> dict[str, str]:
        return {}
