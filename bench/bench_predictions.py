"""Forecast requests through Serve, with request batching and without, side by side in one run.

Two copies of the application (gateway + inference deployment) run on one local Ray cluster
against embedded Redis, Postgres and MLflow: one batches up to 16 forecasts per model call
(`FINONE_PREDICTION_BATCH_SIZE`, the default), the other one (batch size 1). The champion is an
MLP trained briefly on the bundled history of the four stocks. Concurrent clients ask
`GET /v1/predictions` for the four stocks in turn over real HTTP for a fixed time; the cases
alternate, several rounds each, and the medians are printed.
Run with `make bench` or `.venv/bin/python bench/bench_predictions.py [--clients N] [--seconds S]`.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import secrets
import statistics
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
import asyncpg
import mlflow
import ray
from mlflow import MlflowClient
from ray import serve

sys.path.insert(0, str(Path(__file__).parent))

from latency import percentiles_ms  # noqa: E402
from local_services import local_services  # noqa: E402

from actors.demo import DEMO_SYMBOLS  # noqa: E402
from cluster.embedded_mlflow import SERVICE_USERNAME, EmbeddedMlflow  # noqa: E402
from cluster.ports import free_port  # noqa: E402
from cluster.sample_data import load_sample_bars  # noqa: E402
from core.model_signing import signing_key  # noqa: E402
from core.settings import Settings  # noqa: E402
from serve.app import application  # noqa: E402
from serve.auth.accounts import create_user  # noqa: E402
from serve.auth.passwords import Passwords  # noqa: E402
from training.datasets import load_dataset  # noqa: E402
from training.registry import (  # noqa: E402
    TARGET_METRICS,
    ForecastSpec,
    log_forecaster,
    model_name,
    sign_version,
)
from training.trainer import TrainConfig, fit  # noqa: E402

PASSWORD = "a benchmark passphrase"
EMAIL = "bench@example.com"
# Generated: outside development the platform refuses a secret a person could guess.
SECRET_KEY = secrets.token_hex(32)
INSTRUMENTS = [f"alpaca:{symbol}" for symbol in DEMO_SYMBOLS]
CASES = {"batched (16)": 16, "unbatched (1)": 1}


def register_champion(database_url: str, tracking_uri: str, secret_key: str) -> None:
    """Both targets' champion, registered and signed with ``secret_key``'s signing key as the
    platform's training does (MLflow's client signed in through the environment)."""
    table = asyncio.run(load_dataset(database_url, INSTRUMENTS, "1d"))
    fitted = fit(table.iloc[:-300], table.iloc[-290:], TrainConfig(epochs=3))
    mlflow.set_tracking_uri(tracking_uri)
    mlflow.set_experiment("bench-predictions")
    spec = ForecastSpec("1d", 1, 5, tuple(INSTRUMENTS))
    with mlflow.start_run():
        uri = log_forecaster(fitted, spec, table.iloc[-290:])
    client = MlflowClient(tracking_uri)
    for name in (model_name(target, "1d") for target in TARGET_METRICS):
        version = str(mlflow.register_model(uri, name).version)
        sign_version(client, name, version, signing_key(secret_key))
        client.set_registered_model_alias(name, "champion", version)


async def load(url: str, token: str, clients: int, seconds: float) -> tuple[float, list[float]]:
    """(requests per second, latencies in seconds) of ``clients`` asking in a loop."""
    latencies: list[float] = []
    failures = 0
    deadline = time.perf_counter() + seconds
    headers = {"Authorization": f"Bearer {token}"}
    connector = aiohttp.TCPConnector(limit=clients)
    async with aiohttp.ClientSession(connector=connector, headers=headers) as http:

        async def client(offset: int) -> None:
            nonlocal failures
            n = offset
            while time.perf_counter() < deadline:
                instrument = INSTRUMENTS[n % len(INSTRUMENTS)]
                n += 1
                started = time.perf_counter()
                async with http.get(url, params={"instrument": instrument}) as response:
                    await response.read()
                    if response.status != 200:
                        failures += 1
                        continue
                latencies.append(time.perf_counter() - started)

        started = time.perf_counter()
        await asyncio.gather(*(client(n) for n in range(clients)))
        elapsed = time.perf_counter() - started
    if failures:
        raise RuntimeError(f"{failures} requests failed")
    return len(latencies) / elapsed, latencies


async def main(clients: int, seconds: float, rounds: int) -> None:
    with tempfile.TemporaryDirectory(prefix="finone-bench-predictions-") as tmp:
        mlflow_server = EmbeddedMlflow(Path(tmp), "127.0.0.1", free_port(), os.environ)
        mlflow_server.process.start()
        async with local_services(Path(tmp)) as services:
            try:
                await mlflow_server.process.wait_until_ready(lambda: mlflow_server.ready(2.0), 120)
                os.environ["MLFLOW_TRACKING_USERNAME"] = SERVICE_USERNAME
                os.environ["MLFLOW_TRACKING_PASSWORD"] = mlflow_server.service_password
                await load_sample_bars(services.database_url)
                await asyncio.to_thread(
                    register_champion, services.database_url, mlflow_server.url, SECRET_KEY
                )
                settings = Settings(
                    environment="test",
                    secret_key=SECRET_KEY,
                    redis_url=services.redis_url,
                    database_url=services.database_url,
                    mlflow_tracking_uri=mlflow_server.url,
                )
                conn = await asyncpg.connect(services.database_url)
                await create_user(conn, EMAIL, await Passwords(settings).hash(PASSWORD))
                await conn.close()
                ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
                port = free_port()
                serve.start(http_options={"host": "127.0.0.1", "port": port})
                for n, batch in enumerate(CASES.values()):
                    case = settings.model_copy(update={"prediction_batch_size": batch})
                    serve.run(application(case), name=f"case{n}", route_prefix=f"/case{n}")
                base = f"http://127.0.0.1:{port}"
                async with aiohttp.ClientSession() as http:
                    async with http.post(
                        f"{base}/case0/v1/auth/token",
                        data={"grant_type": "password", "username": EMAIL, "password": PASSWORD},
                    ) as response:
                        token = (await response.json())["access_token"]
                urls = {name: f"{base}/case{n}/v1/predictions" for n, name in enumerate(CASES)}
                for url in urls.values():  # warm-up: models loaded, connections open
                    await load(url, token, clients, 3)
                results: dict[str, list[tuple[float, float, float]]] = {name: [] for name in CASES}
                for _ in range(rounds):
                    for name, url in urls.items():
                        rate, latencies = await load(url, token, clients, seconds)
                        results[name].append((rate, *percentiles_ms(latencies)))
            finally:
                if ray.is_initialized():
                    serve.shutdown()
                    ray.shutdown()
                mlflow_server.process.stop()
    print(
        f"GET /v1/predictions, {clients} concurrent clients, {rounds} rounds of {seconds:.0f} s "
        f"per case (medians):"
    )
    print(f"{'case':<16}{'requests/s':>12}{'p50 ms':>10}{'p99 ms':>10}")
    for name, runs in results.items():
        rate, p50, p99 = (statistics.median(r[i] for r in runs) for i in range(3))
        print(f"{name:<16}{rate:>12,.0f}{p50:>10.1f}{p99:>10.1f}")
    batched, unbatched = (statistics.median(r[0] for r in runs) for runs in results.values())
    print(f"batching: {batched / unbatched:.2f}x the requests per second")


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--rounds", type=int, default=3)
    arguments = parser.parse_args()
    asyncio.run(main(arguments.clients, arguments.seconds, arguments.rounds))
