"""Watchlists over HTTP: each user's own, validated, limited."""

from __future__ import annotations

import uuid

from tests.serve.auth_api import AuthApi, Session


async def test_watchlist_lifecycle(auth_api: AuthApi, user: Session) -> None:
    base = f"{auth_api.url}/v1/watchlists"
    body = {
        "name": "majors",
        "instruments": ["binance:BTC-USDT", "alpaca:AAPL", "binance:BTC-USDT"],
    }

    created = await auth_api.http.post(base, json=body, headers=user.headers)

    assert created.status_code == 201, created.text
    watchlist = created.json()
    assert watchlist["instruments"] == ["binance:BTC-USDT", "alpaca:AAPL"]
    url = f"{base}/{watchlist['watchlist_id']}"
    assert (await auth_api.http.get(url, headers=user.headers)).json() == watchlist
    replaced = await auth_api.http.put(
        url, json={"name": "crypto", "instruments": ["okx:ETH-USDT"]}, headers=user.headers
    )
    assert replaced.status_code == 200
    assert replaced.json()["name"] == "crypto"
    listed = await auth_api.http.get(base, headers=user.headers)
    assert [w["name"] for w in listed.json()] == ["crypto"]
    assert (await auth_api.http.delete(url, headers=user.headers)).status_code == 204
    assert (await auth_api.http.get(url, headers=user.headers)).status_code == 404


async def test_watchlists_are_private_to_their_owner(auth_api: AuthApi, user: Session) -> None:
    stranger = await auth_api.signed_up()
    created = await auth_api.http.post(
        f"{auth_api.url}/v1/watchlists",
        json={"name": "mine", "instruments": ["okx:BTC-USDT"]},
        headers=user.headers,
    )
    url = f"{auth_api.url}/v1/watchlists/{created.json()['watchlist_id']}"

    read = await auth_api.http.get(url, headers=stranger.headers)
    deleted = await auth_api.http.delete(url, headers=stranger.headers)
    theirs = await auth_api.http.get(f"{auth_api.url}/v1/watchlists", headers=stranger.headers)

    assert read.status_code == deleted.status_code == 404
    assert read.json()["code"] == "watchlist_not_found"
    assert theirs.json() == []
    assert (await auth_api.http.get(url, headers=user.headers)).status_code == 200


async def test_bad_watchlists_are_refused_with_reasons(auth_api: AuthApi, user: Session) -> None:
    base = f"{auth_api.url}/v1/watchlists"
    await auth_api.http.post(base, json={"name": "dup", "instruments": []}, headers=user.headers)

    duplicate = await auth_api.http.post(
        base, json={"name": "dup", "instruments": []}, headers=user.headers
    )
    malformed = await auth_api.http.post(
        base, json={"name": "x", "instruments": ["not an instrument"]}, headers=user.headers
    )
    too_long = await auth_api.http.post(
        base,
        json={"name": "big", "instruments": [f"okx:C{n}-USDT" for n in range(201)]},
        headers=user.headers,
    )
    unknown = await auth_api.http.put(
        f"{base}/{uuid.uuid4()}", json={"name": "y", "instruments": []}, headers=user.headers
    )

    assert (duplicate.status_code, duplicate.json()["code"]) == (409, "watchlist_exists")
    assert malformed.status_code == too_long.status_code == 422
    assert (unknown.status_code, unknown.json()["code"]) == (404, "watchlist_not_found")
