"""Live feed: events/s delivered and publish-to-client latency with 100 and 1,000 clients, the
platform's /v1/stream through Ray Serve under each ingress (HAProxy, the default, and Serve's
proxy) side by side with a plain uvicorn + FastAPI WebSocket server sending one event per frame;
and the memory each connected, idle client costs the server (replica plus ingress processes).
Clients offer permessage-deflate, as browsers do.

Events enter Redis through the real publisher, stamped with the time they were published; every
client subscribes to the same trade stream and records, per event, the time from publication
to its arrival. Both servers, Redis and the clients share this machine's cores.
Run with `make bench` or `.venv/bin/python bench/bench_live_feed.py [--events N]`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import psutil
import websockets

sys.path.insert(0, str(Path(__file__).parent))

from local_serve import INGRESS_LABELS, ingress_processes, local_serve, processes  # noqa: E402
from local_services import local_services  # noqa: E402

from actors.publisher import RedisPublisher  # noqa: E402
from cluster.ports import free_port  # noqa: E402
from core.events import Trade  # noqa: E402
from core.redis_keys import stream_key  # noqa: E402
from core.settings import Settings  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
INSTRUMENT = "bench:LIVE-USD"
PASSWORD = "a benchmark passphrase"


class Client:
    """One subscriber: counts events and their publish-to-arrival latencies."""

    def __init__(self, ws: Any, acks: bool) -> None:
        self.ws = ws
        self.acks = acks
        self.received = 0
        self.latencies_ns: list[int] = []

    async def read(self, expected: int) -> None:
        while self.received < expected:
            message = json.loads(await self.ws.recv())
            now = time.time_ns()
            if self.acks:  # the platform's protocol: batched frames, acknowledged
                if message.get("type") != "data":
                    continue
                events = [e["event"] for e in message["events"]]
                await self.ws.send(json.dumps({"type": "ack", "seq": message["seq"]}))
            else:
                events = [message]
            for event in events:
                self.latencies_ns.append(now - event["receive_ts_ns"])
            self.received += len(events)


async def connect_ours(url: str, token: str) -> Client:
    ws = await websockets.connect(
        url,
        subprotocols=["finone.v1", f"bearer.{token}"],
        max_size=2**24,
        open_timeout=60,  # type: ignore[list-item]
    )
    await ws.send(
        json.dumps({"type": "subscribe", "instruments": [INSTRUMENT], "channels": ["trades"]})
    )
    while json.loads(await ws.recv())["type"] != "subscribed":
        pass
    return Client(ws, acks=True)


async def connect_plain(url: str) -> Client:
    return Client(await websockets.connect(url, max_size=2**24, open_timeout=60), acks=False)


def rss_mib(pids: list[int]) -> float:
    return sum(psutil.Process(pid).memory_info().rss for pid in pids) / 2**20


async def run_case(
    connect: Callable[[], Awaitable[Client]],
    clients: int,
    events: int,
    publisher: RedisPublisher,
    server_pids: list[int],
    proxy_pids: list[int],
) -> dict[str, float]:
    before, proxy_before = rss_mib(server_pids), rss_mib(proxy_pids)
    connected: list[Client] = []
    for start in range(0, clients, 50):
        connected += await asyncio.gather(*(connect() for _ in range(min(50, clients - start))))
    await asyncio.sleep(2)
    per_client_kib = (rss_mib(server_pids) - before) * 1024 / clients
    proxy_kib = (rss_mib(proxy_pids) - proxy_before) * 1024 / clients
    readers = [asyncio.create_task(c.read(events)) for c in connected]
    started = time.perf_counter()
    published = 0
    while published < events:
        now = time.time_ns()
        burst = [
            Trade(
                instrument=INSTRUMENT,
                trade_id=str(published + n),
                price="100.5",
                size="1",
                side="buy",
                exchange_ts_ns=now,
                receive_ts_ns=now,
            )
            for n in range(min(50, events - published))
        ]
        publisher.publish(burst)
        published += len(burst)
        await asyncio.sleep(0.005)
    done, pending = await asyncio.wait(readers, timeout=180)
    elapsed = time.perf_counter() - started
    for task in pending:
        task.cancel()
    latencies = sorted(ns for c in connected for ns in c.latencies_ns)
    delivered = sum(c.received for c in connected)
    await asyncio.gather(*(c.ws.close() for c in connected), return_exceptions=True)
    return {
        "delivered": delivered,
        "complete": float(len(pending) == 0),
        "events_per_s": delivered / elapsed,
        "p50_ms": statistics.median(latencies) / 1e6 if latencies else float("nan"),
        "p99_ms": latencies[int(len(latencies) * 0.99)] / 1e6 if latencies else float("nan"),
        "kib_per_client": per_client_kib,
        "proxy_kib_per_client": proxy_kib,
    }


async def main(events_100: int, events_1000: int, ingresses: list[str]) -> None:
    from ray import serve

    from serve.app import Gateway
    from serve.auth.accounts import create_user
    from serve.auth.passwords import Passwords

    results = []
    with tempfile.TemporaryDirectory(prefix="finone-bench-live-") as tmp:
        async with local_services(Path(tmp)) as services:
            settings = Settings(
                environment="test",
                secret_key=secrets.token_hex(32),
                redis_url=services.redis_url,
                database_url=services.database_url,
                mlflow_tracking_uri="http://127.0.0.1:9",
                live_max_connections_per_user=5_000,
            )
            import asyncpg

            conn = await asyncpg.connect(services.database_url)
            await create_user(conn, "bench@example.com", await Passwords(settings).hash(PASSWORD))
            await conn.close()
            plain_port = free_port()
            plain = subprocess.Popen(
                [
                    sys.executable,
                    str(ROOT / "bench" / "plain_ws_server.py"),
                    services.redis_url,
                    stream_key("trades", INSTRUMENT),
                    str(plain_port),
                ],
                env={**os.environ, "PYTHONPATH": str(ROOT)},
            )
            publisher = RedisPublisher(services.redis_url)
            publisher.start()
            try:
                for ingress in ingresses:
                    label = INGRESS_LABELS[ingress]
                    with local_serve(ingress) as api_port:
                        serve.run(Gateway.bind(settings), name="finone", route_prefix="/")
                        token = await signed_in(f"http://127.0.0.1:{api_port}")
                        await asyncio.sleep(3)
                        ours_url = f"ws://127.0.0.1:{api_port}/v1/stream"
                        plain_url = f"ws://127.0.0.1:{plain_port}/ws"
                        for clients, events in ((100, events_100), (1_000, events_1000)):
                            for name, connect, pids, ingress_pids in (
                                (
                                    f"finone /v1/stream, {label}",
                                    partial(connect_ours, ours_url, token),
                                    [p.pid for p in processes("ServeReplica:finone:Gateway")],
                                    [p.pid for p in ingress_processes(ingress)],
                                ),
                                (
                                    "plain uvicorn+FastAPI",
                                    partial(connect_plain, plain_url),
                                    [plain.pid],
                                    [],
                                ),
                            ):
                                result = await run_case(
                                    connect, clients, events, publisher, pids, ingress_pids
                                )
                                results.append((clients, events, name, result))
                                print(f"  done: {clients} clients, {name}", file=sys.stderr)
            finally:
                await publisher.close()
                plain.terminate()
                plain.wait(10)
    print(
        f"{'clients':>7} {'events':>7}  {'server':<30}{'delivered/s':>12}{'p50 ms':>9}"
        f"{'p99 ms':>9}{'KiB/client':>11}{'+ingress KiB':>13}  complete"
    )
    for clients, events, name, r in results:
        print(
            f"{clients:>7} {events:>7}  {name:<30}{r['events_per_s']:>12,.0f}{r['p50_ms']:>9.1f}"
            f"{r['p99_ms']:>9.1f}{r['kib_per_client']:>11.1f}"
            f"{r['proxy_kib_per_client']:>13.1f}  {'yes' if r['complete'] else 'NO'}"
        )


async def signed_in(base: str) -> str:
    async with httpx.AsyncClient() as http:
        login = await http.post(
            f"{base}/v1/auth/token",
            data={"grant_type": "password", "username": "bench@example.com", "password": PASSWORD},
        )
    login.raise_for_status()
    return str(login.json()["access_token"])


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--events-100", type=int, default=2_000, help="events published to 100 clients"
    )
    parser.add_argument(
        "--events-1000", type=int, default=300, help="events published to 1,000 clients"
    )
    parser.add_argument(
        "--ingress",
        choices=sorted(INGRESS_LABELS),
        action="append",
        help="measure only this ingress (repeatable; default both)",
    )
    arguments = parser.parse_args()
    ingresses = arguments.ingress or ["haproxy", "serve"]
    asyncio.run(main(arguments.events_100, arguments.events_1000, ingresses))
