"""The scaffold of a component that is one named, detached actor: deploy it once (a second
``finone up`` finds it running), read its typed report for health, stop it, offer no URLs.

Detached: Ray would collect a non-detached actor as soon as the deploying handle went out of
scope, and ``stop`` ends it explicitly.
"""

from __future__ import annotations

import logging
from typing import Any, ClassVar, Generic, TypeVar

import ray

from core.health import Check
from core.named_actors import RAY_NAMESPACE, actor_report, named_actor
from core.settings import Settings

__all__ = ["NamedActorComponent"]

log = logging.getLogger(__name__)

_SHUTDOWN_TIMEOUT_S = 15.0

Report = TypeVar("Report")


class NamedActorComponent(Generic[Report]):
    name: ClassVar[str]
    actor_name: ClassVar[str]
    actor_class: ClassVar[Any]
    report_type: type[Report]
    # False for an actor whose shutdown would wait on work that may run for minutes.
    graceful_stop: ClassVar[bool] = True

    def actor_args(self, settings: Settings) -> tuple[Any, ...]:
        raise NotImplementedError

    def actor_options(self, settings: Settings) -> dict[str, Any]:
        """Ray options besides the name and lifetime, such as where the actor must run."""
        return {}

    def check(self, report: Report) -> Check:
        raise NotImplementedError

    def deploy(self, settings: Settings) -> None:
        self.actor_class.options(
            name=self.actor_name,
            namespace=RAY_NAMESPACE,
            get_if_exists=True,
            lifetime="detached",
            **self.actor_options(settings),
        ).remote(*self.actor_args(settings))

    def health(self, settings: Settings) -> list[Check]:
        try:
            report = actor_report(self.actor_name, self.report_type)
        except Exception as error:  # a missing or stuck actor is a status line, not a crash
            return [Check(name=self.name, ok=False, detail=f"no answer: {error}")]
        return [self.check(report)]

    def stop(self, settings: Settings) -> None:
        try:
            actor = named_actor(self.actor_name)
        except ValueError:
            return
        if self.graceful_stop:
            try:
                ray.get(actor.shutdown.remote(), timeout=_SHUTDOWN_TIMEOUT_S)
            except Exception as error:  # it is killed below either way
                log.warning("%s did not shut down cleanly: %s", self.actor_name, error)
        ray.kill(actor, no_restart=True)

    def urls(self, settings: Settings) -> dict[str, str]:
        return {}
