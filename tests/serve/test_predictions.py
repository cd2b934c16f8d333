"""Forecasts over real HTTP: the champion's numbers with its name and version, at each interval
forecast here from the bars of that interval; clear errors for what cannot be forecast (the
same for insights); and a champion swapped while requests keep coming, none failing."""

from __future__ import annotations

import asyncio
import math
import time
import uuid
from decimal import Decimal
from typing import Any

import asyncpg
import httpx
import mlflow
import numpy as np
import pandas as pd
import pytest
import ray
from mlflow import MlflowClient

from core.intervals import Interval
from core.settings import Settings
from serve.inference.forecasts import probability_up
from tests.polling import wait_until
from tests.serve.auth_api import AuthApi, Session
from tests.serve.champions import (
    RETURNS,
    VOLATILITY,
    Champions,
    copy_of_ibm,
    register_signed,
    register_version,
)
from tests.serve.model_api import MODEL_PATHS, ModelPath, ask
from training.datasets import recent_bars
from training.features import FEATURES, feature_frame
from training.registry import model_name
from training.trainer import TrainConfig


async def _predict(
    http: httpx.AsyncClient,
    url: str,
    session: Session,
    instrument: str,
    interval: Interval | None = None,
) -> httpx.Response:
    return await ask(http, url, session, "predictions", instrument, interval)


async def _expected_output(
    database_url: str, tracking_uri: str, model: str, version: str, instrument: str, interval: str
) -> tuple[pd.DataFrame, pd.Series]:
    """The instrument's latest bars of ``interval``, and the registered model's output on them."""
    conn = await asyncpg.connect(database_url)
    try:
        bars = (await recent_bars(conn, [instrument], interval, 40))[instrument]
    finally:
        await conn.close()
    features = feature_frame(bars).assign(instrument=instrument)
    mlflow.set_tracking_uri(tracking_uri)
    loaded = mlflow.pyfunc.load_model(f"models:/{model}/{version}")
    return bars, loaded.predict(features[[*FEATURES, "instrument"]]).iloc[-1]


async def test_forecast_is_the_champions_on_the_latest_bar(
    http: httpx.AsyncClient,
    gateway_url: str,
    gateway_settings: Settings,
    user: Session,
    champions: Champions,
) -> None:
    before = time.time_ns()
    response = await _predict(http, gateway_url, user, "alpaca:IBM")

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["instrument"] == "alpaca:IBM"
    assert before <= body["made_at_ns"] <= time.time_ns()
    returns, volatility = body["returns"], body["volatility"]
    assert (returns["model"], returns["version"]) == (RETURNS, champions.returns_version)
    assert (volatility["model"], volatility["version"]) == (
        VOLATILITY,
        champions.volatility_version,
    )
    assert returns["interval"] == "1d" and returns["horizon"] == 1 and volatility["horizon"] == 5

    # The same numbers as the registered model gives on the same latest bars.
    assert gateway_settings.database_url
    bars, expected = await _expected_output(
        gateway_settings.database_url,
        champions.tracking_uri,
        RETURNS,
        champions.returns_version,
        "alpaca:IBM",
        "1d",
    )
    assert returns["bar_start_ts_ns"] == bars.index[-1].value
    assert returns["q10"] <= returns["q50"] <= returns["q90"]
    assert returns["q50"] == pytest.approx(expected["q50"], rel=1e-5)
    assert volatility["volatility"] == pytest.approx(expected["vol"], rel=1e-5)
    assert returns["prob_up"] == pytest.approx(
        probability_up(expected["q10"], expected["q50"], expected["q90"]), rel=1e-5
    )


def test_probability_of_an_up_move_follows_the_quantiles() -> None:
    assert probability_up(-0.01, 0.0, 0.01) == 0.5
    # The median a full lower spread above zero: zero sits at the 10% quantile.
    assert probability_up(0.0, 0.01, 0.05) == pytest.approx(0.9)
    assert probability_up(-0.05, -0.01, 0.0) == pytest.approx(0.1)
    assert probability_up(0.01, 0.01, 0.01) == 1.0


@pytest.mark.parametrize("path", MODEL_PATHS)
async def test_forecasts_and_insights_need_a_token_with_predictions_read(
    http: httpx.AsyncClient,
    gateway_url: str,
    auth_api: AuthApi,
    user: Session,
    champions: Champions,
    path: ModelPath,
) -> None:
    anonymous = await http.get(f"{gateway_url}/v1/{path}", params={"instrument": "alpaca:IBM"})
    assert anonymous.status_code == 401

    quotes_only = await auth_api.client_token(user, ["market:read"])
    headers = {"Authorization": f"Bearer {quotes_only}"}
    forbidden = await http.get(
        f"{gateway_url}/v1/{path}", params={"instrument": "alpaca:IBM"}, headers=headers
    )
    assert forbidden.status_code == 403
    assert forbidden.json()["code"] == "forbidden"
    # Which models serve is theirs to know too.
    assert (await http.get(f"{gateway_url}/v1/models")).status_code == 401
    assert (await http.get(f"{gateway_url}/v1/models", headers=headers)).status_code == 403


@pytest.mark.parametrize("path", MODEL_PATHS)
async def test_what_cannot_be_forecast_gets_a_clear_error(
    http: httpx.AsyncClient,
    gateway_url: str,
    gateway_settings: Settings,
    user: Session,
    champions: Champions,
    path: ModelPath,
) -> None:
    unknown = await ask(http, gateway_url, user, path, "alpaca:NOSUCH")
    assert (unknown.status_code, unknown.json()["code"]) == (404, "unknown_instrument")

    assert gateway_settings.database_url
    short = await ask(
        http, gateway_url, user, path, await copy_of_ibm(gateway_settings.database_url, 10)
    )
    assert (short.status_code, short.json()["code"]) == (422, "insufficient_history")
    assert "need at least" in short.json()["message"]

    malformed = await ask(http, gateway_url, user, path, "not an instrument")
    assert (malformed.status_code, malformed.json()["code"]) == (422, "invalid_request")


@pytest.mark.parametrize("path", MODEL_PATHS)
async def test_an_interval_not_forecast_here_is_refused_saying_which_are(
    http: httpx.AsyncClient, gateway_url: str, user: Session, path: ModelPath
) -> None:
    refused = await http.get(
        f"{gateway_url}/v1/{path}",
        params={"instrument": "alpaca:IBM", "interval": "5m"},
        headers=user.headers,
    )

    assert (refused.status_code, refused.json()["code"]) == (404, "interval_not_served")
    assert refused.json()["message"] == (
        "no forecasts of 5m bars are made here; those of 1d, 1m, 1s are"
    )
    # Not a bar interval at all: the request itself is wrong.
    wrong = await http.get(
        f"{gateway_url}/v1/{path}",
        params={"instrument": "alpaca:IBM", "interval": "2m"},
        headers=user.headers,
    )
    assert (wrong.status_code, wrong.json()["code"]) == (422, "invalid_request")


async def test_minute_champions_forecast_from_minute_bars_while_the_daily_ones_serve_on(
    http: httpx.AsyncClient,
    gateway_url: str,
    gateway_settings: Settings,
    user: Session,
    champions: Champions,
    minute_champions: Champions,
) -> None:
    assert gateway_settings.database_url
    instrument = await copy_of_ibm(gateway_settings.database_url, 60, ("1m",))

    response = await _predict(http, gateway_url, user, instrument, "1m")

    assert response.status_code == 200, response.text
    returns, volatility = response.json()["returns"], response.json()["volatility"]
    minute_returns = model_name("returns", "1m")
    assert (returns["model"], returns["version"], returns["interval"]) == (
        minute_returns,
        minute_champions.returns_version,
        "1m",
    )
    assert (volatility["model"], volatility["version"], volatility["interval"]) == (
        model_name("volatility", "1m"),
        minute_champions.volatility_version,
        "1m",
    )
    bars, expected = await _expected_output(
        gateway_settings.database_url,
        champions.tracking_uri,
        minute_returns,
        minute_champions.returns_version,
        instrument,
        "1m",
    )
    assert returns["bar_start_ts_ns"] == bars.index[-1].value
    assert returns["q50"] == pytest.approx(expected["q50"], rel=1e-5)
    # Its insight reads the same minute bars with the same champions.
    insight = await ask(http, gateway_url, user, "insights", instrument, "1m")
    assert insight.status_code == 200, insight.text
    assert (insight.json()["interval"], insight.json()["as_of_ts_ns"]) == (
        "1m",
        returns["bar_start_ts_ns"],
    )
    assert insight.json()["returns"] == {
        "model": minute_returns,
        "version": minute_champions.returns_version,
    }
    # Daily forecasts are the daily champions' still; the copy has no daily bars to read.
    daily = await _predict(http, gateway_url, user, "alpaca:IBM")
    assert (daily.json()["returns"]["model"], daily.json()["returns"]["interval"]) == (
        RETURNS,
        "1d",
    )
    no_daily_bars = await _predict(http, gateway_url, user, instrument)
    assert (no_daily_bars.status_code, no_daily_bars.json()["code"]) == (
        404,
        "unknown_instrument",
    )
    # The models say both intervals' champions serve.
    minutes = await _models(http, gateway_url, user, "1m")
    assert {target: model["version"] for target, model in minutes.items()} == {
        "returns": minute_champions.returns_version,
        "volatility": minute_champions.volatility_version,
    }
    assert minutes["returns"]["model"] == minute_returns


async def _models(
    http: httpx.AsyncClient, url: str, session: Session, interval: Interval = "1d"
) -> dict[str, dict[str, Any]]:
    """Target -> the model of ``interval`` that /v1/models lists."""
    response = await http.get(f"{url}/v1/models", headers=session.headers)
    assert response.status_code == 200, response.text
    return {m["target"]: m for m in response.json()["models"] if m["interval"] == interval}


async def _daily_walk(database_url: str, instrument: str, count: int) -> None:
    """``count`` unbroken daily bars of a random walk: prices and volumes that vary, as real
    ones do, so every feature is defined."""
    walk = np.random.default_rng(7).normal(0, 0.01, count).cumsum()
    conn = await asyncpg.connect(database_url)
    try:
        await conn.executemany(
            "INSERT INTO bars (instrument_id, interval, start_ts_ns, open, high, low, close, "
            "volume, trade_count) VALUES ($1, '1d', $2, $3, $4, $5, $3, $6, 1)",
            [
                (
                    instrument,
                    (18_000 + n) * 86_400 * 10**9,
                    Decimal(f"{100 * math.exp(step):.4f}"),
                    Decimal(f"{101 * math.exp(step):.4f}"),
                    Decimal(f"{99 * math.exp(step):.4f}"),
                    Decimal(1_000 + 37 * (n % 11)),
                )
                for n, step in enumerate(walk)
            ],
        )
    finally:
        await conn.close()


async def test_models_say_what_serves_and_how_many_bars_a_forecast_needs(
    http: httpx.AsyncClient,
    gateway_url: str,
    gateway_settings: Settings,
    user: Session,
    champions: Champions,
) -> None:
    models = await _models(http, gateway_url, user)

    returns, volatility = models["returns"], models["volatility"]
    assert (returns["model"], returns["version"]) == (RETURNS, champions.returns_version)
    assert (volatility["model"], volatility["version"]) == (
        VOLATILITY,
        champions.volatility_version,
    )
    assert (returns["interval"], returns["horizon"], volatility["horizon"]) == ("1d", 1, 5)
    assert returns["refused"] is None and volatility["refused"] is None
    # What it says holds: one bar short is too little history, exactly enough is a forecast.
    needed = max(returns["bars_needed"], volatility["bars_needed"])
    assert gateway_settings.database_url
    short, enough = f"test:S{uuid.uuid4().hex[:8].upper()}", f"test:E{uuid.uuid4().hex[:8].upper()}"
    await _daily_walk(gateway_settings.database_url, short, needed - 1)
    await _daily_walk(gateway_settings.database_url, enough, needed)
    too_little = await _predict(http, gateway_url, user, short)
    assert (too_little.status_code, too_little.json()["code"]) == (422, "insufficient_history")
    forecast = await _predict(http, gateway_url, user, enough)
    assert forecast.status_code == 200, forecast.text


@pytest.mark.parametrize("path", MODEL_PATHS)
async def test_without_a_champion_forecasts_and_insights_answer_503_model_unavailable(
    http: httpx.AsyncClient,
    gateway_url: str,
    user: Session,
    without_champions: None,
    path: ModelPath,
) -> None:
    async def refused() -> bool:
        return (await ask(http, gateway_url, user, path, "alpaca:IBM")).status_code == 503

    await wait_until(refused, 30, "inference to notice the champions are gone")
    response = await ask(http, gateway_url, user, path, "alpaca:IBM")
    assert response.json()["code"] == "model_unavailable"
    assert "finone train" in response.json()["message"]
    assert "Retry-After" in response.headers
    # The models answer all the same, saying none serves (the web app says "training").
    models = await _models(http, gateway_url, user)
    assert {target: model["version"] for target, model in models.items()} == {
        "returns": None,
        "volatility": None,
    }


async def test_moving_the_champion_alias_swaps_the_model_without_a_failed_request(
    http: httpx.AsyncClient,
    gateway_url: str,
    gateway_settings: Settings,
    user: Session,
    champions: Champions,
) -> None:
    uri = await register_version(
        gateway_settings,
        champions.tracking_uri,
        TrainConfig(model="gru", epochs=1, width=8, depth=1),
    )
    client = MlflowClient(champions.tracking_uri)
    new_version = register_signed(gateway_settings, champions.tracking_uri, uri, RETURNS)
    seen: list[tuple[int, str]] = []
    stop = asyncio.Event()

    async def keep_asking() -> None:
        while not stop.is_set():
            response = await _predict(http, gateway_url, user, "alpaca:MSFT")
            version = response.json()["returns"]["version"] if response.status_code == 200 else ""
            seen.append((response.status_code, version))

    askers = [asyncio.create_task(keep_asking()) for _ in range(4)]
    try:
        await asyncio.sleep(1.0)
        client.set_registered_model_alias(RETURNS, "champion", new_version)

        async def swapped() -> bool:
            return any(version == new_version for _, version in seen[-8:])

        await wait_until(swapped, 60, "inference to serve the new champion")
        await asyncio.sleep(1.0)
    finally:
        stop.set()
        await asyncio.gather(*askers)
        client.set_registered_model_alias(RETURNS, "champion", champions.returns_version)

    assert {status for status, _ in seen} == {200}
    versions = [version for _, version in seen]
    assert versions[0] == champions.returns_version and versions[-1] == new_version
    # Once a request saw the new champion, no later one went back to the old.
    first_new = versions.index(new_version)
    assert set(versions[first_new + 4 :]) == {new_version}


async def test_a_killed_inference_replica_answers_503_then_recovers(
    http: httpx.AsyncClient, gateway_url: str, user: Session, champions: Champions
) -> None:
    (replica,) = [
        actor
        for actor in ray.util.list_named_actors(all_namespaces=True)
        if actor["name"].startswith("SERVE_REPLICA::gateway-test#Forecaster#")
    ]
    ray.kill(ray.get_actor(replica["name"], namespace=replica["namespace"]))
    answers: list[tuple[int, str]] = []

    async def serving() -> bool:
        response = await _predict(http, gateway_url, user, "alpaca:IBM")
        answers.append((response.status_code, response.json().get("code", "")))
        return response.status_code == 200

    await wait_until(serving, 90, "a new inference replica to serve")
    failures = {answer for answer in answers if answer[0] != 200}
    assert failures <= {(503, "service_unavailable")}


async def test_a_client_going_away_leaves_others_asking_the_same_their_forecast(
    http: httpx.AsyncClient, gateway_url: str, user: Session, champions: Champions
) -> None:
    """Requests for one instrument share one call to inference, and Serve cancels the calls a
    request made when its client disconnects: the shared call must not be the first asker's."""

    async def quitter(gives_up_after_s: float) -> None:
        async with httpx.AsyncClient(timeout=gives_up_after_s) as impatient:
            try:
                await _predict(impatient, gateway_url, user, "alpaca:IBM")
            except httpx.TimeoutException:
                pass

    async def stayer() -> int:
        await asyncio.sleep(0.005)
        return (await _predict(http, gateway_url, user, "alpaca:IBM")).status_code

    statuses: list[int] = []
    for round_ in range(24):
        # Give-up times around a forecast's latency, so that some quitters leave mid-call.
        _, status = await asyncio.gather(quitter(0.01 + 0.005 * (round_ % 8)), stayer())
        statuses.append(status)

    assert statuses == [200] * len(statuses)


async def test_a_new_bar_brings_a_new_forecast(
    http: httpx.AsyncClient,
    gateway_url: str,
    gateway_settings: Settings,
    user: Session,
    champions: Champions,
) -> None:
    assert gateway_settings.database_url
    instrument = await copy_of_ibm(gateway_settings.database_url, 60)
    conn = await asyncpg.connect(gateway_settings.database_url)
    try:
        first = (await _predict(http, gateway_url, user, instrument)).json()
        last_start = first["returns"]["bar_start_ts_ns"]
        await conn.execute(
            "INSERT INTO bars (instrument_id, interval, start_ts_ns, open, high, low, close, "
            "volume, trade_count) VALUES ($1, '1d', $2, 200, 230, 199, 229, 9000000, 1)",
            instrument,
            last_start + 86_400 * 10**9,
        )
        second = (await _predict(http, gateway_url, user, instrument)).json()
    finally:
        await conn.close()

    assert second["returns"]["bar_start_ts_ns"] == last_start + 86_400 * 10**9
    assert second["returns"]["q50"] != first["returns"]["q50"]
    assert second["volatility"]["volatility"] != first["volatility"]["volatility"]
