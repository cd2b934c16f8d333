"""Auth costs: login and token-refresh latency (p50/p99) and what verifying an access token adds
to every request.

The gateway's FastAPI app (``serve.app.create_api``) runs under uvicorn on loopback, against
embedded Redis and Postgres; requests go one at a time over real HTTP. Verification is also timed
in-process: signature + claims alone, then with the Redis revocation check.
Run with `make bench` or `.venv/bin/python bench/bench_auth.py [--logins N] [--requests N]`.
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import httpx
import uvicorn

sys.path.insert(0, str(Path(__file__).parent))

from latency import percentiles_ms  # noqa: E402
from local_services import local_services  # noqa: E402

from cluster.ports import free_port  # noqa: E402
from core.settings import Settings  # noqa: E402
from serve.app import create_api  # noqa: E402
from serve.dependencies import AnyPrincipal, verify_bearer  # noqa: E402
from serve.resources import Resources  # noqa: E402

PASSWORD = "correct horse battery staple"


async def timed(count: int, call: Callable[[int], Awaitable[None]]) -> list[float]:
    samples = []
    for n in range(count):
        started = time.perf_counter()
        await call(n)
        samples.append(time.perf_counter() - started)
    return samples


def row(name: str, samples_s: list[float]) -> None:
    p50, p99 = percentiles_ms(samples_s)
    print(f"{name:<44} {p50:>9.3f} ms {p99:>9.3f} ms   (n={len(samples_s)})")


async def main(logins: int, requests: int) -> None:
    with tempfile.TemporaryDirectory(prefix="finone-bench-auth-") as tmp:
        async with local_services(Path(tmp)) as services:
            settings = Settings(
                environment="test",
                secret_key=secrets.token_hex(32),
                redis_url=services.redis_url,
                database_url=services.database_url,
                mlflow_tracking_uri="http://127.0.0.1:1",
                trusted_proxies=["127.0.0.1"],
                auth_requests_per_ip=1_000_000,
            )
            resources = Resources(settings)
            api = create_api(resources)

            # A route that only authenticates, to isolate verification from any endpoint work.
            @api.get("/bench/authenticated")
            async def authenticated(principal: AnyPrincipal) -> dict[str, str]:
                return {"sub": principal.user_id}

            port = free_port()
            server = uvicorn.Server(
                uvicorn.Config(
                    api, host="127.0.0.1", port=port, log_level="warning", access_log=False
                )
            )
            serving = asyncio.create_task(server.serve())
            while not server.started:
                await asyncio.sleep(0.05)
            base = f"http://127.0.0.1:{port}"
            try:
                async with httpx.AsyncClient(base_url=base, timeout=30) as http:
                    await run(http, resources, logins, requests, settings)
            finally:
                server.should_exit = True
                await serving
                await resources.close()


async def run(
    http: httpx.AsyncClient, resources: Resources, logins: int, requests: int, settings: Settings
) -> None:
    email = "bench@example.com"
    assert (
        await http.post("/v1/auth/register", json={"email": email, "password": PASSWORD})
    ).status_code == 201
    form = {"grant_type": "password", "username": email, "password": PASSWORD}
    refresh_token = ""
    access_token = ""

    async def login(_: int) -> None:
        nonlocal refresh_token, access_token
        response = await http.post("/v1/auth/token", data=form)
        assert response.status_code == 200, response.text
        refresh_token = response.json()["refresh_token"]
        access_token = response.json()["access_token"]

    async def refresh(_: int) -> None:
        nonlocal refresh_token
        response = await http.post(
            "/v1/auth/token", data={"grant_type": "refresh_token", "refresh_token": refresh_token}
        )
        assert response.status_code == 200, response.text
        refresh_token = response.json()["refresh_token"]

    async def hash_only(_: int) -> None:
        await resources.passwords.hash(PASSWORD)

    hashing = await timed(logins, hash_only)
    login_samples = await timed(logins, login)
    refresh_samples = await timed(requests, refresh)
    headers = {"Authorization": f"Bearer {access_token}"}

    async def unauthenticated(_: int) -> None:
        assert (await http.get("/healthz")).status_code == 200

    async def authenticated(_: int) -> None:
        assert (await http.get("/bench/authenticated", headers=headers)).status_code == 200

    # Interleaved rounds, so both routes see the same machine noise.
    open_samples: list[float] = []
    auth_samples: list[float] = []
    for _ in range(5):
        open_samples += await timed(requests // 5, unauthenticated)
        auth_samples += await timed(requests // 5, authenticated)

    decode_samples = []
    for _ in range(requests):
        started = time.perf_counter()
        resources.tokens.decode(access_token)
        decode_samples.append(time.perf_counter() - started)
    verify_samples = await timed(requests, lambda _: verify_bearer(resources, access_token))

    print(
        f"argon2id m={settings.password_hash_memory_kib} KiB t={settings.password_hash_time_cost} "
        f"p={settings.password_hash_parallelism}; ES256 access tokens; loopback HTTP, sequential"
    )
    print(f"{'':<44} {'p50':>12} {'p99':>12}")
    row("argon2id hash alone (in process)", hashing)
    row("login: POST /v1/auth/token password", login_samples)
    row("refresh: POST /v1/auth/token refresh_token", refresh_samples)
    row("GET /healthz (no auth)", open_samples)
    row("GET /bench/authenticated (bearer verified)", auth_samples)
    row("verify: signature + claims (in process)", decode_samples)
    row("verify: + Redis revocation check (in process)", verify_samples)
    overhead = statistics.median(auth_samples) - statistics.median(open_samples)
    print(
        f"per-request cost of authentication over HTTP (median difference): {overhead * 1e3:.3f} ms"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--logins", type=int, default=50)
    parser.add_argument("--requests", type=int, default=1_000)
    arguments = parser.parse_args()
    asyncio.run(main(arguments.logins, arguments.requests))
