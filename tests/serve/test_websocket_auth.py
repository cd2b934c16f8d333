"""The WebSocket authentication helper on a real uvicorn server, with tokens from the gateway."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import pytest
import websockets
from fastapi import FastAPI, WebSocket
from websockets.exceptions import ConnectionClosed, InvalidStatus

from core.settings import Settings
from serve.live.handshake import WebSocketRejected, authenticate_websocket
from serve.resources import Resources
from tests.serve.auth_api import AuthApi, Session
from tests.serve.local_server import served

ALLOWED_ORIGIN = "https://app.example.com"


@pytest.fixture(scope="module")
async def feed_url(gateway_settings: Settings) -> AsyncIterator[str]:
    """A small app whose one WebSocket route greets whoever the helper lets in."""
    settings = gateway_settings.model_copy(update={"allowed_origins": [ALLOWED_ORIGIN]})
    resources = Resources(settings)
    app = FastAPI()

    @app.websocket("/feed")
    async def feed(websocket: WebSocket) -> None:
        try:
            principal = await authenticate_websocket(
                websocket, resources, first_message_timeout_s=1.0
            )
        except WebSocketRejected:
            return
        await websocket.send_json({"hello": principal.user_id, "client": principal.client_id})
        await websocket.close()

    async with served(app) as address:
        yield f"ws://{address}/feed"
    await resources.close()


async def test_token_in_subprotocol_is_accepted_and_never_echoed(
    feed_url: str, user: Session
) -> None:
    async with websockets.connect(
        feed_url,
        subprotocols=["finone.v1", f"bearer.{user.access_token}"],  # type: ignore[list-item]
    ) as ws:
        greeting = json.loads(await ws.recv())
        assert ws.subprotocol == "finone.v1"

    assert greeting == {"hello": user.user_id, "client": None}


async def test_token_in_first_message_is_accepted(feed_url: str, user: Session) -> None:
    async with websockets.connect(feed_url, origin=ALLOWED_ORIGIN) as ws:  # type: ignore[arg-type]
        await ws.send(json.dumps({"type": "auth", "token": user.access_token}))
        greeting = json.loads(await ws.recv())

    assert greeting["hello"] == user.user_id


async def _close_of(
    feed_url: str, first_message: str | None = None, **connect: object
) -> tuple[int, str]:
    async with websockets.connect(feed_url, **connect) as ws:  # type: ignore[arg-type]
        if first_message is not None:
            await ws.send(first_message)
        with pytest.raises(ConnectionClosed) as closed:
            await ws.recv()
    assert closed.value.rcvd is not None
    return closed.value.rcvd.code, closed.value.rcvd.reason


async def test_bad_or_missing_tokens_close_with_4401_and_a_reason(
    feed_url: str, auth_api: AuthApi, user: Session
) -> None:
    assert await _close_of(feed_url, subprotocols=["finone.v1", "bearer.not-a-token"]) == (
        4401,
        "the token is malformed",
    )
    assert (await _close_of(feed_url))[0] == 4401  # nothing sent before the timeout
    assert await _close_of(feed_url, "hello") == (4401, "the auth message is not JSON")
    assert (await _close_of(feed_url, json.dumps({"type": "subscribe"})))[0] == 4401
    await auth_api.http.post(f"{auth_api.url}/v1/auth/logout", headers=user.headers)
    code, reason = await _close_of(
        feed_url, json.dumps({"type": "auth", "token": user.access_token})
    )
    assert (code, reason) == (4401, "the session has ended; log in again")


async def test_foreign_origin_is_refused_before_the_upgrade(feed_url: str, user: Session) -> None:
    with pytest.raises(InvalidStatus) as refused:
        async with websockets.connect(
            feed_url,
            origin="https://evil.example.net",  # type: ignore[arg-type]
            subprotocols=["finone.v1", f"bearer.{user.access_token}"],  # type: ignore[list-item]
        ):
            pass

    assert refused.value.response.status_code == 403


async def test_token_without_the_stream_scope_closes_with_4403(
    feed_url: str, auth_api: AuthApi, user: Session
) -> None:
    token = await auth_api.client_token(user, ["market:read"])

    code, reason = await _close_of(feed_url, json.dumps({"type": "auth", "token": token}))

    assert (code, reason) == (4403, "the token lacks the 'stream:read' scope")


async def test_same_origin_page_on_any_port_is_let_in(feed_url: str, user: Session) -> None:
    # The web app served by this gateway, whatever port or host name it is reached on.
    own = "http://" + feed_url.removeprefix("ws://").split("/", 1)[0]
    async with websockets.connect(
        feed_url,
        origin=own,  # type: ignore[arg-type]
        subprotocols=["finone.v1", f"bearer.{user.access_token}"],  # type: ignore[list-item]
    ) as ws:
        assert json.loads(await ws.recv())["hello"] == user.user_id


async def test_foreign_origin_claiming_our_host_name_elsewhere_is_refused(
    feed_url: str, user: Session
) -> None:
    host = feed_url.removeprefix("ws://").split("/", 1)[0]
    with pytest.raises(InvalidStatus) as refused:
        async with websockets.connect(
            feed_url,
            origin=f"https://{host}.evil.example",  # type: ignore[arg-type]
            subprotocols=["finone.v1", f"bearer.{user.access_token}"],  # type: ignore[list-item]
        ):
            pass
    assert refused.value.response.status_code == 403
