"""An ASGI app served by uvicorn inside the test's own event loop, on a free loopback port."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import uvicorn
from starlette.types import ASGIApp

from cluster.ports import free_port

__all__ = ["served"]


@asynccontextmanager
async def served(app: ASGIApp) -> AsyncIterator[str]:
    """``app`` listening until the block ends; yields its ``host:port``."""
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    task = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.05)
    try:
        yield f"127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task
