"""The recorder as a component of the stack: one recorder actor, deployed by ``finone up``."""

from __future__ import annotations

import time
from typing import Any

from actors.recorder import RECORDER_ACTOR_NAME, Recorder, RecorderReport
from cluster.components.named_actor import NamedActorComponent
from core.health import Check
from core.settings import Settings

__all__ = ["RecorderComponent"]


class RecorderComponent(NamedActorComponent[RecorderReport]):
    name = "recorder"
    actor_name = RECORDER_ACTOR_NAME
    actor_class = Recorder
    report_type = RecorderReport

    def actor_args(self, settings: Settings) -> tuple[Any, ...]:
        return settings.required_redis_url, settings.required_database_url

    def check(self, report: RecorderReport) -> Check:
        last = report.last_commit_ns
        since = (
            f"last commit {(time.time_ns() - last) / 1e9:.1f} s ago" if last else "no commit yet"
        )
        detail = (
            f"{report.streams} streams, {report.trades_written} trades written, "
            f"{report.errors} errors, {since}"
        )
        return Check(name=self.name, ok=report.running, detail=detail)
