"""Per-user quotas under parallel requests (a burst of creates cannot squeeze past the limit),
and what has no quota comes a page at a time."""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

import asyncpg

from core.settings import Settings
from serve.routes.alerts import MAX_WAITING_ALERTS
from serve.routes.clients import MAX_CLIENTS_PER_USER
from serve.routes.watchlists import MAX_WATCHLISTS
from tests.serve.auth_api import AuthApi, Session

BURST = 20


async def _create(
    auth_api: AuthApi, user: Session, path: str, bodies: list[dict[str, Any]]
) -> Counter[int]:
    responses = await asyncio.gather(
        *(auth_api.http.post(f"{auth_api.url}{path}", json=b, headers=user.headers) for b in bodies)
    )
    return Counter(r.status_code for r in responses)


async def _fill(auth_api: AuthApi, user: Session, path: str, bodies: list[dict[str, Any]]) -> None:
    for body in bodies:
        created = await auth_api.http.post(f"{auth_api.url}{path}", json=body, headers=user.headers)
        assert created.status_code == 201, created.text


async def test_a_burst_of_watchlists_stops_at_the_quota(auth_api: AuthApi, user: Session) -> None:
    def body(n: int) -> dict[str, Any]:
        return {"name": f"list {n}", "instruments": ["okx:BTC-USDT"]}

    room = 5
    await _fill(auth_api, user, "/v1/watchlists", [body(n) for n in range(MAX_WATCHLISTS - room)])

    statuses = await _create(
        auth_api, user, "/v1/watchlists", [body(1_000 + n) for n in range(BURST)]
    )

    listed = await auth_api.http.get(f"{auth_api.url}/v1/watchlists", headers=user.headers)
    assert statuses == {201: room, 409: BURST - room}
    assert len(listed.json()) == MAX_WATCHLISTS


async def test_a_burst_of_machine_clients_stops_at_the_quota(
    auth_api: AuthApi, user: Session
) -> None:
    def body(n: int) -> dict[str, Any]:
        return {"name": f"bot {n}", "scopes": ["market:read"]}

    room = 3
    await _fill(
        auth_api, user, "/v1/auth/clients", [body(n) for n in range(MAX_CLIENTS_PER_USER - room)]
    )

    statuses = await _create(auth_api, user, "/v1/auth/clients", [body(100 + n) for n in range(10)])

    listed = await auth_api.http.get(f"{auth_api.url}/v1/auth/clients", headers=user.headers)
    assert statuses == {201: room, 409: 10 - room}
    assert len(listed.json()) == MAX_CLIENTS_PER_USER


async def test_a_burst_of_alerts_stops_at_the_quota(auth_api: AuthApi, user: Session) -> None:
    alert = {"instrument": "okx:BTC-USDT", "condition": "crosses_above", "threshold": "1000000"}
    room = 5
    await _fill(auth_api, user, "/v1/alerts", [alert] * (MAX_WAITING_ALERTS - room))

    statuses = await _create(auth_api, user, "/v1/alerts", [alert] * BURST)

    listed = await auth_api.http.get(f"{auth_api.url}/v1/alerts", headers=user.headers)
    assert statuses == {201: room, 409: BURST - room}
    assert len(listed.json()["items"]) == MAX_WAITING_ALERTS


async def test_fired_alerts_have_no_quota_so_they_come_a_page_at_a_time(
    auth_api: AuthApi, user: Session, gateway_settings: Settings
) -> None:
    fired = 1_200
    assert gateway_settings.database_url
    conn = await asyncpg.connect(gateway_settings.database_url)
    try:
        await conn.execute(
            "INSERT INTO alerts (user_id, instrument_id, condition, threshold, created_at, "
            "triggered_at, triggered_price) SELECT $1::uuid, 'okx:BTC-USDT', 'crosses_above', "
            "100, now() - n * interval '1 second', now(), 101 FROM generate_series(1, $2) n",
            user.user_id,
            fired,
        )
    finally:
        await conn.close()
    waiting = await auth_api.http.post(
        f"{auth_api.url}/v1/alerts",
        json={"instrument": "okx:BTC-USDT", "condition": "crosses_below", "threshold": "1"},
        headers=user.headers,
    )

    pages: list[dict[str, Any]] = []
    cursor: str | None = None
    while len(pages) < 10:
        params: dict[str, Any] = {"state": "fired", "limit": 500}
        if cursor:
            params["cursor"] = cursor
        page = await auth_api.http.get(
            f"{auth_api.url}/v1/alerts", params=params, headers=user.headers
        )
        assert page.status_code == 200, page.text
        pages.append(page.json())
        cursor = page.json()["next_cursor"]
        if cursor is None:
            break
    first = await auth_api.http.get(f"{auth_api.url}/v1/alerts", headers=user.headers)
    too_many = await auth_api.http.get(
        f"{auth_api.url}/v1/alerts", params={"limit": 10_000}, headers=user.headers
    )

    ids = [a["alert_id"] for page in pages for a in page["items"]]
    assert [len(page["items"]) for page in pages] == [500, 500, 200]
    assert len(set(ids)) == fired and waiting.json()["alert_id"] not in ids
    created = [a["created_at"] for page in pages for a in page["items"]]
    assert created == sorted(created, reverse=True)
    # Unasked, a page of the newest: the waiting one first.
    assert len(first.json()["items"]) == MAX_WAITING_ALERTS
    assert first.json()["items"][0]["alert_id"] == waiting.json()["alert_id"]
    assert too_many.status_code == 422
