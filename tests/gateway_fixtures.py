"""The gateway and its inference deployment, deployed once per session on the shared Ray cluster,
plus signed-in callers, champion models to serve, and a publisher putting events into Redis as
feeds do."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
import ray
from mlflow import MlflowClient
from ray import serve

from actors.publisher import RedisPublisher
from actors.retrain_scheduler import RETRAIN_ACTOR_NAME, RetrainPlan, RetrainScheduler
from core.intervals import Interval
from core.named_actors import RAY_NAMESPACE
from core.settings import Settings
from serve.app import application
from serve.auth.bootstrap import create_admin
from serve.inference.champions import ServedModel
from tests.polling import wait_until
from tests.serve.auth_api import PASSWORD, AuthApi, Session, new_email
from tests.serve.champions import RETURNS, VOLATILITY, Champions, register_champions
from training.evaluation import WalkForward
from training.search import SearchSettings


@pytest.fixture(scope="session")
def gateway_settings(service_settings: Settings) -> Settings:
    # Tests speak through 127.0.0.1 as a trusted proxy, so each test can be its own client IP.
    # Inference follows the registry and publishes forecasts quickly enough for tests to watch,
    # daily, minute and second ones.
    return service_settings.model_copy(
        update={
            "trusted_proxies": ["127.0.0.1"],
            "retrain_intervals": ["1d", "1m", "1s"],
            "champion_poll_s": 0.5,
            "prediction_publish_s": 0.5,
        }
    )


APP = "gateway-test"


@pytest.fixture(scope="session")
def gateway_url(serve_port: int, gateway_settings: Settings) -> str:
    serve.run(application(gateway_settings), name=APP, route_prefix="/")
    return f"http://127.0.0.1:{serve_port}"


@pytest.fixture(scope="session")
def auth_api(http: httpx.AsyncClient, gateway_url: str) -> AuthApi:
    return AuthApi(http, gateway_url)


@pytest.fixture
async def user(auth_api: AuthApi) -> Session:
    return await auth_api.signed_up()


@pytest.fixture(scope="session")
async def admin_email(gateway_settings: Settings) -> str:
    email = new_email()
    assert gateway_settings.database_url
    await create_admin(gateway_settings.database_url, gateway_settings, email, PASSWORD)
    return email


@pytest.fixture
async def admin(auth_api: AuthApi, admin_email: str) -> Session:
    # Signed in afresh for each test: an access token lives 15 minutes, the session longer.
    return await auth_api.logged_in(admin_email, PASSWORD)


@pytest.fixture
async def operator(auth_api: AuthApi, admin: Session) -> Session:
    session = await auth_api.signed_up()
    response = await auth_api.http.put(
        f"{auth_api.url}/v1/admin/users/{session.user_id}/role",
        json={"role": "operator"},
        headers=admin.headers,
    )
    assert response.status_code == 200, response.text
    return await auth_api.logged_in(session.email, PASSWORD)


@pytest.fixture(scope="session")
async def champions(gateway_url: str, gateway_settings: Settings, mlflow_url: str) -> Champions:
    """Small forecasters registered as both targets' daily champions, and served, with the
    bundled IBM and MSFT history in the gateway's database to forecast from."""
    return await _served_champions(gateway_settings, mlflow_url, "1d")


@pytest.fixture(scope="session")
async def minute_champions(
    gateway_url: str, gateway_settings: Settings, mlflow_url: str, champions: Champions
) -> Champions:
    """Both targets' champions of 1 min bars, served beside the daily ones."""
    return await _served_champions(gateway_settings, mlflow_url, "1m")


@pytest.fixture(scope="session")
async def second_champions(
    gateway_url: str, gateway_settings: Settings, mlflow_url: str, minute_champions: Champions
) -> Champions:
    """Both targets' champions of 1 s bars too: every interval the test gateway serves has its
    champions, so none answers 503 for want of one."""
    return await _served_champions(gateway_settings, mlflow_url, "1s")


async def _served_champions(settings: Settings, mlflow_url: str, interval: Interval) -> Champions:
    registered = await register_champions(settings, mlflow_url, interval)
    inference = serve.get_deployment_handle("Forecaster", app_name=APP)
    expected = {
        "returns": registered.returns_version,
        "volatility": registered.volatility_version,
    }

    async def serving() -> bool:
        served: list[ServedModel] = await inference.served.remote()
        versions = {m.target: m.version for m in served if m.interval == interval}
        return versions == expected

    await wait_until(serving, 60, f"inference to load the {interval} champions")
    return registered


@pytest.fixture
async def without_champions(
    http: httpx.AsyncClient, gateway_url: str, user: Session, champions: Champions
) -> AsyncIterator[None]:
    """Neither target has a champion while the test runs; the session's come back after."""
    client = MlflowClient(champions.tracking_uri)
    held = {
        name: client.get_model_version_by_alias(name, "champion").version
        for name in (RETURNS, VOLATILITY)
    }
    for name in held:
        client.delete_registered_model_alias(name, "champion")
    yield
    for name, version in held.items():
        client.set_registered_model_alias(name, "champion", version)

    async def serving_again() -> bool:
        response = await http.get(
            f"{gateway_url}/v1/predictions",
            params={"instrument": "alpaca:IBM"},
            headers=user.headers,
        )
        return response.status_code == 200

    await wait_until(serving_again, 30, "the champions to serve again")


@pytest.fixture
async def publisher(gateway_settings: Settings) -> AsyncIterator[RedisPublisher]:
    assert gateway_settings.redis_url
    publisher = RedisPublisher(gateway_settings.redis_url, max_delay_s=0.001)
    publisher.start()
    yield publisher
    await publisher.close()


@pytest.fixture
def instrument() -> str:
    return f"test:L{uuid.uuid4().hex[:10].upper()}"


@pytest.fixture
def retrain_scheduler(
    ray_cluster: None, gateway_settings: Settings, mlflow_url: str, tmp_path: Path
) -> Iterator[None]:
    """The scheduler `finone up` runs, so the retrain endpoints answer as deployed; its
    instruments have no history, so a fuzzed trigger ends at once, waiting for data."""
    assert gateway_settings.database_url
    plan = RetrainPlan(
        instruments=("fuzz:NO-HISTORY",),
        intervals=("1d",),
        every_s=86_400,
        min_new_bars=10_000,
        walk_forward=WalkForward(),
        search=SearchSettings(samples=1, max_epochs=1),
        storage=str(tmp_path),
    )
    actor = RetrainScheduler.options(  # type: ignore[attr-defined]
        name=RETRAIN_ACTOR_NAME, namespace=RAY_NAMESPACE, lifetime="detached"
    ).remote(gateway_settings.database_url, mlflow_url, plan)
    # Up before the first test calls it: the gateway gives the actor a few seconds to answer
    # (then 503), and a worker starting on a loaded machine can take longer than that.
    ray.get(actor.status.remote(), timeout=120)
    yield
    ray.kill(actor, no_restart=True)
