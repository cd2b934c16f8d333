"""The memory floor of an idle WebSocket connection under each way of serving one: what the live
feed's 50 KB-per-client target can be measured against.

1,000 clients connect and stay idle; each server's resident memory growth per client is printed:
a FastAPI app that only accepts and reads, served by Ray Serve (replica and ingress: Serve's
proxy, then HAProxy, the platform's default); the same app under plain uvicorn; and a bare
``websockets`` server (no ASGI framework, no compression). The platform's own figures are in
bench_live_feed.py.
Run with `make bench` or `.venv/bin/python bench/bench_ws_memory.py [--clients N]`.
"""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path

import psutil
import websockets
from fastapi import FastAPI, WebSocket, WebSocketDisconnect
from local_serve import Ingress, ingress_processes, local_serve, processes
from ray import serve

from cluster.ports import free_port

# The same app as below, served by uvicorn in a process of its own.
UVICORN = f"""
import sys, uvicorn
sys.path.insert(0, {str(Path(__file__).parent)!r})
uvicorn.run("bench_ws_memory:app", host="127.0.0.1", port=int(sys.argv[1]), log_level="warning")
"""

BARE_SERVER = """
import asyncio, sys
from websockets.asyncio.server import serve
async def reader(ws):
    async for _ in ws:
        pass
async def main():
    async with serve(reader, "127.0.0.1", int(sys.argv[1]), compression=None):
        await asyncio.Future()
asyncio.run(main())
"""

app = FastAPI()


@app.websocket("/ws")
async def reader(websocket: WebSocket) -> None:
    await websocket.accept()
    try:
        while True:
            await websocket.receive_text()
    except WebSocketDisconnect:
        pass


@serve.deployment(max_ongoing_requests=5_000, ray_actor_options={"num_cpus": 0.1})
@serve.ingress(app)
class Reader:
    pass


def rss_kib(group: list[psutil.Process]) -> float:
    return sum(p.memory_info().rss for p in group) / 1024


async def per_client_kib(url: str, clients: int, groups: list[list[psutil.Process]]) -> list[float]:
    before = [rss_kib(group) for group in groups]
    connected = []
    for start in range(0, clients, 50):
        batch = min(50, clients - start)
        connected += await asyncio.gather(
            *(websockets.connect(url, open_timeout=60, compression=None) for _ in range(batch))
        )
    await asyncio.sleep(3)
    grown = [(rss_kib(group) - b) / clients for group, b in zip(groups, before, strict=True)]
    await asyncio.gather(*(c.close() for c in connected))
    return grown


async def in_subprocess(source: str, path: str, clients: int) -> float:
    port = free_port()
    server = subprocess.Popen([sys.executable, "-c", source, str(port)])
    try:
        await asyncio.sleep(3)
        (grown,) = await per_client_kib(
            f"ws://127.0.0.1:{port}{path}", clients, [[psutil.Process(server.pid)]]
        )
    finally:
        server.terminate()
        server.wait()
    return grown


async def through_serve(ingress: Ingress, clients: int) -> tuple[float, float]:
    """KiB per client in the replica and in the ingress (Serve's proxy actor, or the HAProxy
    manager actor and HAProxy itself)."""
    with local_serve(ingress) as port:
        serve.run(Reader.bind(), name="reader", route_prefix="/")
        await asyncio.sleep(3)
        replica, proxy = await per_client_kib(
            f"ws://127.0.0.1:{port}/ws",
            clients,
            [processes("ServeReplica:reader:Reader"), ingress_processes(ingress)],
        )
    return replica, proxy


async def main(clients: int) -> None:
    served = {ingress: await through_serve(ingress, clients) for ingress in ("serve", "haproxy")}
    cases: list[tuple[str, Callable[[], Awaitable[float]]]] = [
        ("FastAPI app under plain uvicorn", lambda: in_subprocess(UVICORN, "/ws", clients)),
        ("bare websockets server", lambda: in_subprocess(BARE_SERVER, "", clients)),
    ]
    print(f"memory per idle WebSocket client, {clients:,} clients:")
    for ingress, label in (("serve", "Serve's proxy"), ("haproxy", "HAProxy")):
        replica, proxy = served[ingress]
        name = f"FastAPI app through Serve, {label}"
        print(f"  {name:<42}{replica:>7.1f} KiB replica + {proxy:.1f} KiB ingress")
    for name, measure in cases:
        print(f"  {name:<42}{await measure():>7.1f} KiB")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=1_000)
    asyncio.run(main(parser.parse_args().clients))
