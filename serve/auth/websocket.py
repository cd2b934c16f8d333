"""Authenticating a WebSocket handshake (the live feed uses this before anything else).

Browsers cannot set an Authorization header on a WebSocket, and URLs end up in logs, so the
access token travels either as a subprotocol (``Sec-WebSocket-Protocol: finone.v1,
bearer.<token>``; the server answers with ``finone.v1`` only, never echoing the token) or in the
first message (``{"type": "auth", "token": "..."}``). CORS middleware does not apply to
WebSockets, so the Origin is checked here against the allow-list.
"""

from __future__ import annotations

import asyncio
import json
from typing import NoReturn

import asyncpg
import redis.exceptions
from fastapi import WebSocket
from starlette.websockets import WebSocketDisconnect

from serve.auth.access_tokens import Principal, TokenError
from serve.auth.roles import Scope
from serve.dependencies import verify_bearer
from serve.resources import Resources

__all__ = [
    "SUBPROTOCOL",
    "BEARER_PREFIX",
    "CLOSE_UNAUTHENTICATED",
    "CLOSE_FORBIDDEN",
    "CLOSE_TRY_AGAIN_LATER",
    "WebSocketRejected",
    "authenticate_websocket",
]

SUBPROTOCOL = "finone.v1"
BEARER_PREFIX = "bearer."
# 4000-4999 are the application's own close codes; these mirror HTTP 401 and 403.
CLOSE_UNAUTHENTICATED = 4401
CLOSE_FORBIDDEN = 4403
CLOSE_TRY_AGAIN_LATER = 1013
_MAX_AUTH_MESSAGE_BYTES = 8_192


class WebSocketRejected(Exception):
    """The connection was refused and closed; the handler should simply return."""


async def authenticate_websocket(
    websocket: WebSocket,
    resources: Resources,
    required_scope: Scope = Scope.stream_read,
    first_message_timeout_s: float = 5.0,
) -> Principal:
    """Accept the connection of an authenticated caller from an allowed origin.

    Anything else is closed (a foreign Origin with HTTP 403 before the upgrade; a missing,
    invalid or insufficient token with close code 4401/4403 and the reason) and raises
    ``WebSocketRejected``.
    """
    origin = websocket.headers.get("origin")
    if origin is not None and origin not in resources.settings.allowed_origins:
        await websocket.close(code=CLOSE_FORBIDDEN, reason="origin not allowed")
        raise WebSocketRejected("origin not allowed")
    offered = [
        p.strip()
        for p in websocket.headers.get("sec-websocket-protocol", "").split(",")
        if p.strip()
    ]
    token = next(
        (p.removeprefix(BEARER_PREFIX) for p in offered if p.startswith(BEARER_PREFIX)), None
    )
    await websocket.accept(subprotocol=SUBPROTOCOL if SUBPROTOCOL in offered else None)
    if token is None:
        token = await _token_from_first_message(websocket, first_message_timeout_s)
    try:
        principal = await verify_bearer(resources, token)
    except TokenError as error:
        await _reject(websocket, CLOSE_UNAUTHENTICATED, str(error))
    except (redis.exceptions.RedisError, asyncpg.PostgresError, ConnectionError):
        await _reject(websocket, CLOSE_TRY_AGAIN_LATER, "cannot check the token right now")
    if required_scope not in principal.scopes:
        await _reject(
            websocket, CLOSE_FORBIDDEN, f"the token lacks the {required_scope.value!r} scope"
        )
    return principal


async def _token_from_first_message(websocket: WebSocket, timeout_s: float) -> str:
    try:
        text = await asyncio.wait_for(websocket.receive_text(), timeout_s)
    except TimeoutError:
        await _reject(websocket, CLOSE_UNAUTHENTICATED, "no auth message in time")
    except (WebSocketDisconnect, KeyError, RuntimeError):
        # KeyError/RuntimeError: the client sent bytes instead of text, or went away.
        await _reject(websocket, CLOSE_UNAUTHENTICATED, "expected an auth message")
    if len(text) > _MAX_AUTH_MESSAGE_BYTES:
        await _reject(websocket, CLOSE_UNAUTHENTICATED, "auth message too large")
    try:
        message = json.loads(text)
    except ValueError:
        await _reject(websocket, CLOSE_UNAUTHENTICATED, "the auth message is not JSON")
    if not (
        isinstance(message, dict)
        and message.get("type") == "auth"
        and isinstance(message.get("token"), str)
    ):
        await _reject(websocket, CLOSE_UNAUTHENTICATED, 'expected {"type": "auth", "token": "..."}')
    token: str = message["token"]
    return token


async def _reject(websocket: WebSocket, code: int, reason: str) -> NoReturn:
    try:
        await websocket.close(code=code, reason=reason)
    except RuntimeError:
        pass  # already closed by the client
    raise WebSocketRejected(reason)
