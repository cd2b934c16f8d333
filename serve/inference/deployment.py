"""The inference deployment: serves the champions' forecasts and the insights read from them, and
publishes both to the live feed.

Each target has a champion per interval in ``Settings.retrain_intervals`` (registered models of
their own, ``training.registry.model_name``); a forecast at an interval is made by that
interval's champions from the instrument's bars of that interval. Requests arriving together
are batched (``@serve.batch``), whatever their intervals: one bars query per interval read and
one model call per loaded model for the whole batch. A background task follows the registry:
when a ``champion`` alias moves,
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

from core.events import Forecast, Insight, encode_event
from core.intervals import Interval
from core.model_signing import signing_key
from core.redis_keys import (
    EVENT_FIELD,
    PREDICTION_INTEREST,
    PREDICTION_PUBLISH_LOCK,
    InstrumentStream,
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
from serve.inference.forecasts import (
    ForecastRequest,
    OutputCache,
    Refusal,
    bars_wanted,
    make_forecasts,
)
from serve.inference.insights import Evidence, history_bars, make_insight
from serve.metrics import LATENCY_BUCKETS_S
from serve.stream_hub import INTEREST_FRESH_S, decode_entry
from training.datasets import recent_bars
from training.registry import TARGET_METRICS, model_name

__all__ = ["Forecaster"]

log = logging.getLogger(__name__)
# How long a request waits for the replica's first look at the registry before being refused.
_FIRST_LOOK_S = 30.0
# Requests per batch: Serve's batches (up to the configured size, 16 by default) and publishing
# rounds (every instrument some live-feed client wants).
_BATCH_SIZE_BUCKETS: list[float] = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024]


@dataclass(frozen=True, slots=True)
class _Followed:
    """A registered model whose champion a replica serves."""

    target: str
    interval: Interval


@dataclass(frozen=True, slots=True)
class _Pair:
    """An interval's returns and volatility champions, as a batch found them."""

    returns: Champion | None
    volatility: Champion | None

    @property
    def serving(self) -> list[Champion]:
        return [c for c in (self.returns, self.volatility) if c is not None]


@dataclass(frozen=True, slots=True)
class _Batch:
    """A batch's forecasts, in the order of its requests, with what they were made from: each
    interval's champions, and interval -> instrument -> the bars read."""

    forecasts: list[Forecast | Refusal]
    champions: dict[Interval, _Pair]
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
        # Registered model name -> what it forecasts, for every interval forecast here.
        self._followed = {
            model_name(target, interval): _Followed(target, interval)
            for interval in settings.retrain_intervals
            for target in TARGET_METRICS
        }
        self._champions: dict[str, Champion | None] = dict.fromkeys(self._followed)
        self._signing_key = signing_key(settings.secret_key.get_secret_value())
        # Model name -> (the candidate refused, why): not fetched again until the alias or its
        # signature changes.
        self._refused: dict[str, tuple[Candidate, str]] = {}
        # Set once the replica has first looked for an interval's champions, daily first: a
        # request waits for its own interval's, not for every model a new replica loads.
        self._first_looks = {interval: asyncio.Event() for interval in settings.retrain_intervals}
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
            "Registered version of each target's and interval's champion served; 0 while none is",
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
    async def forecast(self, requests: list[ForecastRequest]) -> list[Forecast | Refusal]:
        """The current forecast of each request (callers pass one; Serve batches them)."""
        return await self._forecasts(requests)

    @serve.batch(max_batch_size=16, batch_wait_timeout_s=0.005)
    async def insight(self, requests: list[ForecastRequest]) -> list[Insight | Refusal]:
        """The current insight of each request (callers pass one; Serve batches them)."""
        return await self._insights(requests)

    async def served(self) -> list[ServedModel]:
        """Each target's champion of each interval as this replica serves it, or why none does."""
        return [
            ServedModel.of(
                followed.target,
                name,
                followed.interval,
                self._champions[name],
                self._refused[name][1] if name in self._refused else None,
            )
            for name, followed in self._followed.items()
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

    async def _forecasts(self, requests: list[ForecastRequest]) -> list[Forecast | Refusal]:
        return (await self._batch(requests, with_history=False)).forecasts

    async def _insights(self, requests: list[ForecastRequest]) -> list[Insight | Refusal]:
        batch = await self._batch(requests, with_history=True)

        def read(request: ForecastRequest, forecast: Forecast | Refusal) -> Insight | Refusal:
            if isinstance(forecast, Refusal):
                return forecast
            pair = batch.champions[request.interval]
            bars = {
                interval: of_instrument[forecast.instrument]
                for interval, of_instrument in batch.bars.items()
                if forecast.instrument in of_instrument
            }
            return make_insight(
                forecast,
                bars,
                Evidence() if pair.returns is None else pair.returns.evidence,
                Evidence() if pair.volatility is None else pair.volatility.evidence,
            )

        return await asyncio.to_thread(
            lambda: [read(*made) for made in zip(requests, batch.forecasts, strict=True)]
        )

    async def _batch(self, requests: list[ForecastRequest], with_history: bool) -> _Batch:
        started = time.perf_counter()
        try:
            return await self._forecast_batch(requests, with_history)
        finally:
            self._prediction_seconds.observe(time.perf_counter() - started)
            self._batch_size.observe(len(requests))

    def _pair(self, interval: Interval) -> _Pair:
        """``interval``'s champions now (none for an interval not forecast here)."""
        return _Pair(
            self._champions.get(model_name("returns", interval)),
            self._champions.get(model_name("volatility", interval)),
        )

    async def _forecast_batch(self, requests: list[ForecastRequest], with_history: bool) -> _Batch:
        """Forecasts of ``requests``; ``with_history``, the bars read hold a year's more for
        insights (see serve.inference.insights.history_bars)."""
        # interval -> the instruments asked of it, in order (repeats kept).
        asked: dict[Interval, list[str]] = {}
        for request in requests:
            asked.setdefault(request.interval, []).append(request.instrument)
        looks = [self._first_looks[i].wait() for i in asked if i in self._first_looks]
        try:
            await asyncio.wait_for(asyncio.gather(*looks), _FIRST_LOOK_S)
        except TimeoutError:
            pass
        champions = {interval: self._pair(interval) for interval in asked}
        answers: dict[Interval, list[Forecast | Refusal]] = {}
        for interval, pair in champions.items():
            refused = [
                why
                for name, (_, why) in self._refused.items()
                if self._followed[name].interval == interval
            ]
            if not pair.serving and refused:
                refusal = Refusal(
                    "model_unavailable", f"no champion can be served: {'; '.join(refused)}"
                )
                answers[interval] = [refusal] * len(asked[interval])
        serving = [c for i, pair in champions.items() if i not in answers for c in pair.serving]
        wanted = bars_wanted(serving)
        read = dict(wanted)
        # Bar interval -> the instruments whose bars of it some champion reads.
        readers: dict[str, set[str]] = {}
        for interval, pair in champions.items():
            if interval in answers:
                continue
            for champion in pair.serving:
                bar_interval = champion.spec.interval
                readers.setdefault(bar_interval, set()).update(asked[interval])
                if with_history:
                    read[bar_interval] = max(
                        read[bar_interval], history_bars(bar_interval, champion.spec.vol_horizon)
                    )
        try:
            pool = await self._database()
            bars = {
                interval: await recent_bars(pool, sorted(readers[interval]), interval, count)
                for interval, count in read.items()
            }
        except (OSError, asyncpg.PostgresError) as error:
            log.warning("forecasts cannot read bars (%s)", type(error).__name__)
            refusal = Refusal("service_unavailable", "the bars store is unavailable; retry shortly")
            return _Batch([refusal] * len(requests), champions, {})
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
        made_at = time.time_ns()

        def make() -> None:
            for interval, instruments in asked.items():
                if interval not in answers:
                    pair = champions[interval]
                    answers[interval] = make_forecasts(
                        instruments, latest, pair.returns, pair.volatility, made_at, self._outputs
                    )

        await asyncio.to_thread(make)
        # Each interval's answers in the order its requests came.
        ordered = {interval: iter(made) for interval, made in answers.items()}
        forecasts = [next(ordered[request.interval]) for request in requests]
        return _Batch(forecasts, champions, bars)

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
            for looked in self._first_looks.values():
                looked.set()
            for name, followed in self._followed.items():
                champion = self._champions[name]
                self._model_version.set(
                    0 if champion is None else int(champion.version),
                    tags={"target": followed.target, "model": name},
                )
            await asyncio.sleep(self._settings.champion_poll_s)

    async def _look_at_registry(self) -> None:
        for interval, looked in self._first_looks.items():
            for name, followed in self._followed.items():
                if followed.interval == interval:
                    await self._look_at(name, followed)
            looked.set()

    async def _look_at(self, name: str, followed: _Followed) -> None:
        """Load ``name``'s champion if it changed, or say why it is refused."""
        serving = self._champions[name]
        try:
            current = await asyncio.to_thread(champion_source, self._client, name)
            if current is None:
                self._champions[name] = None
                self._refused.pop(name, None)
                return
            if serving is not None and serving.version == current.version:
                self._refused.pop(name, None)
                return
            if name in self._refused and self._refused[name][0] == current:
                return
            champion = await asyncio.to_thread(
                load_champion,
                self._client,
                current,
                self._signing_key,
                list(self._champions.values()),
            )
        except UnsignedModel as refusal:
            self._refused[name] = (refusal.candidate, str(refusal))
            self._refusals.inc(tags={"target": followed.target, "model": name})
            log.error("refusing to load %s (keeping what is loaded)", refusal)
            return
        except (MlflowException, OSError, TypeError) as error:
            log.warning("cannot follow %s's champion (%s); keeping what is loaded", name, error)
            return
        if champion.spec.interval != followed.interval:
            # Its forecasts would be said to be of an interval whose bars it never read.
            why = (
                f"{name} v{current.version} reads {champion.spec.interval} bars, not the "
                f"{followed.interval} bars of the forecasts it would serve"
            )
            self._refused[name] = (current, why)
            log.error("refusing to serve %s (keeping what is loaded)", why)
            return
        self._refused.pop(name, None)
        # One assignment: a batch reads either the old champion or the new, never half.
        self._champions[name] = champion
        self._outputs.retain({c.source for c in self._champions.values() if c is not None})
        log.info(
            "serving %s v%s as the %s %s champion",
            name,
            current.version,
            followed.interval,
            followed.target,
        )

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
        intervals = self._settings.retrain_intervals
        wanted: dict[str, list[InstrumentStream]] = {}
        for member in members:
            stream = InstrumentStream.parse(member.decode())
            if stream is not None and stream.interval in intervals:
                wanted.setdefault(stream.channel, []).append(stream)
        forecasts: list[tuple[str, Forecast]] = []
        if "predictions" in wanted:
            streams = wanted["predictions"]
            made = await self._forecasts([_request_of(stream) for stream in streams])
            forecasts = [
                (stream.key, forecast)
                for stream, forecast in zip(streams, made, strict=True)
                if isinstance(forecast, Forecast)
            ]
        insights: list[tuple[str, Insight]] = []
        if "insights" in wanted:
            streams = wanted["insights"]
            made_insights = await self._insights([_request_of(stream) for stream in streams])
            insights = await self._changed(
                [
                    (stream.key, insight)
                    for stream, insight in zip(streams, made_insights, strict=True)
                    if isinstance(insight, Insight)
                ]
            )
        published: list[tuple[str, Forecast | Insight]] = [*forecasts, *insights]
        async with self._redis.pipeline(transaction=False) as pipe:
            for key, event in published:
                pipe.xadd(
                    key,
                    {EVENT_FIELD: encode_event(event)},
                    maxlen=self._settings.stream_maxlen,
                    approximate=True,
                )
            await pipe.execute()
        if forecasts:
            self._published.inc(len(forecasts))

    async def _changed(self, insights: list[tuple[str, Insight]]) -> list[tuple[str, Insight]]:
        """Those of ``insights`` (stream key, insight) that differ from the latest their stream
        holds: one is the same until a bar or a model changes, and a round is no news."""
        async with self._redis.pipeline(transaction=False) as pipe:
            for key, _ in insights:
                pipe.xrevrange(key, count=1)
            latest = [stream_entries(reply) for reply in await pipe.execute()]
        return [
            (key, insight)
            for (key, insight), entries in zip(insights, latest, strict=True)
            if not entries or decode_entry(entries[0][1]) != insight
        ]


def _request_of(stream: InstrumentStream) -> ForecastRequest:
    return ForecastRequest(stream.instrument, stream.interval)
