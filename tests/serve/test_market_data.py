"""Market data over HTTP: instruments with feed status and latest quotes from a real feed actor
streaming a local OKX server into Redis, and the operator's levers on that feed."""

from __future__ import annotations

from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import ray

from actors.feed import FeedActor
from actors.simulated.okx import OkxMarket, OkxServer
from actors.venues.base import VenueConfig
from core.named_actors import RAY_NAMESPACE, feed_actor_name
from core.settings import Settings
from tests.polling import wait_until
from tests.serve.auth_api import AuthApi, Session

SYMBOLS = ("BTC-USDT", "ETH-USDT")


@pytest.fixture(scope="module")
async def okx_feed(
    ray_cluster: None, gateway_settings: Settings, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Any]:
    """The feed actor `finone up` would run for OKX, named where the gateway looks for feeds."""
    async with OkxServer(OkxMarket(SYMBOLS), auto_interval_s=0.05) as okx:
        assert gateway_settings.redis_url
        actor = FeedActor.options(  # type: ignore[attr-defined]
            name=feed_actor_name("okx-0"), namespace=RAY_NAMESPACE, lifetime="detached"
        ).remote(
            VenueConfig(venue="okx", symbols=list(SYMBOLS), ws_url=okx.url),
            "okx-0",
            gateway_settings.redis_url,
            stream_maxlen=10_000,
            capture_dir=str(tmp_path_factory.mktemp("captures")),
        )

        async def live() -> bool:
            status = await actor.status.remote()
            return bool(status.state == "live" and status.events > 10)

        await wait_until(live, 60, "the OKX feed to go live")
        yield actor
        await actor.shutdown.remote()
        ray.kill(actor, no_restart=True)


async def _get(auth_api: AuthApi, path: str, session: Session, **params: Any) -> Any:
    return await auth_api.http.get(f"{auth_api.url}{path}", params=params, headers=session.headers)


async def test_instruments_lists_what_streams_with_its_feed_state(
    auth_api: AuthApi, user: Session, okx_feed: Any
) -> None:
    response = await _get(auth_api, "/v1/instruments", user)

    assert response.status_code == 200, response.text
    body = response.json()
    listed = {i["instrument"]: i for i in body["instruments"]}
    assert {"okx:BTC-USDT", "okx:ETH-USDT"} <= set(listed)
    assert listed["okx:BTC-USDT"]["state"] == "live"
    assert listed["okx:BTC-USDT"]["connection"] == "okx-0"
    [feed] = [f for f in body["feeds"] if f["connection"] == "okx-0"]
    assert feed["state"] == "live" and feed["venue"] == "okx"


async def test_quotes_of_several_instruments_at_once(
    auth_api: AuthApi, user: Session, okx_feed: Any
) -> None:
    response = await _get(auth_api, "/v1/quotes", user, instrument=["okx:BTC-USDT", "okx:ETH-USDT"])

    assert response.status_code == 200, response.text
    quotes = {q["instrument"]: q for q in response.json()["quotes"]}
    assert set(quotes) == {"okx:BTC-USDT", "okx:ETH-USDT"}
    for quote in quotes.values():
        assert Decimal(quote["bid_price"]) < Decimal(quote["ask_price"])
        assert quote["receive_ts_ns"] >= quote["exchange_ts_ns"] > 0


async def test_quotes_for_unknown_instruments_name_them_and_malformed_ones_are_refused(
    auth_api: AuthApi, user: Session, okx_feed: Any
) -> None:
    unknown = await _get(auth_api, "/v1/quotes", user, instrument=["okx:BTC-USDT", "okx:NOPE-USDT"])
    malformed = await _get(auth_api, "/v1/quotes", user, instrument=["BTC USDT"])
    too_many = await _get(
        auth_api, "/v1/quotes", user, instrument=[f"okx:C{n}-USDT" for n in range(101)]
    )
    none = await _get(auth_api, "/v1/quotes", user)

    # A board asks for many instruments at once: the ones without a quote are named, the
    # others still answered.
    assert unknown.status_code == 200, unknown.text
    assert [q["instrument"] for q in unknown.json()["quotes"]] == ["okx:BTC-USDT"]
    assert unknown.json()["missing"] == ["okx:NOPE-USDT"]
    for response in (malformed, too_many, none):
        assert response.status_code == 422
        assert response.json()["code"] == "invalid_request"


async def test_market_data_needs_a_token_with_market_read(auth_api: AuthApi, user: Session) -> None:
    created = await auth_api.http.post(
        f"{auth_api.url}/v1/auth/clients",
        json={"name": "streamer", "scopes": ["stream:read"]},
        headers=user.headers,
    )
    client = created.json()
    token = (
        await auth_api.token(
            {"grant_type": "client_credentials"},
            auth=(client["client_id"], client["client_secret"]),
        )
    ).json()["access_token"]

    anonymous = await auth_api.http.get(f"{auth_api.url}/v1/instruments")
    unscoped = await auth_api.http.get(
        f"{auth_api.url}/v1/quotes",
        params={"instrument": "okx:BTC-USDT"},
        headers={"Authorization": f"Bearer {token}"},
    )

    assert anonymous.status_code == 401
    assert unscoped.status_code == 403
    assert unscoped.json()["message"] == "the token lacks the 'market:read' scope"


async def test_operator_sees_feeds_and_a_user_does_not(
    auth_api: AuthApi, user: Session, operator: Session, okx_feed: Any
) -> None:
    as_operator = await _get(auth_api, "/v1/ops/feeds", operator)
    as_user = await _get(auth_api, "/v1/ops/feeds", user)

    assert as_user.status_code == 403
    assert as_operator.status_code == 200
    [feed] = [f for f in as_operator.json() if f["connection"] == "okx-0"]
    assert feed["symbols"] == list(SYMBOLS)
    assert feed["messages"] > 0 and feed["redis_ok"] is True


async def test_operator_restarts_a_feed_and_it_comes_back(
    auth_api: AuthApi, operator: Session, okx_feed: Any
) -> None:
    before = (await okx_feed.status.remote()).reconnects

    response = await auth_api.http.post(
        f"{auth_api.url}/v1/ops/feeds/okx-0/restart", headers=operator.headers
    )

    assert response.status_code == 202

    async def reconnected() -> bool:
        status = await okx_feed.status.remote()
        return bool(status.reconnects > before and status.state == "live")

    await wait_until(reconnected, 30, "the feed to reconnect")
    unknown = await auth_api.http.post(
        f"{auth_api.url}/v1/ops/feeds/kraken-7/restart", headers=operator.headers
    )
    assert unknown.status_code == 404
    assert unknown.json()["code"] == "feed_not_found"
    # Alpaca's connections are named by their data feed ("alpaca-iex"), not numbered.
    named = await auth_api.http.post(
        f"{auth_api.url}/v1/ops/feeds/alpaca-iex/restart", headers=operator.headers
    )
    assert (named.status_code, named.json()["code"]) == (404, "feed_not_found")


async def test_operator_switches_recording_on_and_off(
    auth_api: AuthApi, operator: Session, okx_feed: Any
) -> None:
    url = f"{auth_api.url}/v1/ops/feeds/okx-0/recording"

    on = await auth_api.http.put(url, json={"on": True}, headers=operator.headers)
    await wait_until(_recorded_something(on.json()["capture_file"]), 30, "frames in the capture")
    off = await auth_api.http.put(url, json={"on": False}, headers=operator.headers)

    assert on.status_code == 200 and on.json()["recording"] is True
    assert off.json() == {"connection": "okx-0", "recording": False, "capture_file": None}


def _recorded_something(path: str) -> Any:
    async def check() -> bool:
        return Path(path).exists() and Path(path).stat().st_size > 0

    return check
