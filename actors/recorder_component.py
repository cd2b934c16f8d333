"""The recorder as a component of the stack: one recorder actor, deployed by ``finone up``."""

from __future__ import annotations

import time

from actors.recorder import RECORDER_ACTOR_NAME, Recorder
from cluster.components import RAY_NAMESPACE, named_actor_status, stop_named_actor
from cluster.health import Check
from cluster.settings import Settings

__all__ = ["RecorderComponent"]


class RecorderComponent:
    name = "recorder"

    def deploy(self, settings: Settings) -> None:
        assert settings.redis_url and settings.database_url
        Recorder.options(  # type: ignore[attr-defined]
            name=RECORDER_ACTOR_NAME,
            namespace=RAY_NAMESPACE,
            get_if_exists=True,
            lifetime="detached",
        ).remote(settings.redis_url, settings.database_url)

    def health(self, settings: Settings) -> list[Check]:
        try:
            status = named_actor_status(RECORDER_ACTOR_NAME)
        except Exception as error:  # a missing or stuck actor is a status line, not a crash
            return [Check(name="recorder", ok=False, detail=f"no answer: {error}")]
        last = status["last_commit_ns"]
        since = (
            f"last commit {(time.time_ns() - last) / 1e9:.1f} s ago" if last else "no commit yet"
        )
        detail = (
            f"{status['streams']} streams, {status['trades_written']} trades written, "
            f"{status['errors']} errors, {since}"
        )
        return [Check(name="recorder", ok=status["running"], detail=detail)]

    def stop(self, settings: Settings) -> None:
        stop_named_actor(RECORDER_ACTOR_NAME)

    def urls(self, settings: Settings) -> dict[str, str]:
        return {}
