"""The WebSocket live feed, ``/v1/stream``: see ``serve.live.protocol`` for its messages."""

from __future__ import annotations

from fastapi import APIRouter, WebSocket

from serve.live.client import LiveClient
from serve.live.handshake import WebSocketRejected, authenticate_websocket
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
    if not hub.admit(principal.user_id, limit):
        await websocket.close(
            code=CLOSE_TOO_MANY_CONNECTIONS, reason=f"at most {limit} connections per user"
        )
        return
    try:
        await LiveClient(websocket, principal, resources, hub).run()
    finally:
        hub.release(principal.user_id)
