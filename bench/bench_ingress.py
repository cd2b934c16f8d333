"""Serve ingress side by side: the platform under `finone up` with HAProxy ingress (the default)
and with Serve's Python proxy (FINONE_INGRESS=serve), and the same FastAPI app
(``serve.app.create_api``) under one plain uvicorn process, all on this machine, no feeds.

For each: ``GET /healthz`` and an authenticated ``GET /v1/auth/me`` at saturation (wrk, 2
threads, 32 connections: requests/s and mean latency), then at a fixed open-loop rate (each
request sent when it is due whatever the answers so far; latency counted from when it was due:
p50 and p99; ``open_loop.py``). The three servers take turns, ``--rounds`` times; each figure is
the median of its rounds, and the ratios compare HAProxy with Serve's proxy.
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
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
from pydantic import SecretStr

sys.path.insert(0, str(Path(__file__).parent))

from bench_predictions import INSTRUMENTS, register_champion  # noqa: E402
from local_services import local_services  # noqa: E402
from open_loop import open_loop  # noqa: E402
from platform_process import platform_env, start_platform, stop_platform  # noqa: E402

from cluster.ports import free_port  # noqa: E402
from cluster.sample_data import load_sample_bars  # noqa: E402
from cluster.service_urls import (  # noqa: E402
    database_url_for,
    mlflow_client_env_for,
    mlflow_url_for,
)
from cluster.state import read_state  # noqa: E402
from core.settings import Settings  # noqa: E402

PASSWORD = "correct horse battery staple"
CONNECTIONS = 32
_PLAIN_UVICORN = """
import uvicorn
from core.settings import Settings
from serve.app import create_api
from serve.resources import Resources
uvicorn.run(create_api(Resources(Settings())), host="127.0.0.1", port={port}, log_level="warning")
"""


@dataclass(frozen=True)
class WrkRun:
    rate: float
    mean_ms: float
    p99_ms: float


def wrk(url: str, seconds: int, token: str | None, script: Path | None = None) -> WrkRun:
    """Requests/s, mean and p99 latency at saturation; non-2xx answers fail the run."""
    options = ["-H", f"Authorization: Bearer {token}"] if token else []
    if script is not None:
        options += ["-s", str(script)]
    out = subprocess.run(
        [
            "wrk",
            "-t2",
            f"-c{CONNECTIONS}",
            f"-d{seconds}s",
            "--timeout",
            "10s",
            "--latency",
            *options,
            url,
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    if "Non-2xx" in out or "Socket errors" in out:
        raise SystemExit(f"wrk saw errors on {url}:\n{out}")
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    mean = re.search(r"Latency\s+([\d.]+)(us|ms|s)", out)
    p99 = re.search(r"99%\s+([\d.]+)(us|ms|s)", out)
    assert mean is not None and p99 is not None, out
    return WrkRun(rate, _ms(mean), _ms(p99))


def _ms(match: re.Match[str]) -> float:
    return float(match.group(1)) * {"us": 1e-3, "ms": 1.0, "s": 1e3}[match.group(2)]


def rotating_instruments(work: Path) -> Path:
    """A wrk script asking for the demo stocks' forecasts in turn, as bench_predictions does."""
    paths = ", ".join(f'"/v1/predictions?instrument={i}"' for i in INSTRUMENTS)
    script = work / "predictions.lua"
    script.write_text(
        f"local paths = {{{paths}}}\nlocal n = 0\n"
        "request = function()\n  n = n + 1\n"
        '  return wrk.format("GET", paths[n % #paths + 1])\nend\n'
    )
    return script


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


@asynccontextmanager
async def platform(ingress: str, work: Path) -> AsyncIterator[str]:
    """`finone up` with no feeds, the bundled stocks' history in its bars table and a signed
    champion for both targets in its MLflow."""
    data = Path(tempfile.mkdtemp(dir=work))
    secret = secrets.token_hex(32)
    # No feeds, and nothing to retrain on (an instrument without bars): the scheduler's first run
    # ignores FINONE_RETRAIN_MIN_NEW_BARS, and a Tune run would take the CPU being measured.
    env = platform_env(
        data,
        FINONE_FEEDS="{}",
        FINONE_INGRESS=ingress,
        FINONE_SECRET_KEY=secret,
        FINONE_RETRAIN_INSTRUMENTS='["bench:none"]',
    )
    process, _ = start_platform(env, work / f"platform-{ingress}.log")
    try:
        settings = Settings(data_dir=data, secret_key=SecretStr(secret))
        # /readyz answers once the API is deployed; the stack describes itself after the rest.
        deadline = time.monotonic() + 120
        while read_state(data) is None and time.monotonic() < deadline:
            await asyncio.sleep(0.5)
        database_url = database_url_for(settings)
        await load_sample_bars(database_url)
        # MLflow's client reads its account from the environment and leaves its URL there: the
        # next platform must not inherit either.
        before = dict(os.environ)
        os.environ.update(mlflow_client_env_for(settings))
        try:
            await asyncio.to_thread(
                register_champion, database_url, mlflow_url_for(settings), secret
            )
        finally:
            os.environ.clear()
            os.environ.update(before)
        yield f"http://127.0.0.1:{env['FINONE_API_PORT']}"
    finally:
        stop_platform(process)


def first_forecast(base: str, token: str) -> None:
    """Wait for the inference replicas to load the champion (they look every few seconds)."""
    deadline = time.monotonic() + 120
    url = f"{base}/v1/predictions?instrument={INSTRUMENTS[0]}"
    while (
        status := httpx.get(url, headers={"Authorization": f"Bearer {token}"}).status_code
    ) != 200:
        if time.monotonic() > deadline:
            raise SystemExit(f"no forecast from {base} in 120 s (last answer {status})")
        time.sleep(0.5)


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


async def measure(
    base: str, seconds: int, rate: float, into: Figures, predictions: Path | None
) -> None:
    """Each path at saturation (wrk) and at ``rate`` on schedule; ``/v1/predictions`` (through
    the wrk script ``predictions``) only where the app is deployed with inference: plain
    uvicorn's has none."""
    token = signed_in(base)
    paths: list[tuple[str, str | None, Path | None]] = [
        ("/healthz", None, None),
        ("/v1/auth/me", token, None),
    ]
    if predictions is not None:
        first_forecast(base, token)
        paths.append(("/v1/predictions", token, predictions))
    for path, bearer, script in paths:
        wrk(f"{base}{path}", 2, bearer, script)  # warm-up: connections, replicas' first requests
        saturated = wrk(f"{base}{path}", seconds, bearer, script)
        urls = (
            [f"{base}{path}?instrument={i}" for i in INSTRUMENTS] if script else [f"{base}{path}"]
        )
        headers = {"Authorization": f"Bearer {bearer}"} if bearer else {}
        p50, p99 = await open_loop(urls, rate, seconds, headers)
        figures = {
            "rps": saturated.rate,
            "mean": saturated.mean_ms,
            "p99 saturated": saturated.p99_ms,
            "p50": p50,
            "p99": p99,
        }
        for name, value in figures.items():
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

    predictions = rotating_instruments(work)

    async def with_services() -> None:
        async with local_services(work / "services") as services:
            for _ in range(args.rounds):
                for ingress in ("serve", "haproxy"):
                    async with platform(ingress, work) as base:
                        await measure(base, args.seconds, args.rate, results[ingress], predictions)
                with plain_uvicorn(services.redis_url, services.database_url, work) as base:
                    await measure(base, args.seconds, args.rate, results["uvicorn"], None)

    asyncio.run(with_services())

    print(
        f"{CONNECTIONS} connections at saturation (wrk, {args.seconds} s); "
        f"open loop at {args.rate:.0f} req/s; median of {args.rounds} rounds"
    )
    print("uvicorn runs create_api without Ray, so without inference: no /v1/predictions there")
    print(f"{'':38}{'HAProxy':>10}{'Serve proxy':>13}{'uvicorn':>10}{'HAProxy/proxy':>15}")
    for figure in results["haproxy"]:
        medians = {k: statistics.median(v[figure]) for k, v in results.items() if figure in v}
        unit = "req/s" if figure.endswith("rps") else "ms"
        ratio = medians["haproxy"] / medians["serve"]
        uvicorn = f"{medians['uvicorn']:>10.1f}" if "uvicorn" in medians else f"{'-':>10}"
        print(
            f"{figure + ' (' + unit + ')':38}{medians['haproxy']:>10.1f}"
            f"{medians['serve']:>13.1f}{uvicorn}{ratio:>14.2f}x"
        )


if __name__ == "__main__":
    main()
