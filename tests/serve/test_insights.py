"""Insights through the real gateway: the champions' forecast read against the instrument's
history and the champions' out-of-sample record, and the live feed's ``insights`` channel,
which sends the latest at once and a new one when a bar brings one. (Their errors are the
forecasts', tested with them in test_predictions.)"""

from __future__ import annotations

import math
from typing import Any

import asyncpg
import httpx
import pytest
from mlflow import MlflowClient

from core.settings import Settings
from tests.polling import wait_until
from tests.serve.auth_api import Session
from tests.serve.champions import (
    RETURNS,
    VOLATILITY,
    Champions,
    copy_of_ibm,
    register_signed,
    register_version,
)
from tests.serve.live_api import connect_feed, feed_events, next_message, subscribe
from tests.serve.model_api import ask
from training.trainer import TrainConfig

DAY_NS = 86_400 * 10**9


async def _insight(
    http: httpx.AsyncClient, url: str, session: Session, instrument: str
) -> httpx.Response:
    return await ask(http, url, session, "insights", instrument)


async def _read_by(
    http: httpx.AsyncClient, url: str, session: Session, returns: str, volatility: str
) -> bool:
    """Whether IBM's insight is read with these versions of the returns and volatility models."""
    body = (await _insight(http, url, session, "alpaca:IBM")).json()
    models = (body.get("returns") or {}, body.get("volatility") or {})
    return tuple(model.get("version") for model in models) == (returns, volatility)


def _findings(body: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {finding["kind"]: finding for finding in body["findings"]}


async def test_insight_reads_the_champions_forecast_against_a_year_of_history(
    http: httpx.AsyncClient,
    gateway_url: str,
    gateway_settings: Settings,
    user: Session,
    champions: Champions,
) -> None:
    response = await _insight(http, gateway_url, user, "alpaca:IBM")
    forecast = (await ask(http, gateway_url, user, "predictions", "alpaca:IBM")).json()

    assert response.status_code == 200, response.text
    body = response.json()
    returns, volatility = forecast["returns"], forecast["volatility"]
    assert (body["instrument"], body["interval"]) == ("alpaca:IBM", "1d")
    assert body["as_of_ts_ns"] == returns["bar_start_ts_ns"]
    assert body["returns"] == {"model": RETURNS, "version": champions.returns_version}
    assert body["volatility"] == {"model": VOLATILITY, "version": champions.volatility_version}
    findings = _findings(body)
    assert list(findings) == [
        "volatility_regime",
        "next_bar_range",
        "directional_edge",
        "calibration",
        "skill",
    ]
    # The range is the forecast's 10% and 90% quantiles around the last close.
    assert gateway_settings.database_url
    conn = await asyncpg.connect(gateway_settings.database_url)
    try:
        close = await conn.fetchval(
            "SELECT close::float8 FROM bars WHERE instrument_id = 'alpaca:IBM' AND interval = "
            "'1d' AND start_ts_ns = $1",
            body["as_of_ts_ns"],
        )
    finally:
        await conn.close()
    span = findings["next_bar_range"]["numbers"]
    assert span["close"] == pytest.approx(close)
    assert span["low"] == pytest.approx(close * math.exp(returns["q10"]), rel=1e-5)
    assert span["high"] == pytest.approx(close * math.exp(returns["q90"]), rel=1e-5)
    assert f"from the last close of {close:,.2f}." in findings["next_bar_range"]["text"]
    # IBM's bundled history covers years: the forecast is placed within a whole year's range.
    regime = findings["volatility_regime"]
    assert regime["numbers"]["forecast_volatility"] == pytest.approx(
        volatility["volatility"], rel=1e-5
    )
    assert regime["numbers"]["history_days"] == 365
    assert 240 <= regime["numbers"]["windows"] <= 260  # a year of trading days
    assert "volatility over the past year (" in regime["text"]
    assert body["summary"].startswith(f"Volatility {regime['verdict']} (")
    # The session's champions were registered without scores: none is made up.
    for kind in ("directional_edge", "calibration", "skill"):
        assert findings[kind]["verdict"] == "not_measured"
        assert "not measured" in findings[kind]["text"]
        assert set(findings[kind]["numbers"].values()) == {None}
    # The same bars and models, the same reading, word for word.
    assert (await _insight(http, gateway_url, user, "alpaca:IBM")).json() == body


async def test_insight_with_less_than_a_year_of_history_says_so(
    http: httpx.AsyncClient,
    gateway_url: str,
    gateway_settings: Settings,
    user: Session,
    champions: Champions,
) -> None:
    assert gateway_settings.database_url
    instrument = await copy_of_ibm(gateway_settings.database_url, 120)

    response = await _insight(http, gateway_url, user, instrument)

    assert response.status_code == 200, response.text
    regime = _findings(response.json())["volatility_regime"]
    assert regime["numbers"]["history_days"] < 365
    assert "less than a year of history" in regime["text"]


async def test_a_champion_whose_run_measured_it_is_read_with_its_record(
    http: httpx.AsyncClient,
    gateway_url: str,
    gateway_settings: Settings,
    user: Session,
    champions: Champions,
) -> None:
    """The scores a retraining logs in the run of the version it registers: a direction no
    better than a coin, calibrated ranges, return quantiles better than the best baseline;
    the volatility model's comparison was not logged (a run older than that score)."""
    tracking = champions.tracking_uri
    uri = await register_version(
        gateway_settings, tracking, TrainConfig(epochs=1, width=8, depth=1)
    )
    client = MlflowClient(tracking)
    versions = {
        name: register_signed(gateway_settings, tracking, uri, name)
        for name in (RETURNS, VOLATILITY)
    }
    run_id = client.get_model_version(RETURNS, versions[RETURNS]).run_id
    assert run_id
    scores = {
        "model.direction": 0.516,
        "model.direction_p": 0.21,
        "model.coverage_80": 0.797,
        "model.dm_p": 0.003,
    }
    for key, value in scores.items():
        client.log_metric(run_id, key, value)
    for name, version in versions.items():
        client.set_registered_model_alias(name, "champion", version)
    try:

        async def read_with_the_new_champions() -> bool:
            return await _read_by(http, gateway_url, user, *versions.values())

        await wait_until(read_with_the_new_champions, 60, "inference to serve the new champions")
        body = (await _insight(http, gateway_url, user, "alpaca:IBM")).json()
    finally:
        client.set_registered_model_alias(RETURNS, "champion", champions.returns_version)
        client.set_registered_model_alias(VOLATILITY, "champion", champions.volatility_version)

        async def read_with_the_sessions() -> bool:
            return await _read_by(
                http, gateway_url, user, champions.returns_version, champions.volatility_version
            )

        await wait_until(read_with_the_sessions, 60, "the session's champions to serve again")

    findings = _findings(body)
    edge = findings["directional_edge"]
    assert edge["verdict"] == "no_edge"
    assert edge["numbers"] == {"hit_rate": 0.516, "p_value": 0.21}
    assert edge["text"].startswith("The model has no directional edge: out of sample it called ")
    assert "51.6% of the time, no better than a coin (p = 0.21)" in edge["text"]
    assert body["summary"].endswith("; no directional edge.")
    calibration = findings["calibration"]
    assert calibration["verdict"] == "calibrated" and "79.7% of outcomes" in calibration["text"]
    skill = findings["skill"]
    assert skill["numbers"] == {"returns_dm_p": 0.003, "volatility_dm_p": None}
    assert skill["verdict"] == "mixed"
    assert skill["text"] == (
        "Against the best simple baseline out of sample, its return quantiles are better "
        "(Diebold-Mariano p = 0.003) and how its volatility forecasts compare was not measured."
    )


async def test_insights_channel_sends_the_latest_then_a_new_one_only_when_a_bar_comes(
    http: httpx.AsyncClient,
    gateway_url: str,
    gateway_settings: Settings,
    user: Session,
    champions: Champions,
) -> None:
    assert gateway_settings.database_url
    instrument = await copy_of_ibm(gateway_settings.database_url, 400)
    stream = f"insights:{instrument}"
    async with await connect_feed(gateway_url, user) as ws:
        ack = await subscribe(ws, instruments=[instrument], channels=["insights"])
        assert ack["streams"] == [stream]
        (first,) = await feed_events(ws, 1)
        # Publishing rounds come every 0.5 s here; the same bars make no news.
        with pytest.raises(TimeoutError):
            await next_message(ws, "data", timeout_s=2.5)

        conn = await asyncpg.connect(gateway_settings.database_url)
        try:
            await conn.execute(
                "INSERT INTO bars (instrument_id, interval, start_ts_ns, open, high, low, close, "
                "volume, trade_count) VALUES ($1, '1d', $2, 200, 230, 199, 229, 9000000, 1)",
                instrument,
                first["event"]["exchange_ts_ns"] + DAY_NS,
            )
        finally:
            await conn.close()
        (second,) = await feed_events(ws, 1)

    for item in (first, second):
        assert item["stream"] == stream
        assert item["event"]["kind"] == "insight" and item["event"]["instrument"] == instrument
        assert item["event"]["returns"]["version"] == champions.returns_version
    assert second["event"]["exchange_ts_ns"] == first["event"]["exchange_ts_ns"] + DAY_NS
    assert "from the last close of 229.00." in _findings(second["event"])["next_bar_range"]["text"]
    # What the feed sent is what the endpoint answers.
    answer = (await _insight(http, gateway_url, user, instrument)).json()
    event = second["event"]
    assert answer == {
        "instrument": instrument,
        "interval": event["interval"],
        "as_of_ts_ns": event["exchange_ts_ns"],
        "returns": event["returns"],
        "volatility": event["volatility"],
        "summary": event["summary"],
        "findings": event["findings"],
    }
    # A new subscriber gets the latest one at once, not after the next change.
    async with await connect_feed(gateway_url, user) as ws:
        await subscribe(ws, instruments=[instrument], channels=["insights"])
        (latest,) = await feed_events(ws, 1)
    assert latest["id"] == second["id"]
