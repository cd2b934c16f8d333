"""Serve ingress side by side: the platform under `finone up` with HAProxy ingress (the default)
and with Serve's Python proxy (FINONE_INGRESS=serve), and the same FastAPI app
(``serve.app.create_api``) under one plain uvicorn process, all on this machine, no feeds.

For each: ``GET /healthz`` and an authenticated ``GET /v1/auth/me`` at saturation (wrk, 2
threads, 32 connections: requests/s and mean latency), then at a fixed open-loop rate (each
request sent when it is due whatever the answers so far; latency counted from when it was due:
p50 and p99). The three servers take turns, ``--rounds`` times; each figure is the median of its
rounds, and the ratios compare HAProxy with Serve's proxy.
Run with `make bench` or `.venv/bin/python bench/bench_ingress.py [--rounds N] [--seconds S]`.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).parent))

from latency import percentiles_ms  # noqa: E402
from local_services import local_services  # noqa: E402
from platform_process import platform_env, start_platform, stop_platform  # noqa: E402

from cluster.ports import free_port  # noqa: E402

PASSWORD = "correct horse battery staple"
CONNECTIONS = 32
_PLAIN_UVICORN = """
import uvicorn
from core.settings import Settings
from serve.app import create_api
from serve.resources import Resources
uvicorn.run(create_api(Resources(Settings())), host="127.0.0.1", port={port}, log_level="warning")
"""


def wrk(url: str, seconds: int, token: str | None) -> tuple[float, float]:
    """(requests/s, mean latency ms) at saturation; non-2xx answers fail the run."""
    headers = ["-H", f"Authorization: Bearer {token}"] if token else []
    out = subprocess.run(
        ["wrk", "-t2", f"-c{CONNECTIONS}", f"-d{seconds}s", "--latency", *headers, url],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    if "Non-2xx" in out or "Socket errors" in out:
        raise SystemExit(f"wrk saw errors on {url}:\n{out}")
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    latency = re.search(r"Latency\s+([\d.]+)(us|ms|s)", out)
    assert latency is not None, out
    mean_ms = float(latency.group(1)) * {"us": 1e-3, "ms": 1.0, "s": 1e3}[latency.group(2)]
    return rate, mean_ms


async def open_loop(
    url: str, rate: float, seconds: float, token: str | None
) -> tuple[float, float]:
    """(p50, p99) ms at ``rate`` requests/s sent on schedule over up to 64 connections."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    limits = httpx.Limits(max_connections=64, max_keepalive_connections=64)
    latencies: list[float] = []
    async with httpx.AsyncClient(limits=limits, timeout=30, headers=headers) as client:

        async def one(due: float) -> None:
            await asyncio.sleep(max(0.0, due - time.perf_counter()))
            response = await client.get(url)
            response.raise_for_status()
            latencies.append(time.perf_counter() - due)

        start = time.perf_counter() + 0.5
        count = int(rate * seconds)
        await asyncio.gather(*(one(start + i / rate) for i in range(count)))
    return percentiles_ms(latencies)


def signed_in(base: str) -> str:
    email = f"bench-{secrets.token_hex(6)}@example.com"
    registered = httpx.post(f"{base}/v1/auth/register", json={"email": email, "password": PASSWORD})
    registered.raise_for_status()
    token = httpx.post(
        f"{base}/v1/auth/token",
        data={"grant_type": "password", "username": email, "password": PASSWORD},
    )
    token.raise_for_status()
    return str(token.json()["access_token"])


@contextmanager
def platform(ingress: str, work: Path) -> Iterator[str]:
    data = Path(tempfile.mkdtemp(dir=work))
    env = platform_env(data, FINONE_FEEDS="{}", FINONE_INGRESS=ingress)
    process, _ = start_platform(env, work / f"platform-{ingress}.log")
    try:
        yield f"http://127.0.0.1:{env['FINONE_API_PORT']}"
    finally:
        stop_platform(process)


@contextmanager
def plain_uvicorn(redis_url: str, database_url: str, work: Path) -> Iterator[str]:
    port = free_port()
    env = {
        **os.environ,
        "REDIS_URL": redis_url,
        "DATABASE_URL": database_url,
        "FINONE_SECRET_KEY": secrets.token_hex(32),
        "FINONE_DATA_DIR": str(work / "uvicorn"),
    }
    with (work / "uvicorn.log").open("ab") as log:
        process = subprocess.Popen(
            [sys.executable, "-c", _PLAIN_UVICORN.format(port=port)],
            env=env,
            stdout=log,
            stderr=log,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{base}/healthz").status_code == 200:
                    break
            except httpx.HTTPError:
                if time.monotonic() > deadline or process.poll() is not None:
                    raise SystemExit(f"no uvicorn; see {work / 'uvicorn.log'}") from None
                time.sleep(0.2)
        yield base
    finally:
        process.terminate()
        process.wait(30)


Figures = dict[str, list[float]]


async def measure(base: str, seconds: int, rate: float, into: Figures) -> None:
    token = signed_in(base)
    for path, bearer in (("/healthz", None), ("/v1/auth/me", token)):
        wrk(f"{base}{path}", 2, bearer)  # warm-up: connections, replicas' first requests
        saturated, mean_ms = wrk(f"{base}{path}", seconds, bearer)
        p50, p99 = await open_loop(f"{base}{path}", rate, seconds, bearer)
        for name, value in (("rps", saturated), ("mean", mean_ms), ("p50", p50), ("p99", p99)):
            into.setdefault(f"{path} {name}", []).append(value)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--rate", type=float, default=100.0, help="open-loop requests/s")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("bench_ingress needs wrk: apt-get install wrk")

    work = Path(tempfile.mkdtemp(prefix="bench-ingress-"))
    results: dict[str, Figures] = {"haproxy": {}, "serve": {}, "uvicorn": {}}

    async def with_services() -> None:
        async with local_services(work / "services") as services:
            for _ in range(args.rounds):
                for ingress in ("serve", "haproxy"):
                    with platform(ingress, work) as base:
                        await measure(base, args.seconds, args.rate, results[ingress])
                with plain_uvicorn(services.redis_url, services.database_url, work) as base:
                    await measure(base, args.seconds, args.rate, results["uvicorn"])

    asyncio.run(with_services())

    print(
        f"{CONNECTIONS} connections at saturation (wrk, {args.seconds} s); "
        f"open loop at {args.rate:.0f} req/s; median of {args.rounds} rounds"
    )
    print(f"{'':32}{'HAProxy':>12}{'Serve proxy':>14}{'uvicorn':>12}{'HAProxy/proxy':>16}")
    for figure in results["haproxy"]:
        medians = {k: statistics.median(v[figure]) for k, v in results.items()}
        unit = "req/s" if figure.endswith("rps") else "ms"
        ratio = medians["haproxy"] / medians["serve"]
        print(
            f"{figure + ' (' + unit + ')':32}{medians['haproxy']:>12.1f}"
            f"{medians['serve']:>14.1f}{medians['uvicorn']:>12.1f}{ratio:>15.2f}x"
        )


if __name__ == "__main__":
    main()
