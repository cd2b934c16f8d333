"""The gateway deployed with ``serve.run`` on the session's Ray cluster, over real HTTP."""

from __future__ import annotations

import httpx
import pytest
from ray import serve

from cluster.ports import free_port
from core.settings import Settings
from serve.app import Gateway
from tests.serve.auth_api import PASSWORD, AuthApi, Session, new_email


@pytest.fixture(scope="session")
def gateway_without_redis_url(serve_port: int, service_settings: Settings) -> str:
    broken = service_settings.model_copy(update={"redis_url": f"redis://127.0.0.1:{free_port()}/0"})
    serve.run(Gateway.bind(broken), name="gateway-no-redis", route_prefix="/no-redis")
    return f"http://127.0.0.1:{serve_port}/no-redis"


@pytest.fixture(scope="session")
def gateway_without_postgres_url(serve_port: int, service_settings: Settings) -> str:
    broken = service_settings.model_copy(
        update={"database_url": f"postgresql://nobody:x@127.0.0.1:{free_port()}/none"}
    )
    serve.run(Gateway.bind(broken), name="gateway-no-postgres", route_prefix="/no-postgres")
    return f"http://127.0.0.1:{serve_port}/no-postgres"


async def test_healthz_answers_ok(http: httpx.AsyncClient, gateway_url: str) -> None:
    response = await http.get(f"{gateway_url}/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


async def test_readyz_with_every_service_up_is_ready(
    http: httpx.AsyncClient, gateway_url: str
) -> None:
    response = await http.get(f"{gateway_url}/readyz")
    assert response.status_code == 200
    assert response.json() == {"status": "ready"}


async def test_readyz_with_redis_down_is_503_and_operators_see_which(
    http: httpx.AsyncClient, gateway_without_redis_url: str, gateway_url: str, operator: Session
) -> None:
    response = await http.get(f"{gateway_without_redis_url}/readyz")
    services = await http.get(f"{gateway_url}/v1/ops/services", headers=operator.headers)

    assert response.status_code == 503
    assert response.json() == {
        "code": "not_ready",
        "message": "a service the gateway needs is down",
        "details": None,
    }
    assert services.status_code == 200
    assert {c["name"] for c in services.json()["checks"]} == {"redis", "postgres", "mlflow"}


async def test_unknown_route_is_404_in_the_error_format(
    http: httpx.AsyncClient, gateway_url: str
) -> None:
    # Under /v1: any other path is the web app's client-side route (tests/serve/test_web_app.py).
    response = await http.get(f"{gateway_url}/v1/no/such/route")
    assert response.status_code == 404
    assert response.json() == {"code": "not_found", "message": "Not Found", "details": None}


async def test_wrong_method_is_405_in_the_error_format(
    http: httpx.AsyncClient, gateway_url: str
) -> None:
    response = await http.post(f"{gateway_url}/healthz")
    assert response.status_code == 405
    assert response.json()["code"] == "method_not_allowed"


async def test_openapi_documents_health_endpoints_and_error_body(
    http: httpx.AsyncClient, gateway_url: str
) -> None:
    document = (await http.get(f"{gateway_url}/openapi.json")).json()
    assert {"/healthz", "/readyz"} <= set(document["paths"])
    not_ready = document["paths"]["/readyz"]["get"]["responses"]["503"]
    assert not_ready["content"]["application/json"]["schema"]["$ref"].endswith("/ErrorBody")


async def test_with_redis_down_auth_fails_closed_with_503_and_creates_nothing(
    http: httpx.AsyncClient, gateway_without_redis_url: str, auth_api: AuthApi, user: Session
) -> None:
    email = new_email()

    me = await http.get(f"{gateway_without_redis_url}/v1/auth/me", headers=user.headers)
    register = await http.post(
        f"{gateway_without_redis_url}/v1/auth/register",
        json={"email": email, "password": PASSWORD},
    )
    login = await http.post(
        f"{gateway_without_redis_url}/v1/auth/token",
        data={"grant_type": "password", "username": user.email, "password": PASSWORD},
    )

    for response in (me, register, login):
        assert response.status_code == 503
        assert response.json()["code"] == "service_unavailable"
        assert response.headers["retry-after"] == "5"
    assert (await auth_api.login(email, PASSWORD)).status_code == 400
    assert (await auth_api.me(user.access_token)).status_code == 200


async def test_with_postgres_down_the_api_answers_503_not_500(
    http: httpx.AsyncClient, gateway_without_postgres_url: str, user: Session
) -> None:
    login = await http.post(
        f"{gateway_without_postgres_url}/v1/auth/token",
        data={"grant_type": "password", "username": user.email, "password": PASSWORD},
    )
    ready = await http.get(f"{gateway_without_postgres_url}/readyz")
    # Refused without looking anything up: still a 401, though its audit record cannot be kept.
    anonymous = await http.get(f"{gateway_without_postgres_url}/v1/auth/me")

    assert login.status_code == 503
    assert login.json()["code"] == "service_unavailable"
    assert ready.status_code == 503 and ready.json()["code"] == "not_ready"
    assert anonymous.status_code == 401 and anonymous.json()["code"] == "not_authenticated"
