"""Price alerts end to end: created over REST, evaluated by the alert evaluator actor on trades
streaming through Redis, delivered once over the live feed, listed as fired."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
import ray
import redis.asyncio as aioredis

from actors.alerts import AlertEvaluator
from actors.publisher import RedisPublisher
from core.events import TradeCancel, TradeCorrection
from core.redis_keys import alert_stream_key
from core.settings import Settings
from tests.polling import wait_until
from tests.serve.auth_api import AuthApi, Session
from tests.serve.live_api import TS, connect_feed, next_message, publish, trade, trades


@pytest.fixture(scope="module")
async def evaluator(ray_cluster: None, gateway_settings: Settings) -> AsyncIterator[Any]:
    assert gateway_settings.redis_url and gateway_settings.database_url
    actor = AlertEvaluator.remote(gateway_settings.redis_url, gateway_settings.database_url)  # type: ignore[attr-defined]
    # Up before a test gives it seconds to load an alert: a worker starting on a loaded
    # machine takes longer than that.
    await asyncio.wait_for(actor.status.remote(), 120)
    yield actor
    await actor.shutdown.remote()
    ray.kill(actor, no_restart=True)


async def _create(auth_api: AuthApi, user: Session, **body: Any) -> Any:
    return await auth_api.http.post(f"{auth_api.url}/v1/alerts", json=body, headers=user.headers)


async def _watching(evaluator: Any, count: int) -> None:
    async def loaded() -> bool:
        status = await evaluator.status.remote()
        return bool(status.waiting >= count)

    await wait_until(loaded, 20, "the evaluator to load the alert")
    await asyncio.sleep(1.5)  # and to start reading the instrument's streams


async def test_alert_fires_once_over_the_live_feed_and_is_listed_as_fired(
    auth_api: AuthApi,
    user: Session,
    gateway_url: str,
    gateway_settings: Settings,
    evaluator: Any,
    publisher: RedisPublisher,  # noqa: F811
) -> None:
    instrument = f"test:A{uuid.uuid4().hex[:8].upper()}"
    created = await _create(
        auth_api, user, instrument=instrument, condition="crosses_above", threshold="105"
    )
    assert created.status_code == 201, created.text
    alert = created.json()
    assert alert["triggered_at"] is None
    await _watching(evaluator, 1)

    async with await connect_feed(gateway_url, user) as ws:
        await publish(publisher, trades(instrument, 0, 10))  # 100.5 ... 109.5
        frame = await next_message(ws, "data", timeout_s=20)
    [delivered] = frame["events"]
    assert delivered["stream"] == "alerts"
    assert delivered["event"] | {"receive_ts_ns": 0} == {
        "kind": "alert",
        "instrument": instrument,
        "user_id": user.user_id,
        "alert_id": alert["alert_id"],
        "condition": "crosses_above",
        "threshold": "105",
        "price": "105.5",
        "window_s": None,
        "exchange_ts_ns": 1_700_000_000 * 10**9 + 5,
        "receive_ts_ns": 0,
    }

    await publish(publisher, [t for t in trades(instrument, 0, 10)])  # down and up again
    listed = await auth_api.http.get(f"{auth_api.url}/v1/alerts", headers=user.headers)
    [fired] = listed.json()["items"]
    assert fired["triggered_price"] == "105.5" and fired["triggered_at"] is not None
    await asyncio.sleep(1.0)
    redis = aioredis.from_url(gateway_settings.redis_url or "")
    try:
        assert await redis.xlen(alert_stream_key(user.user_id)) == 1
    finally:
        await redis.aclose()

    # A connection made later gets it back with resume_from.
    async with await connect_feed(gateway_url, user) as ws:
        await ws.send(
            json.dumps(
                {
                    "type": "subscribe",
                    "instruments": [instrument],
                    "channels": ["trades"],
                    "resume_from": {"alerts": "0-0"},
                }
            )
        )
        await next_message(ws, "subscribed")
        again = await next_message(ws, "data")
    assert again["events"][0]["event"]["alert_id"] == alert["alert_id"]


async def test_alert_requests_are_validated_and_private(auth_api: AuthApi, user: Session) -> None:
    no_window = await _create(
        auth_api, user, instrument="okx:BTC-USDT", condition="percent_move", threshold="5"
    )
    stray_window = await _create(
        auth_api,
        user,
        instrument="okx:BTC-USDT",
        condition="crosses_below",
        threshold="5",
        window_s=60,
    )
    zero = await _create(
        auth_api, user, instrument="okx:BTC-USDT", condition="crosses_below", threshold="0"
    )
    good = await _create(
        auth_api,
        user,
        instrument="okx:BTC-USDT",
        condition="percent_move",
        threshold="2.5",
        window_s=300,
    )
    stranger = await auth_api.signed_up()

    assert no_window.status_code == stray_window.status_code == zero.status_code == 422
    assert good.status_code == 201 and good.json()["window_s"] == 300
    url = f"{auth_api.url}/v1/alerts/{good.json()['alert_id']}"
    assert (await auth_api.http.delete(url, headers=stranger.headers)).status_code == 404
    assert (await auth_api.http.get(f"{auth_api.url}/v1/alerts", headers=stranger.headers)).json()[
        "items"
    ] == []
    assert (await auth_api.http.delete(url, headers=user.headers)).status_code == 204
    assert (await auth_api.http.delete(url, headers=user.headers)).status_code == 404


async def test_one_users_alert_never_reaches_another_user(
    auth_api: AuthApi,
    user: Session,
    gateway_url: str,
    evaluator: Any,
    publisher: RedisPublisher,  # noqa: F811
) -> None:
    instrument = f"test:P{uuid.uuid4().hex[:8].upper()}"
    other = await auth_api.signed_up()
    await _create(auth_api, user, instrument=instrument, condition="crosses_below", threshold="101")
    await _watching(evaluator, 1)

    async with (
        await connect_feed(gateway_url, user) as mine,
        await connect_feed(gateway_url, other) as theirs,
    ):
        await publish(publisher, trades(instrument, 0, 3))  # 100.5 ... 102.5: no crossing down
        await publish(publisher, trades(instrument, 0, 1))  # 102.5 -> 100.5 crosses below 101
        fired = await next_message(mine, "data", timeout_s=20)
        await theirs.send(json.dumps({"type": "ping"}))
        reply = await next_message(theirs, "pong")

    assert fired["events"][0]["stream"] == "alerts"
    assert reply == {"type": "pong"}


async def test_a_print_the_exchange_cancels_or_corrects_is_not_a_price_alerts_judge_from(
    auth_api: AuthApi,
    user: Session,
    evaluator: Any,
    publisher: RedisPublisher,  # noqa: F811
) -> None:
    instrument = f"test:R{uuid.uuid4().hex[:8].upper()}"
    created = await _create(
        auth_api, user, instrument=instrument, condition="crosses_below", threshold="101"
    )
    await _watching(evaluator, 1)

    def revision(at: int) -> dict[str, Any]:
        return {"instrument": instrument, "exchange_ts_ns": TS + at, "receive_ts_ns": TS + at}

    await publish(
        publisher,
        [
            trade(instrument, 1, "100.5"),
            # A print far above the market, withdrawn: the next price does not cross from it.
            trade(instrument, 2, "105"),
            TradeCancel(**revision(2), trade_id="2", price="105", size="1", reason="error"),
            trade(instrument, 3, "100.8"),
            # A print corrected from above the threshold to below it: no crossing from it either.
            trade(instrument, 4, "101.4"),
            TradeCorrection(
                **revision(4),
                original_trade_id="4",
                original_price="101.4",
                original_size="1",
                corrected_trade_id="4c",
                corrected_price="100.7",
                corrected_size="1",
            ),
            trade(instrument, 5, "100.6"),
            trade(instrument, 6, "101.5"),
            trade(instrument, 7, "100.9"),  # the one crossing below 101
        ],
    )

    async def fired() -> bool:
        listed = await auth_api.http.get(f"{auth_api.url}/v1/alerts", headers=user.headers)
        return any(a["triggered_at"] is not None for a in listed.json()["items"])

    await wait_until(fired, 20, "the alert to fire")
    listed = await auth_api.http.get(f"{auth_api.url}/v1/alerts", headers=user.headers)
    [alert] = [a for a in listed.json()["items"] if a["alert_id"] == created.json()["alert_id"]]
    assert alert["triggered_price"] == "100.9"
