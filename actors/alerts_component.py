"""The alert evaluator as a component of the stack, deployed by ``finone up``."""

from __future__ import annotations

from actors.alerts import ALERTS_ACTOR_NAME, AlertEvaluator
from cluster.components import RAY_NAMESPACE, named_actor_status, stop_named_actor
from cluster.health import Check
from cluster.settings import Settings

__all__ = ["AlertsComponent"]


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
            status = named_actor_status(ALERTS_ACTOR_NAME)
        except Exception as error:  # a missing or stuck actor is a status line, not a crash
            return [Check(name="alerts", ok=False, detail=f"no answer: {error}")]
        detail = (
            f"{status['waiting']} alerts waiting, {status['fired']} fired, "
            f"{status['errors']} errors"
        )
        return [Check(name="alerts", ok=status["running"], detail=detail)]

    def stop(self, settings: Settings) -> None:
        stop_named_actor(ALERTS_ACTOR_NAME)

    def urls(self, settings: Settings) -> dict[str, str]:
        return {}
