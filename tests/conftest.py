"""Fixtures shared by the whole suite: real servers, started once per session.

Redis and Postgres are the embedded servers ``finone up`` itself runs (or the ones ``REDIS_URL``
and ``DATABASE_URL`` name); MLflow and Ray start only when a test asks for them.
"""

from __future__ import annotations

import os
import secrets
import shutil
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import httpx
import pytest

from cluster.embedded_mlflow import SERVICE_USERNAME, EmbeddedMlflow, service_password_path
from cluster.embedded_postgres import EmbeddedPostgres
from cluster.embedded_redis import EmbeddedRedis
from cluster.ingress import haproxy_runtime_dir, ingress_env
from cluster.ports import free_port
from cluster.secrets_file import write_secret
from core.health import check_postgres, check_redis, passes
from core.migrate import upgrade_database_async
from core.model_signing import SIGNING_KEY_ENV, signing_key
from core.settings import Settings

# The gateway on the session's cluster, for the API tests in tests/serve and the attacks in
# tests/security alike.
pytest_plugins = ("tests.gateway_fixtures",)

TEMPLATE_DATABASE = "finone_test_template"
CAPTURES_DIR = Path(__file__).resolve().parents[1].parent / "shared" / "captures"


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("finone-data")


@pytest.fixture(scope="session")
async def redis_url(data_dir: Path) -> AsyncIterator[str]:
    if url := os.environ.get("REDIS_URL"):
        yield url
        return
    server = EmbeddedRedis(data_dir, "127.0.0.1", free_port(), os.environ)
    server.process.start()
    try:
        await server.process.wait_until_ready(lambda: passes(check_redis(server.url, 1.0)), 90)
        yield server.url
    finally:
        server.process.stop()


@pytest.fixture(scope="session")
async def postgres_server_url(data_dir: Path) -> AsyncIterator[str]:
    """A URL of the server's maintenance database, for creating and dropping test databases."""
    if url := os.environ.get("DATABASE_URL"):
        yield url
        return
    server = EmbeddedPostgres(data_dir, "127.0.0.1", free_port(), os.environ)
    server.prepare()
    server.process.start()
    try:
        await server.process.wait_until_ready(
            lambda: passes(check_postgres(server.url_for("postgres"), 1.0)), 90
        )
        yield server.url_for("postgres")
    finally:
        server.process.stop()


def _database_url(server_url: str, database: str) -> str:
    base, _, _ = server_url.rpartition("/")
    return f"{base}/{database}"


@pytest.fixture(scope="session")
async def migrated_template(postgres_server_url: str) -> str:
    """A database with every migration applied, copied for each test that wants a clean one."""
    conn = await asyncpg.connect(postgres_server_url)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{TEMPLATE_DATABASE}"')
        await conn.execute(f'CREATE DATABASE "{TEMPLATE_DATABASE}"')
    finally:
        await conn.close()
    await upgrade_database_async(_database_url(postgres_server_url, TEMPLATE_DATABASE))
    return TEMPLATE_DATABASE


async def _create_database(server_url: str, template: str = "template0") -> str:
    name = f"test_{uuid.uuid4().hex[:12]}"
    conn = await asyncpg.connect(server_url)
    try:
        await conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
    finally:
        await conn.close()
    return name


async def _drop_database(server_url: str, name: str) -> None:
    conn = await asyncpg.connect(server_url)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


@pytest.fixture
async def empty_database_url(postgres_server_url: str) -> AsyncIterator[str]:
    """A brand-new database with no schema at all, dropped after the test."""
    name = await _create_database(postgres_server_url)
    yield _database_url(postgres_server_url, name)
    await _drop_database(postgres_server_url, name)


@pytest.fixture
async def database_url(postgres_server_url: str, migrated_template: str) -> AsyncIterator[str]:
    """A fresh database with the current schema and no rows, dropped after the test."""
    name = await _create_database(postgres_server_url, migrated_template)
    yield _database_url(postgres_server_url, name)
    await _drop_database(postgres_server_url, name)


# The session's MLflow service account, in the environment before anything starts: MLflow's
# client reads it there, and Ray's workers (Tune's trials, the inference replicas) inherit the
# environment that ray.init sees. A server named by MLFLOW_TRACKING_URI comes with its own.
os.environ.setdefault("MLFLOW_TRACKING_USERNAME", SERVICE_USERNAME)
os.environ.setdefault("MLFLOW_TRACKING_PASSWORD", secrets.token_hex(32))
# The platform secret of the session's services, and the model-signing key derived from it that
# training processes (the retrain scheduler, Tune's driver) sign what they register with.
# One per run, as random as a real one must be outside development.
SECRET_KEY = secrets.token_hex(32)
os.environ[SIGNING_KEY_ENV] = signing_key(SECRET_KEY).hex()


@pytest.fixture(scope="session")
async def mlflow_url(data_dir: Path) -> AsyncIterator[str]:
    """The authenticated tracking server; its service account is the session's."""
    if url := os.environ.get("MLFLOW_TRACKING_URI"):
        yield url
        return
    write_secret(service_password_path(data_dir), os.environ["MLFLOW_TRACKING_PASSWORD"])
    server = EmbeddedMlflow(data_dir, "127.0.0.1", free_port(), os.environ)
    server.process.start()
    try:
        await server.process.wait_until_ready(lambda: server.ready(2.0), 120)
        yield server.url
    finally:
        server.process.stop()


@pytest.fixture(scope="session")
def ray_cluster() -> Iterator[None]:
    """One local Ray cluster for the whole session (ray.init costs ~9 s here), taking the API's
    connections through the platform's default ingress, as `finone up` does."""
    import ray

    runtime_dir = haproxy_runtime_dir(uuid.uuid4().hex)
    # The cluster's processes (Serve's controller, its HAProxy managers) read it at start.
    os.environ.update(ingress_env(Settings().ingress, runtime_dir))
    # "local" always starts a fresh cluster, never joins one `finone up` left on this machine.
    ray.init(
        address="local",
        num_cpus=2,
        namespace="finone-tests",
        log_to_driver=False,
        include_dashboard=False,
    )
    try:
        yield
    finally:
        from ray import serve

        serve.shutdown()
        ray.shutdown()
        shutil.rmtree(runtime_dir, ignore_errors=True)


@pytest.fixture(scope="session")
def metrics_url(ray_cluster: None) -> str:
    """Where the session cluster's metrics agent serves every process's metrics (Prometheus)."""
    import ray

    # Ray picks the port itself (a free one) and reports it per node.
    port = ray.nodes()[0]["MetricsExportPort"]
    return f"http://127.0.0.1:{port}/metrics"


@pytest.fixture(scope="session")
def serve_port(ray_cluster: None) -> int:
    """Serve's HTTP proxy on a free port of the session cluster."""
    from ray import serve

    port = free_port()
    serve.start(http_options={"host": "127.0.0.1", "port": port})
    return port


@pytest.fixture(scope="session")
async def service_settings(
    tmp_path_factory: pytest.TempPathFactory,
    redis_url: str,
    postgres_server_url: str,
    migrated_template: str,
    mlflow_url: str,
) -> Settings:
    """Settings pointing at the session's real services, as ``finone up`` resolves them.

    The database is the session's own copy of the schema: deployments hold connections to it,
    which a template database must never have.
    """
    name = await _create_database(postgres_server_url, migrated_template)
    return Settings(
        environment="test",
        secret_key=SECRET_KEY,
        data_dir=tmp_path_factory.mktemp("stack"),
        redis_url=redis_url,
        database_url=_database_url(postgres_server_url, name),
        mlflow_tracking_uri=mlflow_url,
        health_timeout_s=1.0,
    )


@pytest.fixture(scope="session")
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=30) as client:
        yield client
