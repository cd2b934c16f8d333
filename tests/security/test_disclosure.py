"""What the platform tells a caller who has not signed in: nothing about its services."""

from __future__ import annotations

import httpx

from core.health import check_postgres
from core.urls import redact_url
from tests.serve.auth_api import Session


async def test_readyz_tells_anyone_the_status_only_and_operators_the_details(
    http: httpx.AsyncClient, gateway_url: str, operator: Session
) -> None:
    anonymous = await http.get(f"{gateway_url}/readyz")
    services = await http.get(f"{gateway_url}/v1/ops/services", headers=operator.headers)

    # Versions and addresses help an attacker pick an exploit: probes need the status only.
    assert anonymous.status_code == 200 and anonymous.json() == {"status": "ready"}
    details = " ".join(c["detail"] for c in services.json()["checks"])
    assert "postgres" in details and "redis" in details and "127.0.0.1" in details


async def test_passwords_in_a_urls_query_are_hidden_wherever_it_is_shown() -> None:
    url = "postgresql://finone@127.0.0.1:1/finone?sslmode=disable&password=hunter2"

    check = await check_postgres(url, timeout_s=0.5)

    assert redact_url(url) == (
        "postgresql://finone@127.0.0.1:1/finone?sslmode=disable&password=***"
    )
    assert redact_url("redis://:s3cret@[::1]:6379/0?password=s3cret") == (
        "redis://:***@[::1]:6379/0?password=***"
    )
    assert not check.ok and "hunter2" not in check.detail
