"""Authenticating a WebSocket handshake (the live feed uses this before anything else).

Browsers cannot set an Authorization header on a WebSocket, and URLs end up in logs, so the
access token travels either as a subprotocol (``Sec-WebSocket-Protocol: finone.v1,
bearer.<token>``; the server answers with ``finone.v1`` only, never echoing the token) or in the
first message (``{"type": "auth", "token": "..."}``). CORS middleware does not apply to
WebSockets, so the Origin is checked here against the allow-list. A handshake waiting for its
auth message holds a connection until the message's timeout: each client address may have only
``MAX_WAITING_PER_ADDRESS`` of those at once (per replica); more are closed at once (1013).
Every 4401 and 4403 is audited as ``access_denied``, as refused HTTP requests are.
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from typing import NoReturn

import asyncpg
import redis.exceptions
from fastapi import WebSocket
from starlette.websockets import WebSocketDisconnect

from serve.auth.access_tokens import Principal, TokenError
from serve.auth.roles import Scope
from serve.dependencies import audit_refusal, client_ip_of, verify_bearer
from serve.resources import Resources

__all__ = [
    "SUBPROTOCOL",
    "BEARER_PREFIX",
    "CLOSE_UNAUTHENTICATED",
    "CLOSE_FORBIDDEN",
    "CLOSE_TRY_AGAIN_LATER",
    "MAX_WAITING_PER_ADDRESS",
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
MAX_WAITING_PER_ADDRESS = 8
# Handshakes waiting for their auth message, per client address, in this replica (one event
# loop: no lock needed).
_waiting: Counter[str] = Counter()


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
    address = client_ip_of(websocket, resources.trusted_proxies())
    origin = websocket.headers.get("origin")
    if origin is not None and not _origin_allowed(websocket, origin, resources):
        # Before the upgrade: the client sees HTTP 403.
        await _refuse(websocket, resources, address, CLOSE_FORBIDDEN, "origin not allowed")
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
        token = await _token_from_first_message(
            websocket, resources, address, first_message_timeout_s
        )
    try:
        principal = await verify_bearer(resources, token)
    except TokenError as error:
        await _refuse(websocket, resources, address, CLOSE_UNAUTHENTICATED, str(error))
    except (redis.exceptions.RedisError, asyncpg.PostgresError, ConnectionError):
        await _reject(websocket, CLOSE_TRY_AGAIN_LATER, "cannot check the token right now")
    if required_scope not in principal.scopes:
        lacks = f"the token lacks the {required_scope.value!r} scope"
        await _refuse(websocket, resources, address, CLOSE_FORBIDDEN, lacks, principal.user_id)
    return principal


async def _token_from_first_message(
    websocket: WebSocket, resources: Resources, address: str, timeout_s: float
) -> str:
    if _waiting[address] >= MAX_WAITING_PER_ADDRESS:
        await _reject(websocket, CLOSE_TRY_AGAIN_LATER, "too many connections waiting to log in")
    _waiting[address] += 1
    try:
        text = await asyncio.wait_for(websocket.receive_text(), timeout_s)
    except TimeoutError:
        await _refuse(
            websocket, resources, address, CLOSE_UNAUTHENTICATED, "no auth message in time"
        )
    except (WebSocketDisconnect, KeyError, RuntimeError):
        # KeyError/RuntimeError: the client sent bytes instead of text, or went away.
        await _refuse(
            websocket, resources, address, CLOSE_UNAUTHENTICATED, "expected an auth message"
        )
    finally:
        _waiting[address] -= 1
        if not _waiting[address]:
            del _waiting[address]
    if len(text.encode()) > _MAX_AUTH_MESSAGE_BYTES:
        await _refuse(
            websocket, resources, address, CLOSE_UNAUTHENTICATED, "auth message too large"
        )
    try:
        message = json.loads(text)
    except ValueError:
        await _refuse(
            websocket, resources, address, CLOSE_UNAUTHENTICATED, "the auth message is not JSON"
        )
    if not (
        isinstance(message, dict)
        and message.get("type") == "auth"
        and isinstance(message.get("token"), str)
    ):
        expected = 'expected {"type": "auth", "token": "..."}'
        await _refuse(websocket, resources, address, CLOSE_UNAUTHENTICATED, expected)
    token: str = message["token"]
    return token


async def _refuse(
    websocket: WebSocket,
    resources: Resources,
    address: str,
    code: int,
    reason: str,
    user_id: str | None = None,
) -> NoReturn:
    """Close with a 4401 or 4403 that the audit log records."""
    details = {
        "status": code,
        "code": "forbidden" if code == CLOSE_FORBIDDEN else "invalid_token",
        "reason": reason,
        "method": "WEBSOCKET",
        "path": websocket.url.path,
    }
    await audit_refusal(resources, address, details, user_id)
    await _reject(websocket, code, reason)


async def _reject(websocket: WebSocket, code: int, reason: str) -> NoReturn:
    try:
        await websocket.close(code=code, reason=reason)
    except RuntimeError:
        pass  # already closed by the client
    raise WebSocketRejected(reason)


def _origin_allowed(websocket: WebSocket, origin: str, resources: Resources) -> bool:
    """The gateway's own origin (the web app it serves, whatever its port or host name), or one
    the settings allow. A page elsewhere cannot make a browser send our Host with its Origin."""
    scheme = "https" if websocket.url.scheme == "wss" else "http"
    own = f"{scheme}://{websocket.headers.get('host', '')}"
    return origin == own or origin in resources.settings.allowed_origins
