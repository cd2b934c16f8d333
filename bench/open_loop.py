"""Requests sent at a fixed rate whatever the answers so far (open loop), each timed from when it
was due, on keep-alive HTTP/1.1 connections made of asyncio streams and httptools' response
parser.

httpx's connection pool spends CPU on every request waiting for a connection: at 100 req/s of
80 ms forecasts it took more of the two shared cores than the servers it measured, and its
queue showed up as their latency (p50 1.6 s on the client against 86 ms in the gateway).
"""

from __future__ import annotations

import asyncio
import time
from urllib.parse import urlsplit

import httptools
from latency import percentiles_ms

__all__ = ["open_loop"]

_CONNECTIONS = 64


class _Response:
    """httptools' callbacks for one response: only its end matters."""

    def __init__(self) -> None:
        self.complete = False

    def on_message_complete(self) -> None:
        self.complete = True


async def _status_of_next_response(reader: asyncio.StreamReader) -> int:
    response = _Response()
    parser = httptools.HttpResponseParser(response)
    while not response.complete:
        data = await reader.read(65_536)
        if not data:
            raise ConnectionResetError("the server closed the connection mid-response")
        parser.feed_data(data)
    return int(parser.get_status_code())


async def open_loop(
    urls: list[str], rate: float, seconds: float, headers: dict[str, str]
) -> tuple[float, float]:
    """(p50, p99) ms of ``rate`` GETs a second for ``seconds``, to ``urls`` in turn (one host),
    over up to 64 connections; a non-2xx answer fails the run."""
    first = urlsplit(urls[0])
    host, port = first.hostname or "127.0.0.1", first.port or 80
    head = "".join(f"{name}: {value}\r\n" for name, value in headers.items())
    targets = [urlsplit(url)._replace(scheme="", netloc="").geturl() for url in urls]
    requests = [
        f"GET {target} HTTP/1.1\r\nHost: {first.netloc}\r\n{head}\r\n".encode()
        for target in targets
    ]
    due: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()
    latencies: list[float] = []

    async def connection() -> None:
        reader, writer = await asyncio.open_connection(host, port)
        try:
            while True:
                when, request = await due.get()
                for attempt in (1, 2):
                    try:
                        writer.write(request)
                        status = await _status_of_next_response(reader)
                        break
                    except ConnectionError:
                        # An idle keep-alive connection the server let go: once more, anew.
                        if attempt == 2:
                            raise
                        writer.close()
                        reader, writer = await asyncio.open_connection(host, port)
                if not 200 <= status < 300:
                    raise RuntimeError(f"HTTP {status} from {urls[0]}")
                latencies.append(time.perf_counter() - when)
                due.task_done()
        finally:
            writer.close()

    async def schedule() -> None:
        start = time.perf_counter() + 0.5
        for i in range(int(rate * seconds)):
            when = start + i / rate
            await asyncio.sleep(max(0.0, when - time.perf_counter()))
            due.put_nowait((when, requests[i % len(requests)]))
        await due.join()

    workers = [asyncio.create_task(connection()) for _ in range(_CONNECTIONS)]
    scheduler = asyncio.create_task(schedule())
    try:
        await asyncio.wait([scheduler, *workers], return_when=asyncio.FIRST_COMPLETED)
        for worker in workers:
            if worker.done():
                worker.result()
        scheduler.result()
    finally:
        for task in [scheduler, *workers]:
            task.cancel()
        await asyncio.gather(scheduler, *workers, return_exceptions=True)
    return percentiles_ms(latencies)
