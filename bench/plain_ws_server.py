"""The live-feed benchmark's baseline: a plain uvicorn + FastAPI WebSocket server that reads one
Redis stream and sends each event to every client in a frame of its own.

Run by bench_live_feed.py as ``python bench/plain_ws_server.py REDIS_URL STREAM_KEY PORT``.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import redis.asyncio as aioredis
import uvicorn
from fastapi import FastAPI, WebSocket, WebSocketDisconnect

from core.events import decode_event, event_to_json
from core.redis_keys import EVENT_FIELD


def make_app(redis_url: str, key: str) -> FastAPI:
    clients: set[WebSocket] = set()

    async def fan_out() -> None:
        redis = aioredis.from_url(redis_url)
        position = "$"
        while True:
            replies = await redis.xread({key: position}, count=1_000, block=1_000)
            for _, entries in replies:
                for entry_id, fields in entries:
                    position = entry_id.decode()
                    text = event_to_json(decode_event(fields[EVENT_FIELD])).decode()
                    for client in list(clients):
                        try:
                            await client.send_text(text)
                        except (WebSocketDisconnect, RuntimeError):
                            clients.discard(client)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        task = asyncio.create_task(fan_out())
        yield
        task.cancel()

    app = FastAPI(lifespan=lifespan)

    @app.websocket("/ws")
    async def ws(websocket: WebSocket) -> None:
        await websocket.accept()
        clients.add(websocket)
        try:
            while True:
                await websocket.receive_text()
        except WebSocketDisconnect:
            clients.discard(websocket)

    return app


if __name__ == "__main__":
    redis_url, key, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
    uvicorn.run(make_app(redis_url, key), host="127.0.0.1", port=port, log_level="warning")
