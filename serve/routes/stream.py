"""The WebSocket live feed, ``/v1/stream``: see ``serve.live.protocol`` for its messages."""

from __future__ import annotations

import redis.exceptions
from fastapi import APIRouter, WebSocket

from serve.live.client import LiveClient
from serve.live.handshake import (
    CLOSE_TRY_AGAIN_LATER,
    WebSocketRejected,
    authenticate_websocket,
)
from serve.live.protocol import CLOSE_TOO_MANY_CONNECTIONS
from serve.resources import Resources

__all__ = ["router"]

router = APIRouter()


@router.websocket("/v1/stream")
async def live_feed(websocket: WebSocket) -> None:
    resources: Resources = websocket.app.state.resources
    hub = resources.live_hub()
    try:
        principal = await authenticate_websocket(websocket, resources)
    except WebSocketRejected:
        hub.metrics.disconnects.inc(tags={"reason": "rejected"})
        return
    limit = resources.settings.live_max_connections_per_user
    try:
        lease = await hub.admit(principal.user_id, limit)
    except (redis.exceptions.RedisError, OSError):
        await websocket.close(
            code=CLOSE_TRY_AGAIN_LATER, reason="cannot count your connections right now"
        )
        return
    if lease is None:
        await websocket.close(
            code=CLOSE_TOO_MANY_CONNECTIONS, reason=f"at most {limit} connections per user"
        )
        return
    try:
        await LiveClient(websocket, principal, resources, hub).run()
    finally:
        await hub.release(lease)
