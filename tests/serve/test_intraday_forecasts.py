"""Intraday end to end: the recorder writes 1 s bars from a replayed stream of the simulated
market, the retrain scheduler trains and registers 1 s models on them, and inference serves their
forecasts and insights on ``interval=1s``, read from the latest bar the recorder wrote."""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import asyncpg
import httpx
import ray
from mlflow import MlflowClient

from actors.retrain_scheduler import RetrainReport, RetrainScheduler
from core.intervals import INTERVAL_NS
from core.settings import Settings
from tests.intraday import record_intraday
from tests.polling import wait_until
from tests.retraining import RUN_TIMEOUT_S, small_plan
from tests.serve.auth_api import Session
from tests.serve.champions import Champions
from tests.serve.model_api import ask

# A day back: the bars of this stream never share a second with the intraday bars other tests
# record from the same simulated instruments into the same database.
_DAY_NS = INTERVAL_NS["1d"]


async def test_one_second_models_train_on_recorded_bars_and_serve_their_forecasts(
    gateway_url: str,
    gateway_settings: Settings,
    champions: Champions,
    mlflow_url: str,
    user: Session,
    http: httpx.AsyncClient,
    tmp_path: Path,
) -> None:
    database_url, redis_url = gateway_settings.database_url, gateway_settings.redis_url
    assert database_url and redis_url
    start_ns = (time.time_ns() - _DAY_NS) // INTERVAL_NS["1m"] * INTERVAL_NS["1m"]
    instruments = await record_intraday(
        database_url, redis_url, tmp_path / "simulated.capture", start_ns=start_ns, seed=7
    )

    plan = dataclasses.replace(small_plan(tmp_path, tuple(instruments)), intervals=("1s",))
    scheduler = RetrainScheduler.remote(database_url, mlflow_url, plan)  # type: ignore[attr-defined]
    try:
        assert (await scheduler.trigger.remote("1s")).outcome == "started"

        async def settled() -> bool:
            return (await scheduler.status.remote()).state != "training"

        await wait_until(settled, RUN_TIMEOUT_S, "the 1 s retraining to finish")
        status: RetrainReport = await scheduler.status.remote()
    finally:
        ray.kill(scheduler, no_restart=True)
    assert (status.state, status.interval) == ("idle", "1s"), status.detail
    decisions = {d.model: d for d in status.decisions}
    assert set(decisions) == {"finone-returns-1s", "finone-volatility-1s"}, status.decisions

    # What the gate makes of twenty minutes of made-up prices is not this test's question (the
    # gate has its own): a version it left challenger is promoted by hand, as an operator may.
    client = MlflowClient(mlflow_url)
    for name, decision in decisions.items():
        if decision.alias != "champion":
            client.set_registered_model_alias(name, "champion", decision.version)

    instrument = instruments[0]
    conn = await asyncpg.connect(database_url)
    try:
        latest = await conn.fetchval(
            "SELECT max(start_ts_ns) FROM bars WHERE instrument_id = $1 AND interval = '1s'",
            instrument,
        )
    finally:
        await conn.close()

    async def forecast_served() -> bool:
        response = await ask(http, gateway_url, user, "predictions", instrument, "1s")
        # Both of this run's versions: the one the gate promoted may be loaded before the one
        # promoted here, and other tests' 1 s champions may be served until then.
        if response.status_code != 200:
            return False
        made_by = [response.json()[target] for target in ("returns", "volatility")]
        return [None if m is None else m["version"] for m in made_by] == [
            decisions["finone-returns-1s"].version,
            decisions["finone-volatility-1s"].version,
        ]

    await wait_until(forecast_served, 120, "inference to serve the 1 s champions")
    forecast = (await ask(http, gateway_url, user, "predictions", instrument, "1s")).json()
    returns, volatility = forecast["returns"], forecast["volatility"]
    assert (returns["model"], returns["version"]) == (
        "finone-returns-1s",
        decisions["finone-returns-1s"].version,
    )
    assert (volatility["model"], volatility["version"]) == (
        "finone-volatility-1s",
        decisions["finone-volatility-1s"].version,
    )
    for made_by in (returns, volatility):
        assert (made_by["interval"], made_by["bar_start_ts_ns"]) == ("1s", latest)
    assert returns["q10"] < returns["q50"] < returns["q90"] and volatility["volatility"] > 0

    insight = await ask(http, gateway_url, user, "insights", instrument, "1s")
    assert insight.status_code == 200, insight.text
    assert "next 1s bar" in str(insight.json()), insight.json()

    # The daily models serve on: this instrument has no daily bars for them to read.
    daily = await ask(http, gateway_url, user, "predictions", instrument)
    assert (daily.status_code, daily.json()["code"]) == (404, "unknown_instrument"), daily.text
