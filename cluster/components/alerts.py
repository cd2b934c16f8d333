"""The alert evaluator as a component of the stack, deployed by ``finone up``."""

from __future__ import annotations

from typing import Any

from actors.alerts import ALERTS_ACTOR_NAME, AlertEvaluator, AlertsReport
from cluster.components.named_actor import NamedActorComponent
from core.health import Check
from core.settings import Settings

__all__ = ["AlertsComponent"]


class AlertsComponent(NamedActorComponent[AlertsReport]):
    name = "alerts"
    actor_name = ALERTS_ACTOR_NAME
    actor_class = AlertEvaluator
    report_type = AlertsReport

    def actor_args(self, settings: Settings) -> tuple[Any, ...]:
        return settings.required_redis_url, settings.required_database_url

    def check(self, report: AlertsReport) -> Check:
        detail = f"{report.waiting} alerts waiting, {report.fired} fired, {report.errors} errors"
        return Check(name=self.name, ok=report.running, detail=detail)
