"""The inference deployment: serves the champions' forecasts and the insights read from them, and
publishes both to the live feed.

Requests arriving together are batched (``@serve.batch``): one bars query and one model call per
loaded model for the whole batch. A background task follows the registry: when ``champion`` moves,
the new version is loaded beside the old one and swapped in whole, so requests in flight finish on
the model they started with and none fails during the swap. A version whose signature does not
verify is refused (logged, counted, and named in the answer while nothing serves) and the
loaded one kept. Another task publishes, on a schedule, fresh forecasts for the instruments whose
predictions some live-feed client subscribes to, and insights, when they changed, for those
whose insights some client subscribes to.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
import uuid
from dataclasses import dataclass

import asyncpg
import mlflow
import pandas as pd
import redis.asyncio as aioredis
import torch
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException
from ray import serve
from ray.util.metrics import Counter, Gauge, Histogram

from core.events import Forecast, Insight, ModelChannel, encode_event
from core.model_signing import signing_key
from core.redis_keys import (
    EVENT_FIELD,
    PREDICTION_INTEREST,
    PREDICTION_PUBLISH_LOCK,
    stream_key,
)
from core.redis_replies import set_members, stream_entries
from core.settings import Settings
from serve.background import keep_running
from serve.inference.champions import (
    Candidate,
    Champion,
    ServedModel,
    UnsignedModel,
    champion_source,
    load_champion,
)
from serve.inference.forecasts import OutputCache, Refusal, bars_wanted, make_forecasts
from serve.inference.insights import Evidence, history_bars, make_insight
from serve.metrics import LATENCY_BUCKETS_S
from serve.stream_hub import INTEREST_FRESH_S, decode_entry
from training.datasets import recent_bars
from training.registry import TARGET_METRICS, model_name

__all__ = ["Forecaster"]

log = logging.getLogger(__name__)
_DAILY_MODELS = {target: model_name(target, "1d") for target in TARGET_METRICS}
# How long a request waits for the replica's first look at the registry before being refused.
_FIRST_LOOK_S = 30.0
# Requests per batch: Serve's batches (up to the configured size, 16 by default) and publishing
# rounds (every instrument some live-feed client wants).
_BATCH_SIZE_BUCKETS: list[float] = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024]


@dataclass(frozen=True, slots=True)
class _Batch:
    """A batch's forecasts with what they were made from: the champions as the batch found
    them, and interval -> instrument -> the bars read."""

    forecasts: list[Forecast | Refusal]
    returns: Champion | None
    volatility: Champion | None
    bars: dict[str, dict[str, pd.DataFrame]]


@serve.deployment(name="Forecaster", ray_actor_options={"num_cpus": 0.2}, max_ongoing_requests=256)
class Forecaster:
    def __init__(self, settings: Settings) -> None:
        if not (settings.mlflow_tracking_uri and settings.database_url and settings.redis_url):
            raise ValueError("inference needs MLFLOW_TRACKING_URI, DATABASE_URL and REDIS_URL")
        # Batches are small and the replica shares its machine: more threads only contend.
        torch.set_num_threads(1)
        # MLflow's client reads the service account from the environment; this replica is a
        # process of its own.
        os.environ.update(settings.mlflow_client_env)
        mlflow.set_tracking_uri(settings.mlflow_tracking_uri)
        self._settings = settings
        self._client = MlflowClient(settings.mlflow_tracking_uri)
        self._champions: dict[str, Champion | None] = dict.fromkeys(TARGET_METRICS)
        self._signing_key = signing_key(settings.secret_key.get_secret_value())
        # target -> (the candidate refused, why): not fetched again until the alias or its
        # signature changes.
        self._refused: dict[str, tuple[Candidate, str]] = {}
        self._first_look = asyncio.Event()
        self._outputs = OutputCache()
        self._redis = aioredis.from_url(
            settings.redis_url, socket_timeout=settings.health_timeout_s
        )
        self._database_url = settings.database_url
        self._pool: asyncpg.Pool | None = None
        self._opening = asyncio.Lock()
        self._replica = uuid.uuid4().hex
        self._prediction_seconds = Histogram(
            "finone_prediction_seconds",
            "Seconds one batch of forecasts takes: bars query and model calls",
            LATENCY_BUCKETS_S,
        )
        self._batch_size = Histogram(
            "finone_prediction_batch_size", "Instruments forecast per batch", _BATCH_SIZE_BUCKETS
        )
        self._model_version = Gauge(
            "finone_model_version",
            "Registered version of each target's champion served; 0 while none is",
            ("target", "model"),
        )
        self._published = Counter(
            "finone_predictions_published", "Forecasts written to the live feed"
        )
        self._refusals = Counter(
            "finone_models_refused",
            "Champion versions refused because their signature does not verify",
            ("target", "model"),
        )
        # Setters serve.batch documents on the method it wraps, missing from its annotations.
        self.forecast.set_max_batch_size(settings.prediction_batch_size)  # type: ignore[attr-defined]
        self.forecast.set_batch_wait_timeout_s(settings.prediction_batch_wait_s)  # type: ignore[attr-defined]
        self.insight.set_max_batch_size(settings.prediction_batch_size)  # type: ignore[attr-defined]
        self.insight.set_batch_wait_timeout_s(settings.prediction_batch_wait_s)  # type: ignore[attr-defined]
        loop = asyncio.get_running_loop()
        self._tasks = [
            loop.create_task(self._follow_champions(), name="follow-champions"),
            loop.create_task(self._publish_forecasts(), name="publish-forecasts"),
        ]

    @serve.batch(max_batch_size=16, batch_wait_timeout_s=0.005)
    async def forecast(self, instruments: list[str]) -> list[Forecast | Refusal]:
        """The current forecast of each instrument (callers pass one; Serve batches them)."""
        return await self._forecasts(instruments)

    @serve.batch(max_batch_size=16, batch_wait_timeout_s=0.005)
    async def insight(self, instruments: list[str]) -> list[Insight | Refusal]:
        """The current insight of each instrument (callers pass one; Serve batches them)."""
        return await self._insights(instruments)

    async def served(self) -> list[ServedModel]:
        """Each target's champion as this replica serves it, or why none does."""
        return [
            ServedModel.of(
                target,
                name,
                self._champions[target],
                self._refused[target][1] if target in self._refused else None,
            )
            for target, name in _DAILY_MODELS.items()
        ]

    async def check_health(self) -> None:
        for task in self._tasks:
            if task.done():
                raise RuntimeError(f"background task {task.get_name()} stopped")

    async def __del__(self) -> None:
        for task in self._tasks:
            task.cancel()
        if self._pool is not None:
            await self._pool.close()
        await self._redis.aclose()

    async def _forecasts(self, instruments: list[str]) -> list[Forecast | Refusal]:
        return (await self._batch(instruments, with_history=False)).forecasts

    async def _insights(self, instruments: list[str]) -> list[Insight | Refusal]:
        batch = await self._batch(instruments, with_history=True)
        returns = Evidence() if batch.returns is None else batch.returns.evidence
        volatility = Evidence() if batch.volatility is None else batch.volatility.evidence

        def read(forecast: Forecast | Refusal) -> Insight | Refusal:
            if isinstance(forecast, Refusal):
                return forecast
            bars = {
                interval: of_instrument[forecast.instrument]
                for interval, of_instrument in batch.bars.items()
                if forecast.instrument in of_instrument
            }
            return make_insight(forecast, bars, returns, volatility)

        return await asyncio.to_thread(lambda: [read(forecast) for forecast in batch.forecasts])

    async def _batch(self, instruments: list[str], with_history: bool) -> _Batch:
        started = time.perf_counter()
        try:
            return await self._forecast_batch(instruments, with_history)
        finally:
            self._prediction_seconds.observe(time.perf_counter() - started)
            self._batch_size.observe(len(instruments))

    async def _forecast_batch(self, instruments: list[str], with_history: bool) -> _Batch:
        """Forecasts of ``instruments``; ``with_history``, the bars read hold a year's more for
        insights (see serve.inference.insights.history_bars)."""
        try:
            await asyncio.wait_for(self._first_look.wait(), _FIRST_LOOK_S)
        except TimeoutError:
            pass
        returns, volatility = self._champions["returns"], self._champions["volatility"]
        serving = [c for c in (returns, volatility) if c is not None]
        if not serving and self._refused:
            reasons = "; ".join(why for _, why in self._refused.values())
            refused = Refusal("model_unavailable", f"no champion can be served: {reasons}")
            return _Batch([refused] * len(instruments), returns, volatility, {})
        wanted = bars_wanted(serving)
        read = dict(wanted)
        if with_history:
            for champion in serving:
                interval = champion.spec.interval
                read[interval] = max(
                    read[interval], history_bars(interval, champion.spec.vol_horizon)
                )
        try:
            pool = await self._database()
            bars = {
                interval: await recent_bars(pool, list(set(instruments)), interval, count)
                for interval, count in read.items()
            }
        except (OSError, asyncpg.PostgresError) as error:
            log.warning("forecasts cannot read bars (%s)", type(error).__name__)
            refusal = Refusal("service_unavailable", "the bars store is unavailable; retry shortly")
            return _Batch([refusal] * len(instruments), returns, volatility, {})
        # Forecasts are made from the very bars a forecast alone reads: the same digests, so
        # the same cached model outputs.
        latest = (
            {
                interval: {i: frame.iloc[-wanted[interval] :] for i, frame in of_instrument.items()}
                for interval, of_instrument in bars.items()
            }
            if with_history
            else bars
        )
        forecasts = await asyncio.to_thread(
            make_forecasts, instruments, latest, returns, volatility, time.time_ns(), self._outputs
        )
        return _Batch(forecasts, returns, volatility, bars)

    async def _database(self) -> asyncpg.Pool:
        if self._pool is None:
            async with self._opening:
                if self._pool is None:
                    self._pool = await asyncpg.create_pool(
                        self._database_url, min_size=1, max_size=4, timeout=10
                    )
        return self._pool

    async def _follow_champions(self) -> None:
        while True:
            try:
                await self._look_at_registry()
            except Exception:
                # A registry that misbehaves must not stop the replica from following it.
                log.exception("following the champion models failed; keeping the loaded ones")
            self._first_look.set()
            for target, name in _DAILY_MODELS.items():
                champion = self._champions[target]
                self._model_version.set(
                    0 if champion is None else int(champion.version),
                    tags={"target": target, "model": name},
                )
            await asyncio.sleep(self._settings.champion_poll_s)

    async def _look_at_registry(self) -> None:
        for target, name in _DAILY_MODELS.items():
            serving = self._champions[target]
            try:
                current = await asyncio.to_thread(champion_source, self._client, name)
                if current is None:
                    self._champions[target] = None
                    self._refused.pop(target, None)
                    continue
                if serving is not None and serving.version == current.version:
                    self._refused.pop(target, None)
                    continue
                if target in self._refused and self._refused[target][0] == current:
                    continue
                champion = await asyncio.to_thread(
                    load_champion,
                    self._client,
                    current,
                    self._signing_key,
                    list(self._champions.values()),
                )
            except UnsignedModel as refusal:
                self._refused[target] = (refusal.candidate, str(refusal))
                self._refusals.inc(tags={"target": target, "model": name})
                log.error("refusing to load %s (keeping what is loaded)", refusal)
                continue
            except (MlflowException, OSError, TypeError) as error:
                log.warning("cannot follow %s's champion (%s); keeping what is loaded", name, error)
                continue
            self._refused.pop(target, None)
            # One assignment: a batch reads either the old champion or the new, never half.
            self._champions[target] = champion
            self._outputs.retain({c.source for c in self._champions.values() if c is not None})
            log.info("serving %s v%s as the %s champion", name, current.version, target)

    async def _publish_forecasts(self) -> None:
        await keep_running(self._next_round, "publishing forecasts", log, 0.0)

    async def _next_round(self) -> None:
        await asyncio.sleep(self._settings.prediction_publish_s)
        await self._publish_round()

    async def _publish_round(self) -> None:
        period_ms = int(self._settings.prediction_publish_s * 1000)
        # One replica publishes per round; the lock lapses before the next round starts.
        if not await self._redis.set(
            PREDICTION_PUBLISH_LOCK, self._replica, nx=True, px=max(1, period_ms * 9 // 10)
        ):
            return
        fresh_since = time.time() - INTEREST_FRESH_S
        await self._redis.zremrangebyscore(PREDICTION_INTEREST, "-inf", f"({fresh_since}")
        members = set_members(await self._redis.zrange(PREDICTION_INTEREST, 0, -1))
        wanted: dict[str, list[str]] = {}
        for member in members:
            channel, _, instrument = member.decode().partition(":")
            wanted.setdefault(channel, []).append(instrument)
        forecasts: list[Forecast] = []
        if "predictions" in wanted:
            made = await self._forecasts(wanted["predictions"])
            forecasts = [f for f in made if isinstance(f, Forecast)]
        insights: list[Insight] = []
        if "insights" in wanted:
            made_insights = await self._insights(wanted["insights"])
            insights = await self._changed([i for i in made_insights if isinstance(i, Insight)])
        published: list[tuple[ModelChannel, Forecast | Insight]] = [
            *(("predictions", forecast) for forecast in forecasts),
            *(("insights", insight) for insight in insights),
        ]
        async with self._redis.pipeline(transaction=False) as pipe:
            for channel, event in published:
                pipe.xadd(
                    stream_key(channel, event.instrument),
                    {EVENT_FIELD: encode_event(event)},
                    maxlen=self._settings.stream_maxlen,
                    approximate=True,
                )
            await pipe.execute()
        if forecasts:
            self._published.inc(len(forecasts))

    async def _changed(self, insights: list[Insight]) -> list[Insight]:
        """Those of ``insights`` that differ from the latest their stream holds: one is the
        same until a bar or a model changes, and a round is no news."""
        async with self._redis.pipeline(transaction=False) as pipe:
            for insight in insights:
                pipe.xrevrange(stream_key("insights", insight.instrument), count=1)
            latest = [stream_entries(reply) for reply in await pipe.execute()]
        return [
            insight
            for insight, entries in zip(insights, latest, strict=True)
            if not entries or decode_entry(entries[0][1]) != insight
        ]
