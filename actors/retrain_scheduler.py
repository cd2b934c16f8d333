"""The retrain scheduler: one long-lived actor that retrains the forecasters of each bar
interval it is given (daily, and intraday on the recorder's bars) on a schedule or once enough
new bars of that interval have arrived, one run at a time, and says what it is doing.

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
    "TriggerReply",
]

log = logging.getLogger(__name__)

RETRAIN_ACTOR_NAME = "retrain-scheduler"
_POLL_S = 30.0


@dataclass(frozen=True, slots=True)
class RetrainPlan:
    instruments: tuple[str, ...]
    # Each retrained on its own bars, into models of its own (training.registry.model_name).
    intervals: tuple[str, ...]
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
    # The latest run's decisions of every interval, in ``intervals``' order.
    decisions: list[RetrainDecision]
    instruments: list[str]
    intervals: list[str]
    # The interval of the run in progress, else of the last one that ended; None before any.
    interval: str | None
    # The run in progress (None outside one): when it started, how long it has been going when
    # the report was made, and its latest step (None until its first step ends).
    started_at: float | None
    elapsed_s: float | None
    progress: RetrainProgress | None


class TriggerReply(msgspec.Struct, frozen=True, kw_only=True):
    """One call's answer to "retrain now": whether it started, and the report after it."""

    outcome: Literal["started", "running", "not_retrained"]
    report: RetrainReport


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
        self._interval: str | None = None
        self._started_at: float | None = None
        self._progress: RetrainProgress | None = None
        # interval -> when its last run ended, the bars it counted then, the run's decisions.
        self._ended_at: dict[str, float] = {}
        self._bars_at_last_run: dict[str, int] = {}
        self._decisions: dict[str, list[RetrainDecision]] = {}
        self._running: asyncio.Task[None] | None = None
        self._runs_metric = Counter(
            "finone_retrain_runs",
            "Retraining runs ended, per outcome and bar interval",
            ("outcome", "interval"),
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
            decisions=[d for i in self._plan.intervals for d in self._decisions.get(i, [])],
            instruments=list(self._plan.instruments),
            intervals=list(self._plan.intervals),
            interval=self._interval,
            started_at=self._started_at,
            elapsed_s=None if self._started_at is None else time.time() - self._started_at,
            progress=self._progress,
        )

    async def trigger(self, interval: str | None = None) -> TriggerReply:
        """Retrain ``interval`` now, or every interval in turn, unless a run is going or the
        plan does not retrain that interval; says which, with the report after it."""
        if interval is not None and interval not in self._plan.intervals:
            return TriggerReply(outcome="not_retrained", report=await self.status())
        if self._running is not None and not self._running.done():
            return TriggerReply(outcome="running", report=await self.status())
        intervals = self._plan.intervals if interval is None else (interval,)
        self._running = asyncio.get_running_loop().create_task(
            self._run_each(intervals, "requested")
        )
        # One turn of the loop: the run has said what it trains before the report is taken.
        await asyncio.sleep(0)
        return TriggerReply(outcome="started", report=await self.status())

    async def _watch(self) -> None:
        wait_s = 0.0 if self._plan.first_run_at_once else _POLL_S
        while True:
            await asyncio.sleep(wait_s)
            wait_s = _POLL_S
            if self._running is not None and not self._running.done():
                continue
            try:
                due = await self._due()
            except (OSError, asyncpg.PostgresError) as error:
                self._detail = f"cannot count bars: {type(error).__name__}"
                continue
            if due is not None:
                self._running = asyncio.get_running_loop().create_task(self._run_each(*due))

    async def _due(self) -> tuple[tuple[str], str] | None:
        """The first interval whose run is due, with why; None when none is. An interval whose
        history was too short waits for ``min_new_bars`` more before it is tried again."""
        now = time.time()
        for interval in self._plan.intervals:
            bars = await self._bar_count(interval)
            counted = self._bars_at_last_run.get(interval)
            ended_at = self._ended_at.get(interval)
            if not bars:
                continue
            if counted is None:
                return (interval,), "first run"
            if ended_at is not None and now - ended_at >= self._plan.every_s:
                return (interval,), "schedule"
            if bars - counted >= self._plan.min_new_bars:
                return (interval,), f"{bars - counted} new bars"
        return None

    async def _bar_count(self, interval: str) -> int:
        conn = await asyncpg.connect(self._database_url)
        try:
            count: int = await conn.fetchval(
                "SELECT count(*) FROM bars WHERE instrument_id = ANY($1) AND interval = $2",
                list(self._plan.instruments),
                interval,
            )
        finally:
            await conn.close()
        return count

    async def _run_each(self, intervals: tuple[str, ...], reason: str) -> None:
        for interval in intervals:
            self._running_metric.set(1)
            try:
                outcome = await self._retrain(interval, reason)
            finally:
                self._running_metric.set(0)
            self._runs_metric.inc(tags={"outcome": outcome, "interval": interval})

    async def _retrain(
        self, interval: str, reason: str
    ) -> Literal["finished", "failed", "waiting_for_data"]:
        plan = self._plan
        started_at = time.time()
        reason = f"{interval} bars, {reason}"
        self._state, self._detail = "training", f"started ({reason})"
        self._interval, self._started_at, self._progress = interval, started_at, None
        try:
            bars = await self._bar_count(interval)
            table = await load_dataset(self._database_url, list(plan.instruments), interval)
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
                interval,
                plan.walk_forward,
                plan.search,
                self._tracking_uri,
                "finone-forecasters",
                Path(plan.storage),
                progress,
            )
        except DatasetError as error:
            self._bars_at_last_run[interval] = bars
            self._state, self._detail = "waiting", f"not enough {interval} history: {error}"
            return "waiting_for_data"
        except Exception as error:  # a failed run is a state to report, never the actor's end
            log.exception("retraining failed")
            self._state, self._detail = "failed", f"{type(error).__name__}: {error}"
            return "failed"
        finally:
            # However it ended, it no longer runs: its progress must not outlive it.
            self._started_at, self._progress = None, None
        self._runs += 1
        self._last_run_at = self._ended_at[interval] = time.time()
        self._last_run_duration_s = self._last_run_at - started_at
        self._bars_at_last_run[interval] = bars
        self._decisions[interval] = [
            RetrainDecision(model=d.name, version=d.version, alias=d.alias, reason=d.reason)
            for d in result.decisions
        ]
        self._last_run_metric.set(self._last_run_at)
        self._state, self._detail = "idle", f"last run {result.run_id} ({reason})"
        return "finished"
