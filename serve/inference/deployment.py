"""The inference deployment: serves the champions' forecasts and publishes them to the live feed.

Requests arriving together are batched (``@serve.batch``): one bars query and one model call per
loaded model for the whole batch. A background task follows the registry: when ``champion`` moves,
the new version is loaded beside the old one and swapped in whole, so requests in flight finish on
the model they started with and none fails during the swap. Another task publishes fresh forecasts,
on a schedule, for the instruments whose predictions some live-feed client subscribes to.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid

import asyncpg
import mlflow
import redis.asyncio as aioredis
import redis.exceptions
import torch
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException
from ray import serve
from ray.util.metrics import Counter, Gauge, Histogram

from cluster.events import Forecast, encode_event
from cluster.redis_keys import (
    EVENT_FIELD,
    PREDICTION_INTEREST,
    PREDICTION_PUBLISH_LOCK,
    stream_key,
)
from cluster.settings import Settings
from serve.inference.champions import Champion, champion_source, load_champion
from serve.inference.forecasts import OutputCache, Refusal, bars_wanted, make_forecasts
from serve.live.hub import INTEREST_FRESH_S
from serve.metrics import LATENCY_BUCKETS_S
from training.datasets import recent_bars
from training.registry import TARGET_MODELS

__all__ = ["Forecaster"]

log = logging.getLogger(__name__)
# How long a request waits for the replica's first look at the registry before being refused.
_FIRST_LOOK_S = 30.0
# Requests per batch: Serve's batches (up to the configured size, 16 by default) and publishing
# rounds (every instrument some live-feed client wants).
_BATCH_SIZE_BUCKETS = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024]


@serve.deployment(name="Forecaster", ray_actor_options={"num_cpus": 0.2}, max_ongoing_requests=256)
class Forecaster:
    def __init__(self, settings: Settings) -> None:
        if not (settings.mlflow_tracking_uri and settings.database_url and settings.redis_url):
            raise ValueError("inference needs MLFLOW_TRACKING_URI, DATABASE_URL and REDIS_URL")
        # Batches are small and the replica shares its machine: more threads only contend.
        torch.set_num_threads(1)
        mlflow.set_tracking_uri(settings.mlflow_tracking_uri)
        self._settings = settings
        self._client = MlflowClient(settings.mlflow_tracking_uri)
        self._champions: dict[str, Champion | None] = dict.fromkeys(TARGET_MODELS)
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
        self.forecast.set_max_batch_size(settings.prediction_batch_size)
        self.forecast.set_batch_wait_timeout_s(settings.prediction_batch_wait_s)
        loop = asyncio.get_running_loop()
        self._tasks = [
            loop.create_task(self._follow_champions(), name="follow-champions"),
            loop.create_task(self._publish_forecasts(), name="publish-forecasts"),
        ]

    @serve.batch(max_batch_size=16, batch_wait_timeout_s=0.005)
    async def forecast(self, instruments: list[str]) -> list[Forecast | Refusal]:
        """The current forecast of each instrument (callers pass one; Serve batches them)."""
        return await self._forecasts(instruments)

    async def champions(self) -> dict[str, str | None]:
        """target -> "name/version" of the champion this replica serves."""
        return {
            target: None if champion is None else f"{champion.name}/{champion.version}"
            for target, champion in self._champions.items()
        }

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
        started = time.perf_counter()
        try:
            return await self._forecast_batch(instruments)
        finally:
            self._prediction_seconds.observe(time.perf_counter() - started)
            self._batch_size.observe(len(instruments))

    async def _forecast_batch(self, instruments: list[str]) -> list[Forecast | Refusal]:
        try:
            await asyncio.wait_for(self._first_look.wait(), _FIRST_LOOK_S)
        except TimeoutError:
            pass
        returns, volatility = self._champions["returns"], self._champions["volatility"]
        serving = [c for c in (returns, volatility) if c is not None]
        try:
            pool = await self._database()
            bars = {
                interval: await recent_bars(pool, list(set(instruments)), interval, count)
                for interval, count in bars_wanted(serving).items()
            }
        except (OSError, asyncpg.PostgresError) as error:
            log.warning("forecasts cannot read bars (%s)", type(error).__name__)
            refusal = Refusal("service_unavailable", "the bars store is unavailable; retry shortly")
            return [refusal] * len(instruments)
        return await asyncio.to_thread(
            make_forecasts, instruments, bars, returns, volatility, time.time_ns(), self._outputs
        )

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
            for target, (name, _) in TARGET_MODELS.items():
                champion = self._champions[target]
                self._model_version.set(
                    0 if champion is None else int(champion.version),
                    tags={"target": target, "model": name},
                )
            await asyncio.sleep(self._settings.champion_poll_s)

    async def _look_at_registry(self) -> None:
        for target, (name, _) in TARGET_MODELS.items():
            serving = self._champions[target]
            try:
                current = await asyncio.to_thread(champion_source, self._client, name)
                if current is None:
                    self._champions[target] = None
                    continue
                version, source = current
                if serving is not None and serving.version == version:
                    continue
                champion = await asyncio.to_thread(
                    load_champion, name, version, source, list(self._champions.values())
                )
            except (MlflowException, OSError, TypeError) as error:
                log.warning("cannot follow %s's champion (%s); keeping what is loaded", name, error)
                continue
            # One assignment: a batch reads either the old champion or the new, never half.
            self._champions[target] = champion
            self._outputs.retain({c.source for c in self._champions.values() if c is not None})
            log.info("serving %s v%s as the %s champion", name, version, target)

    async def _publish_forecasts(self) -> None:
        while True:
            await asyncio.sleep(self._settings.prediction_publish_s)
            try:
                await self._publish_round()
            except (redis.exceptions.RedisError, OSError) as error:
                log.warning("cannot publish forecasts (%s); retrying", type(error).__name__)
            except Exception:
                log.exception("publishing forecasts failed; continuing")

    async def _publish_round(self) -> None:
        period_ms = int(self._settings.prediction_publish_s * 1000)
        # One replica publishes per round; the lock lapses before the next round starts.
        if not await self._redis.set(
            PREDICTION_PUBLISH_LOCK, self._replica, nx=True, px=max(1, period_ms * 9 // 10)
        ):
            return
        fresh_since = time.time() - INTEREST_FRESH_S
        await self._redis.zremrangebyscore(PREDICTION_INTEREST, "-inf", f"({fresh_since}")
        wanted = [m.decode() for m in await self._redis.zrange(PREDICTION_INTEREST, 0, -1)]
        if not wanted:
            return
        forecasts = [f for f in await self._forecasts(wanted) if isinstance(f, Forecast)]
        async with self._redis.pipeline(transaction=False) as pipe:
            for forecast in forecasts:
                pipe.xadd(
                    stream_key("predictions", forecast.instrument),
                    {EVENT_FIELD: encode_event(forecast)},
                    maxlen=self._settings.stream_maxlen,
                    approximate=True,
                )
            await pipe.execute()
        if forecasts:
            self._published.inc(len(forecasts))
