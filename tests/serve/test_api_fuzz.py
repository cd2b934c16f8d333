"""Property-based fuzzing of the whole API from its OpenAPI schema (schemathesis), as a signed-in
admin so every route is reached: no 5xx, and every response conforms to the schema.

Operations are driven one by one with Hypothesis rather than through schemathesis' pytest
plugin, whose fixture support does not work with pytest 9.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import httpx
import pytest
import ray
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from actors.retrain_scheduler import RETRAIN_ACTOR_NAME, RetrainPlan, RetrainScheduler
from cluster.components import RAY_NAMESPACE
from cluster.settings import Settings
from serve.auth.accounts import create_user
from serve.auth.passwords import Passwords
from serve.auth.roles import Role
from tests.serve.auth_api import PASSWORD, new_ip
from tests.serve.champions import Champions
from training.evaluation import WalkForward
from training.search import SearchSettings

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


class Admins:
    """Makes a new admin for every case: fuzzed password changes count as failed logins, a fuzzed
    logout ends a session, and neither may starve the cases after them."""

    def __init__(self, settings: Settings, gateway_url: str) -> None:
        assert settings.database_url
        self._database_url = settings.database_url
        self._gateway_url = gateway_url
        self._password_hash = asyncio.run(Passwords(settings).hash(PASSWORD))

    def new_token(self) -> str:
        email = f"fuzz-{uuid.uuid4().hex[:12]}@example.com"
        asyncio.run(self._create(email))
        response = httpx.post(
            f"{self._gateway_url}/v1/auth/token",
            data={"grant_type": "password", "username": email, "password": PASSWORD},
            headers={"X-Forwarded-For": new_ip()},
        )
        response.raise_for_status()
        token: str = response.json()["access_token"]
        return token

    async def _create(self, email: str) -> None:
        conn = await asyncpg.connect(self._database_url)
        try:
            await create_user(conn, email, self._password_hash, Role.admin)
        finally:
            await conn.close()


@pytest.fixture
def retrain_scheduler(
    ray_cluster: None, gateway_settings: Settings, mlflow_url: str, tmp_path: Path
) -> Iterator[None]:
    """The scheduler `finone up` runs, so the retrain endpoints answer as deployed; its
    instruments have no history, so a fuzzed trigger ends at once, waiting for data."""
    assert gateway_settings.database_url
    plan = RetrainPlan(
        instruments=("fuzz:NO-HISTORY",),
        interval="1d",
        every_s=86_400,
        min_new_bars=10_000,
        walk_forward=WalkForward(),
        search=SearchSettings(samples=1, max_epochs=1),
        storage=str(tmp_path),
    )
    actor = RetrainScheduler.options(  # type: ignore[attr-defined]
        name=RETRAIN_ACTOR_NAME, namespace=RAY_NAMESPACE, lifetime="detached"
    ).remote(gateway_settings.database_url, mlflow_url, plan)
    yield
    ray.kill(actor, no_restart=True)


def test_api_never_fails_and_always_answers_per_schema(
    gateway_url: str, gateway_settings: Settings, retrain_scheduler: None, champions: Champions
) -> None:
    admins = Admins(gateway_settings, gateway_url)
    schema = schemathesis.openapi.from_url(f"{gateway_url}/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 15

    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(
            max_examples=15,
            deadline=None,
            database=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
        )
        def fuzz(case: schemathesis.Case) -> None:
            # Each case from its own address, so the per-address limit never hides deeper code.
            headers = {"Authorization": f"Bearer {admins.new_token()}", "X-Forwarded-For": new_ip()}
            case.call_and_validate(headers=headers, checks=CHECKS)

        try:
            fuzz()
        except Exception as error:
            raise AssertionError(f"{operation.label}: {error}") from error
