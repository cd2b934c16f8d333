"""Forecasts over real HTTP: the champion's numbers with its name and version, clear errors for
what cannot be forecast, and a champion swapped while requests keep coming, none failing."""

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
import pytest
import ray
from mlflow import MlflowClient

from core.settings import Settings
from serve.inference.forecasts import probability_up
from tests.polling import wait_until
from tests.serve.auth_api import Session
from tests.serve.champions import (
    RETURNS,
    VOLATILITY,
    Champions,
    register_signed,
    register_version,
)
from training.datasets import recent_bars
from training.features import FEATURES, feature_frame
from training.trainer import TrainConfig


async def _predict(
    http: httpx.AsyncClient, url: str, session: Session, instrument: str
) -> httpx.Response:
    return await http.get(
        f"{url}/v1/predictions", params={"instrument": instrument}, headers=session.headers
    )


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
    conn = await asyncpg.connect(gateway_settings.database_url)
    try:
        bars = (await recent_bars(conn, ["alpaca:IBM"], "1d", 40))["alpaca:IBM"]
    finally:
        await conn.close()
    features = feature_frame(bars).assign(instrument="alpaca:IBM")
    mlflow.set_tracking_uri(champions.tracking_uri)
    model = mlflow.pyfunc.load_model(f"models:/{RETURNS}/{champions.returns_version}")
    expected = model.predict(features[[*FEATURES, "instrument"]]).iloc[-1]
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


async def test_forecasts_need_a_token_with_predictions_read(
    http: httpx.AsyncClient, gateway_url: str, user: Session, champions: Champions
) -> None:
    anonymous = await http.get(f"{gateway_url}/v1/predictions", params={"instrument": "alpaca:IBM"})
    assert anonymous.status_code == 401

    created = await http.post(
        f"{gateway_url}/v1/auth/clients",
        json={"name": "quotes only", "scopes": ["market:read"]},
        headers=user.headers,
    )
    assert created.status_code == 201, created.text
    client = created.json()
    token = await http.post(
        f"{gateway_url}/v1/auth/token",
        data={"grant_type": "client_credentials"},
        auth=(client["client_id"], client["client_secret"]),
    )
    assert token.status_code == 200, token.text
    headers = {"Authorization": f"Bearer {token.json()['access_token']}"}
    forbidden = await http.get(
        f"{gateway_url}/v1/predictions", params={"instrument": "alpaca:IBM"}, headers=headers
    )
    assert forbidden.status_code == 403
    assert forbidden.json()["code"] == "forbidden"
    # Which models serve is theirs to know too.
    assert (await http.get(f"{gateway_url}/v1/models")).status_code == 401
    assert (await http.get(f"{gateway_url}/v1/models", headers=headers)).status_code == 403


async def test_what_cannot_be_forecast_gets_a_clear_error(
    http: httpx.AsyncClient,
    gateway_url: str,
    gateway_settings: Settings,
    user: Session,
    champions: Champions,
) -> None:
    unknown = await _predict(http, gateway_url, user, "alpaca:NOSUCH")
    assert unknown.status_code == 404
    assert unknown.json()["code"] == "unknown_instrument"

    assert gateway_settings.database_url
    conn = await asyncpg.connect(gateway_settings.database_url)
    try:
        await conn.executemany(
            "INSERT INTO bars (instrument_id, interval, start_ts_ns, open, high, low, close, "
            "volume, trade_count) VALUES ('test:SHORT', '1d', $1, 10, 11, 9, 10.5, 100, 1) "
            "ON CONFLICT DO NOTHING",
            [(n * 86_400 * 10**9,) for n in range(10)],
        )
    finally:
        await conn.close()
    short = await _predict(http, gateway_url, user, "test:SHORT")
    assert short.status_code == 422
    assert short.json()["code"] == "insufficient_history"
    assert "need at least" in short.json()["message"]

    malformed = await _predict(http, gateway_url, user, "not an instrument")
    assert malformed.status_code == 422
    assert malformed.json()["code"] == "invalid_request"


async def _models(http: httpx.AsyncClient, url: str, session: Session) -> dict[str, dict[str, Any]]:
    response = await http.get(f"{url}/v1/models", headers=session.headers)
    assert response.status_code == 200, response.text
    return {model["target"]: model for model in response.json()["models"]}


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


async def test_without_a_champion_forecasts_answer_503_model_unavailable(
    http: httpx.AsyncClient, gateway_url: str, user: Session, without_champions: None
) -> None:
    async def refused() -> bool:
        return (await _predict(http, gateway_url, user, "alpaca:IBM")).status_code == 503

    await wait_until(refused, 30, "inference to notice the champions are gone")
    response = await _predict(http, gateway_url, user, "alpaca:IBM")
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
    instrument = "test:FRESH"
    assert gateway_settings.database_url
    conn = await asyncpg.connect(gateway_settings.database_url)
    try:
        await conn.execute(
            "INSERT INTO bars SELECT $1, interval, start_ts_ns, open, high, low, close, volume, "
            "trade_count, vwap FROM bars WHERE instrument_id = 'alpaca:IBM' AND interval = '1d' "
            "ORDER BY start_ts_ns DESC LIMIT 60 ON CONFLICT DO NOTHING",
            instrument,
        )
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
