"""Every part's metrics reach Prometheus through Ray's metrics agent: real traffic through the
gateway, the live feed and inference, a feed actor and the recorder on a local OKX server, the
retrain scheduler and the alert evaluator, then the agent's /metrics scraped until each series
shows up with its tags (Ray prefixes ``ray_``; counters end in ``_total``)."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
import ray
import websockets
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from actors.alerts import AlertEvaluator
from actors.feed import FeedActor
from actors.publisher import RedisPublisher
from actors.recorder import Recorder
from actors.retrain_scheduler import RetrainScheduler
from actors.simulated.okx import OkxMarket, OkxServer
from actors.venues.base import VenueConfig
from core.events import Quote
from core.settings import Settings
from tests.actors.test_retrain_scheduler import _settled
from tests.polling import wait_until
from tests.retraining import small_plan
from tests.serve.auth_api import AuthApi, Session
from tests.serve.champions import RETURNS, Champions
from tests.serve.live_api import (
    TS,
    connect_feed,
    feed_events,
    publish,
    subscribe,
    trades,
)
from tests.serve.test_alerts import _create, _watching

_EXPORT_TIMEOUT_S = 60


@dataclass(frozen=True)
class Series:
    """A sample expected at the metrics agent: its exported name, some of its tags, and what
    its value must satisfy."""

    name: str
    tags: dict[str, str] = field(default_factory=dict)
    holds: Callable[[float], bool] = lambda value: True

    def among(self, samples: list[Sample]) -> list[Sample]:
        return [
            s
            for s in samples
            if s.name == self.name and self.tags.items() <= s.labels.items() and self.holds(s.value)
        ]


async def _scrape(http: httpx.AsyncClient, metrics_url: str) -> list[Sample]:
    response = await http.get(metrics_url)
    response.raise_for_status()
    return [s for family in text_string_to_metric_families(response.text) for s in family.samples]


async def _exported(http: httpx.AsyncClient, metrics_url: str, *expected: Series) -> None:
    """Wait until every expected series is exported (Ray reports every few seconds)."""
    deadline = time.monotonic() + _EXPORT_TIMEOUT_S
    while True:
        samples = await _scrape(http, metrics_url)
        missing = [e for e in expected if not e.among(samples)]
        if not missing:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"not exported in {_EXPORT_TIMEOUT_S} s: {missing}")
        await asyncio.sleep(1.0)


def _positive(value: float) -> bool:
    return value > 0


async def test_gateway_live_feed_and_inference_metrics_reach_prometheus(
    http: httpx.AsyncClient,
    metrics_url: str,
    gateway_url: str,
    user: Session,
    champions: Champions,
    publisher: RedisPublisher,
    instrument: str,
) -> None:
    quote = Quote(
        instrument=instrument,
        bid_price="1",
        bid_size="1",
        ask_price="2",
        ask_size="1",
        exchange_ts_ns=TS,
        receive_ts_ns=TS,
    )
    await publish(publisher, [quote])
    watchlist_id = str(uuid.uuid4())
    for path, params, status in (
        ("/v1/predictions", {"instrument": "alpaca:IBM"}, 200),
        ("/v1/quotes", {"instrument": instrument}, 200),
        (f"/v1/watchlists/{watchlist_id}", {}, 404),
        ("/v1/no/such/path", {}, 404),
    ):
        response = await http.get(f"{gateway_url}{path}", params=params, headers=user.headers)
        assert response.status_code == status, (path, response.text)

    # A handshake with a bad token is turned away.
    async with websockets.connect(
        gateway_url.replace("http://", "ws://") + "/v1/stream",
        subprotocols=["finone.v1", "bearer.not-a-token"],  # type: ignore[list-item]
    ) as refused:
        with pytest.raises(websockets.ConnectionClosed):
            await refused.recv()
    # One connection ends (the client's doing); another stays while the agent is scraped.
    async with await connect_feed(gateway_url, user) as ws:
        await subscribe(ws, instruments=[instrument], channels=["trades"])
        await publish(publisher, trades(instrument, 0, 5))
        await feed_events(ws, 5)
    async with await connect_feed(gateway_url, user) as ws:
        await subscribe(ws, instruments=["alpaca:IBM"], channels=["predictions"])
        await feed_events(ws, 1)
        await _exported(
            http,
            metrics_url,
            *(
                Series(
                    "ray_finone_http_request_seconds_bucket",
                    {"method": "GET", "route": route, "status": status, "le": "+Inf"},
                    _positive,
                )
                for route, status in (
                    ("/v1/predictions", "200"),
                    ("/v1/quotes", "200"),
                    ("/v1/watchlists/{watchlist_id}", "404"),
                    ("unmatched", "404"),
                )
            ),
            Series("ray_finone_http_request_seconds_count", {"route": "/v1/predictions"}),
            Series("ray_finone_http_request_seconds_sum", {"route": "/v1/predictions"}),
            Series("ray_finone_live_clients", {}, lambda value: value >= 1),
            Series("ray_finone_live_stream_lag_seconds"),
            Series("ray_finone_live_events_sent_total", {}, lambda value: value >= 6),
            Series("ray_finone_live_frames_sent_total", {}, _positive),
            Series("ray_finone_live_disconnects_total", {"reason": "client"}, _positive),
            Series("ray_finone_live_disconnects_total", {"reason": "rejected"}, _positive),
            Series(
                "ray_finone_model_version",
                {"target": "returns", "model": RETURNS},
                lambda value: value == int(champions.returns_version),
            ),
            Series("ray_finone_model_version", {"target": "volatility"}, _positive),
            Series("ray_finone_prediction_seconds_bucket", {"le": "+Inf"}, _positive),
            Series("ray_finone_prediction_batch_size_bucket", {"le": "1.0"}, _positive),
            Series("ray_finone_predictions_published_total", {}, _positive),
        )
    samples = await _scrape(http, metrics_url)
    # The WebSocket itself is not an HTTP request, and a raw path never becomes a route.
    routes = {
        s.labels["route"] for s in samples if s.name == "ray_finone_http_request_seconds_count"
    }
    assert "/v1/stream" not in routes
    assert not [route for route in routes if watchlist_id in route or "no/such" in route]


async def test_feed_and_recorder_metrics_reach_prometheus(
    http: httpx.AsyncClient, metrics_url: str, redis_url: str, database_url: str
) -> None:
    symbols = ("BTC-USDT", "ETH-USDT")
    tags = {"venue": "okx", "connection": "okx-0"}
    consumer = f"metrics-{uuid.uuid4().hex[:8]}"
    async with OkxServer(OkxMarket(symbols), auto_interval_s=0.02) as okx:
        feed = FeedActor.remote(  # type: ignore[attr-defined]
            VenueConfig(venue="okx", symbols=list(symbols), ws_url=okx.url),
            "okx-0",
            redis_url,
            stream_maxlen=10_000,
        )
        recorder = Recorder.remote(redis_url, database_url, consumer)  # type: ignore[attr-defined]
        try:

            async def live() -> bool:
                status = await feed.status.remote()
                return bool(status.state == "live" and status.events > 10)

            await wait_until(live, 60, "the OKX feed to go live")
            okx.push_book_update("BTC-USDT", bad_checksum=True)
            okx.lose_book_update("ETH-USDT")
            okx.broadcast("{not json")

            async def troubled() -> bool:
                problems = (await feed.status.remote()).problems
                return {"checksum_failure", "sequence_error", "parse_error"} <= set(problems)

            await wait_until(troubled, 30, "the faults to be noticed")
            await _exported(
                http,
                metrics_url,
                Series("ray_finone_feed_messages_total", tags, _positive),
                Series("ray_finone_feed_events_total", tags, _positive),
                *(
                    Series("ray_finone_feed_problems_total", {**tags, "kind": kind}, _positive)
                    for kind in ("checksum_failure", "sequence_error", "parse_error")
                ),
                Series("ray_finone_feed_gaps_total", tags, _positive),
                Series("ray_finone_feed_live", tags, lambda value: value == 1),
                Series("ray_finone_feed_last_message_age_seconds", tags),
                Series("ray_finone_feed_publish_seconds_bucket", {**tags, "le": "+Inf"}, _positive),
                Series("ray_finone_recorder_trades_total", {"consumer": consumer}, _positive),
                Series("ray_finone_recorder_batches_total", {"consumer": consumer}, _positive),
                Series("ray_finone_recorder_commit_age_seconds", {"consumer": consumer}),
                Series(
                    "ray_finone_recorder_stream_lag_seconds",
                    {"consumer": consumer},
                    lambda value: 0 <= value < 30,
                ),
            )
            okx.drop()
            await _exported(
                http,
                metrics_url,
                Series("ray_finone_feed_reconnects_total", tags, _positive),
            )
        finally:
            await feed.shutdown.remote()
            await recorder.shutdown.remote()
            ray.kill(feed, no_restart=True)
            ray.kill(recorder, no_restart=True)


async def test_retrain_and_alert_metrics_reach_prometheus(
    http: httpx.AsyncClient,
    metrics_url: str,
    database_url: str,
    mlflow_url: str,
    tmp_path: Path,
    gateway_settings: Settings,
    auth_api: AuthApi,
    user: Session,
    publisher: RedisPublisher,
    instrument: str,
) -> None:
    redis, gateway_database = gateway_settings.redis_url, gateway_settings.database_url
    assert redis and gateway_database
    plan = small_plan(tmp_path, ("alpaca:NOPE",))
    scheduler = RetrainScheduler.remote(database_url, mlflow_url, plan)  # type: ignore[attr-defined]
    evaluator = AlertEvaluator.remote(redis, gateway_database)  # type: ignore[attr-defined]
    try:
        await scheduler.trigger.remote()
        assert (await _settled(scheduler)).state == "waiting"

        created = await _create(
            auth_api, user, instrument=instrument, condition="crosses_above", threshold="105"
        )
        assert created.status_code == 201, created.text
        await _watching(evaluator, 1)
        await publish(publisher, trades(instrument, 0, 10))

        async def fired() -> bool:
            return bool((await evaluator.status.remote()).fired >= 1)

        await wait_until(fired, 20, "the alert to fire")
        await _exported(
            http,
            metrics_url,
            Series("ray_finone_retrain_runs_total", {"outcome": "waiting_for_data"}, _positive),
            Series("ray_finone_retrain_running", {}, lambda value: value == 0),
            Series("ray_finone_alerts_fired_total", {}, _positive),
            Series("ray_finone_alerts_stream_lag_seconds"),
        )
    finally:
        await evaluator.shutdown.remote()
        ray.kill(evaluator, no_restart=True)
        ray.kill(scheduler, no_restart=True)
