"""The retrain scheduler: one long-lived actor that retrains the forecasters on a schedule or
once enough new bars have arrived, one run at a time, and says what it is doing.

A run is ``training.pipeline.retrain`` (search, walk-forward judgement, MLflow, gate), made in
a worker thread so the actor keeps answering ``status`` and ``trigger`` meanwhile; the report
follows its steps (each trial of the search, each fold of the judgement) as a progress and in
its detail, with the time the run has taken so far.

Its state lives in the actor alone: restarted by Ray, it starts afresh, with no run in progress
(the one it was making died with it) and none counted.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import asyncpg
import msgspec
import ray
from ray.util.metrics import Counter, Gauge

from training.datasets import load_dataset
from training.errors import DatasetError
from training.evaluation import Step, WalkForward
from training.pipeline import retrain
from training.search import SearchSettings

__all__ = [
    "RETRAIN_ACTOR_NAME",
    "RetrainPlan",
    "RetrainScheduler",
    "RetrainReport",
    "RetrainProgress",
    "RetrainDecision",
    "RetrainState",
]

log = logging.getLogger(__name__)

RETRAIN_ACTOR_NAME = "retrain-scheduler"
_POLL_S = 30.0


@dataclass(frozen=True, slots=True)
class RetrainPlan:
    instruments: tuple[str, ...]
    interval: str
    every_s: float
    min_new_bars: int
    walk_forward: WalkForward
    search: SearchSettings
    storage: str
    # Look for history at once rather than after a poll: the demo, whose history is loaded at
    # start, then has its first champion within minutes.
    first_run_at_once: bool = False


RetrainState = Literal["waiting", "training", "idle", "failed"]


class RetrainDecision(msgspec.Struct, frozen=True, kw_only=True):
    """Where a run moved (or left) a registered model's alias, and why."""

    model: str
    version: str
    alias: str
    reason: str


class RetrainProgress(msgspec.Struct, frozen=True, kw_only=True):
    """The running retraining's latest step: ``done`` of ``total`` units of ``phase`` (the
    search's trials, then the walk-forward's units), ``unit`` the one finished last."""

    phase: str
    done: int
    total: int
    unit: str


class RetrainReport(msgspec.Struct, frozen=True, kw_only=True):
    state: RetrainState
    detail: str
    runs: int
    # When the last finished run ended, and how long it took.
    last_run_at: float | None
    last_run_duration_s: float | None
    decisions: list[RetrainDecision]
    instruments: list[str]
    # The run in progress (None outside one): when it started, how long it has been going when
    # the report was made, and its latest step (None until its first step ends).
    started_at: float | None
    elapsed_s: float | None
    progress: RetrainProgress | None


@ray.remote(max_restarts=-1, num_cpus=0.1)
class RetrainScheduler:
    def __init__(self, database_url: str, tracking_uri: str, plan: RetrainPlan) -> None:
        self._database_url = database_url
        self._tracking_uri = tracking_uri
        self._plan = plan
        self._state: RetrainState = "waiting"
        restarted = ray.get_runtime_context().was_current_actor_reconstructed
        self._detail = "restarted, no run since" if restarted else "no run yet"
        self._runs = 0
        self._last_run_at: float | None = None
        self._last_run_duration_s: float | None = None
        self._started_at: float | None = None
        self._progress: RetrainProgress | None = None
        self._bars_at_last_run = 0
        self._last_decisions: list[RetrainDecision] = []
        self._running: asyncio.Task[None] | None = None
        self._runs_metric = Counter(
            "finone_retrain_runs", "Retraining runs ended, per outcome", ("outcome",)
        )
        self._running_metric = Gauge("finone_retrain_running", "1 while a retraining runs")
        self._running_metric.set(0)
        self._last_run_metric = Gauge(
            "finone_retrain_last_run_timestamp_seconds",
            "Unix time the last finished retraining ended",
        )
        self._loop = asyncio.get_running_loop().create_task(self._watch())

    async def status(self) -> RetrainReport:
        return RetrainReport(
            state=self._state,
            detail=self._detail,
            runs=self._runs,
            last_run_at=self._last_run_at,
            last_run_duration_s=self._last_run_duration_s,
            decisions=self._last_decisions,
            instruments=list(self._plan.instruments),
            started_at=self._started_at,
            elapsed_s=None if self._started_at is None else time.time() - self._started_at,
            progress=self._progress,
        )

    async def trigger(self) -> bool:
        """Start a run now; False when one is already running."""
        if self._running is not None and not self._running.done():
            return False
        self._running = asyncio.get_running_loop().create_task(self._run("requested"))
        return True

    async def _watch(self) -> None:
        wait_s = 0.0 if self._plan.first_run_at_once else _POLL_S
        while True:
            await asyncio.sleep(wait_s)
            wait_s = _POLL_S
            if self._running is not None and not self._running.done():
                continue
            try:
                bars = await self._bar_count()
            except (OSError, asyncpg.PostgresError) as error:
                self._detail = f"cannot count bars: {type(error).__name__}"
                continue
            due = self._last_run_at is None or time.time() - self._last_run_at >= self._plan.every_s
            fresh = bars - self._bars_at_last_run >= self._plan.min_new_bars
            if bars and (due or fresh):
                if self._last_run_at is None:
                    reason = "first run"
                elif due:
                    reason = "schedule"
                else:
                    reason = f"{bars - self._bars_at_last_run} new bars"
                self._running = asyncio.get_running_loop().create_task(self._run(reason))

    async def _bar_count(self) -> int:
        conn = await asyncpg.connect(self._database_url)
        try:
            count: int = await conn.fetchval(
                "SELECT count(*) FROM bars WHERE instrument_id = ANY($1) AND interval = $2",
                list(self._plan.instruments),
                self._plan.interval,
            )
        finally:
            await conn.close()
        return count

    async def _run(self, reason: str) -> None:
        self._running_metric.set(1)
        try:
            outcome = await self._retrain(reason)
        finally:
            self._running_metric.set(0)
        self._runs_metric.inc(tags={"outcome": outcome})

    async def _retrain(self, reason: str) -> Literal["finished", "failed", "waiting_for_data"]:
        plan = self._plan
        started_at = time.time()
        self._state, self._detail = "training", f"started ({reason})"
        self._started_at, self._progress = started_at, None
        try:
            bars = await self._bar_count()
            table = await load_dataset(self._database_url, list(plan.instruments), plan.interval)
            self._detail = f"started ({reason}): searching {plan.search.samples} configurations"

            def progress(step: Step) -> None:
                # Called from the run's thread; the report reads whatever was written last.
                self._progress = RetrainProgress(
                    phase=step.phase, done=step.done, total=step.total, unit=step.unit
                )
                self._detail = f"running ({reason}): {step.unit} done"

            result = await asyncio.to_thread(
                retrain,
                table,
                plan.interval,
                plan.walk_forward,
                plan.search,
                self._tracking_uri,
                "finone-forecasters",
                Path(plan.storage),
                progress,
            )
        except DatasetError as error:
            self._state, self._detail = "waiting", f"not enough history: {error}"
            return "waiting_for_data"
        except Exception as error:  # a failed run is a state to report, never the actor's end
            log.exception("retraining failed")
            self._state, self._detail = "failed", f"{type(error).__name__}: {error}"
            return "failed"
        finally:
            # However it ended, it no longer runs: its progress must not outlive it.
            self._started_at, self._progress = None, None
        self._runs += 1
        self._last_run_at = time.time()
        self._last_run_duration_s = self._last_run_at - started_at
        self._bars_at_last_run = bars
        self._last_decisions = [
            RetrainDecision(model=d.name, version=d.version, alias=d.alias, reason=d.reason)
            for d in result.decisions
        ]
        self._last_run_metric.set(self._last_run_at)
        self._state, self._detail = "idle", f"last run {result.run_id} ({reason})"
        return "finished"
